"""Shared fixtures: the embedded default model, loaded once per test session."""
import pytest


@pytest.fixture(scope="session")
def model():
    from interp.models import load_model

    return load_model()


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread: on a loaded 2-core box, torch's spin-waiting threads make every op ~10x slower."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
