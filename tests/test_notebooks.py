"""The notebooks execute top to bottom on the embedded model, and are stored without outputs."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NB_DIR = Path(__file__).parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))


def test_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["01_quickstart.ipynb", "02_attention.ipynb", "03_ablation.ipynb",
                                           "04_bring_your_own.ipynb", "05_thinking.ipynb",
                                           "06_patching_steering.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stripped(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs not stripped"


@pytest.fixture(scope="module")
def nb_runs(tmp_path_factory):
    """One runs folder for all notebooks, so 02 and 03 reuse the run that 01 writes."""
    return tmp_path_factory.mktemp("nb_runs")


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, nb_runs, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("INTERP_NB_RUNS", str(nb_runs))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(nb_runs)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
