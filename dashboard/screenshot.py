"""README screenshots of a running panel (e.g. under `make demo`) with headless Chromium.

    .venv/bin/python -m dashboard.screenshot --panel-url http://127.0.0.1:8050 \\
        --user demo --password demo --out docs/img [--bed chair-3]

Writes overview.png (1920x1080, the ward) and bed.png (a bed page with its trends). Uses
Debian's /usr/bin/chromium through Playwright; it never downloads a browser.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from dashboard.headless import CHROMIUM, CHROMIUM_ARGS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard.screenshot")
    parser.add_argument("--panel-url", default="http://127.0.0.1:8050")
    parser.add_argument("--user", default=os.environ.get("VIGIL_DEMO_USER", "demo"))
    parser.add_argument("--password", default=os.environ.get("VIGIL_DEMO_PASSWORD", "demo"))
    parser.add_argument("--out", type=Path, default=Path("docs/img"))
    parser.add_argument(
        "--bed", default=None, help="bed for bed.png (default: first with a patient)"
    )
    parser.add_argument("--settle", type=float, default=4.0, help="seconds of live data first")
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    base = args.panel_url.rstrip("/")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # wait_for_function evaluates with eval, which the panel's CSP forbids.
            page = browser.new_page(viewport={"width": 1920, "height": 1080}, bypass_csp=True)
            page.goto(base + "/")
            page.fill("#login-username", args.user)
            page.fill("#login-password", args.password)
            page.click("#login-submit")
            page.wait_for_selector("#ward", timeout=15_000)
            page.wait_for_function("document.body?.dataset?.feed === 'up'", timeout=15_000)
            time.sleep(args.settle)
            overview = args.out / "overview.png"
            page.screenshot(path=str(overview))
            print(overview)

            bed = args.bed or page.evaluate(
                """() => {
                    const t = [...document.querySelectorAll('.tile')]
                        .find(t => t.dataset.phase && t.dataset.phase !== 'none')
                        || document.querySelector('.tile');
                    return t ? t.dataset.bed : null;
                }"""
            )
            if not bed:
                print("no bed to show", file=sys.stderr)
                return 1
            page.goto(f"{base}/bed/{bed}")
            page.wait_for_function(
                "document.querySelector('#trend .js-plotly-plot')?.data?.length === 6",
                timeout=15_000,
            )
            page.wait_for_function("document.body?.dataset?.feed === 'up'", timeout=15_000)
            time.sleep(min(args.settle, 2.0))
            detail = args.out / "bed.png"
            page.screenshot(path=str(detail), full_page=True)
            print(detail)
        finally:
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
