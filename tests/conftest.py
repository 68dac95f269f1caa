"""Shared fixtures: the embedded default model, loaded once per test session."""
import pytest


@pytest.fixture(scope="session")
def model():
    from interp.models import load_model

    return load_model()
