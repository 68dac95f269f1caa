"""README stays in sync with the CLI: the reference is generated from the parser, documented commands exist."""
import re
from pathlib import Path

from interp.cli import build_parser, markdown_reference

README = (Path(__file__).parents[1] / "README.md").read_text()


def test_cli_reference_matches_parser():
    assert markdown_reference() in README


def test_every_documented_command_exists():
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    documented = set(re.findall(r"`interp ([a-z]+)", README)) | set(re.findall(r"^interp ([a-z]+)", README, re.M))
    assert documented, "README documents no commands"
    assert documented <= set(sub.choices), documented - set(sub.choices)


def test_two_commands_open_the_readme():
    block = README.split("```bash", 1)[1].split("```", 1)[0]
    cmds = [l.split("#")[0].strip() for l in block.strip().splitlines() if l.strip()]
    assert cmds == ["bash scripts/main.sh", "bash scripts/test.sh"]
    root = Path(__file__).parents[1]
    assert "bash scripts/test.sh" in (root / ".ci" / "run").read_text()
    assert all((root / c.split()[1]).is_file() for c in cmds)


def test_gallery_figures_come_from_the_documented_command():
    import json

    root = Path(__file__).parents[1]
    gallery = README.split("## Gallery", 1)[1].split("\n## ", 1)[0]
    figs = re.findall(r"\(figures/([^)]+\.png)\)", gallery)
    assert figs, "gallery shows no figures"
    for f in figs:  # each figure is listed by the manifest of its output folder (figures/ or figures/<study>/)
        folder = root / "figures" / f.split("/")[0] if "/" in f else root / "figures"
        manifest = json.loads((folder / "manifest.json").read_text())
        name = f.split("/", 1)[1] if "/" in f else f
        assert manifest["command"] in gallery, manifest["command"]
        assert (folder / name).stat().st_size > 0, f
        assert (folder / name.replace(".png", ".pdf")).is_file(), f
        assert name in manifest["files"], f
        assert manifest["files"][name]["config"] == manifest["config"]


def test_readme_python_api_block_runs(model, monkeypatch):
    """The README's direct-call examples (up to the whole-experiment part) run as written on the embedded model."""
    import interp

    block = README.split("## Python API (notebooks)", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    direct = block.split("# whole experiments", 1)[0]
    assert "interp.generate(" in direct and "m.hooks(" in direct and "interp.run_with_cache(" in direct
    monkeypatch.setattr(interp, "load_model", lambda *a, **k: model)
    ns: dict = {}
    exec(compile(direct, "README.md", "exec"), ns)
    assert ns["g"].cas.dims == ("step", "layer", "span", "head")
    assert ns["cache"]["blocks.3.attn.hook_pattern"].shape[:3] == (2, model.n_heads, 1)
    assert abs(ns["t"].generations[0].cas.values - ns["g"].cas.values).max() < 1e-4


def test_readme_task_example_registers_and_scores():
    """The Task example beside "add one by" runs as written: it registers, lists items and scores."""
    from interp.tasks import TASKS, get_task

    block = README.split("## Where things live", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    assert len(block.strip().splitlines()) <= 20
    ns: dict = {"__name__": "readme_task_example"}
    try:
        exec(compile(block, "README.md", "exec"), ns)
        t = get_task("capitals")
        items = t.items(2)
        assert [i.id for i in items] == ["fr", "jp"] and t.parts(items[0])[0].text.startswith("What is")
        assert t.score(items[0], "It is Paris.").success and not t.score(items[1], "Kyoto").success
    finally:
        TASKS.unregister("capitals")
