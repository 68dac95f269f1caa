"""Screenshots of the viewer's main views of a run (for docs and papers), taken in headless Chromium.

Needs Playwright for Python (the `test` extra) and a Chromium binary (Debian: `apt-get install chromium`);
Playwright's own browser download is not used.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlencode

from ..errors import InterpError

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def screenshots(run_dir: str | os.PathLike, out_dir: str | os.PathLike, chromium: str = "/usr/bin/chromium",
                width: int = 1400, height: int = 900) -> list[Path]:
    """PNG screenshots of the report, a table cell's records, an item, its ablation arms and a token CAS view."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise InterpError("screenshots need Playwright: pip install playwright (the test extra)") from None
    if not Path(chromium).is_file():
        raise InterpError(f"no Chromium at {chromium}: apt-get install chromium, or pass chromium=PATH")
    from .server import Viewer

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    with Viewer(run_dir) as v, sync_playwright() as p:
        v.state.get_tables()
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = b.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)

        def shot(name: str, full: bool = False, element: str | None = None) -> None:
            page.wait_for_timeout(400)
            path = out / f"{name}.png"
            if element:
                page.locator(element).first.screenshot(path=str(path))
            else:
                page.screenshot(path=str(path), full_page=full)
            paths.append(path)

        page.goto(v.url + "#/report")
        page.wait_for_selector("a.cell", timeout=300000)
        shot("report", full=True)
        page.locator('a.cell[data-table="by_type"][data-col="n"]').first.click()
        page.wait_for_selector("#records tbody tr")
        page.select_option("#f-outcome", "failure")
        page.wait_for_function("location.hash.includes('outcome=failure')")
        page.wait_for_selector("#records tbody tr")
        shot("records")
        page.locator("#records tbody tr").first.click()
        page.wait_for_selector(".card.focus")
        page.locator(".card.focus details summary").click()
        page.set_viewport_size({"width": width, "height": height + 400})
        page.evaluate("window.scrollTo(0, 0)")
        shot("item")
        page.set_viewport_size({"width": width, "height": height})
        page.locator(".card.focus .tokbtn").click()
        page.wait_for_selector("#curve .main-svg", timeout=120000)
        page.mouse.move(0, 0)
        shot("tokens")
        ablated = v.state.index.query({"stage": "ablations", "role": "main"}, 0, 1)["rows"]
        if ablated:
            page.goto(v.url + "#/item?" + urlencode({"item_id": ablated[0]["item_id"], "focus": ablated[0]["base_key"]}))
            page.wait_for_selector(".cards.ablation")
            page.add_style_tag(content="header#top { position: static; }")  # not over the element shot
            shot("ablation", element=".cards.ablation")
        b.close()
    return paths
