"""Bad model specs give one clear InterpError line (the CLI prints it without a traceback)."""
import json
import subprocess
import sys

import pytest

from interp.errors import InterpError
from interp.models import load_model


def test_missing_gguf():
    with pytest.raises(InterpError, match="GGUF file not found"):
        load_model("/nonexistent/model.gguf")


def test_missing_path():
    with pytest.raises(InterpError, match="not found"):
        load_model("./no/such/folder")


def test_unsupported_architecture(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertModel"]}))
    with pytest.raises(InterpError, match="not supported"):
        load_model(str(tmp_path))


def test_folder_without_config(tmp_path):
    with pytest.raises(InterpError, match="no config.json"):
        load_model(str(tmp_path))


def test_unreachable_hub_name_is_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = subprocess.run([sys.executable, "-m", "interp.cli", "info", "--model", "someone/not-cached-model"],
                       capture_output=True, text=True, timeout=120, env={**__import__("os").environ})
    assert r.returncode == 2
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert lines[-1].startswith("error: cannot load 'someone/not-cached-model'")
    assert "Traceback" not in r.stderr
