"""Screenshots of `interp view` on a run directory (figures/viewer/*.png); needs Chromium and Playwright.

    python -m analyses.viewer_screenshots --run runs/demo --out figures/viewer

Not part of `run_all` (it needs a browser); the committed screenshots come from a small run of the embedded
model (smoke_arith, 8 items, K=2, neutral and paraphrase controls, damp ablations of 3 items).
"""
from __future__ import annotations

import argparse
import sys

from interp.viewer.shots import screenshots


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="a run directory")
    ap.add_argument("--out", default="figures/viewer")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args(argv)
    for p in screenshots(a.run, a.out, a.chromium):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
