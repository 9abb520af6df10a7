"""Takes the README's dashboard screenshots (docs/screenshots/*.png) in a real Chromium.

Run: python -m tests.dashboard.screenshots [OUT_DIR]

The store holds a month of seeded traffic (``benchmarks/seed.py``: 3,000 sessions) plus the
real conversations the browser tests record (an agent calling a tool, hostile HTML, an
unpriced model, a failed turn), so every page shows both volume and real replays.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from benchmarks.seed import seed
from opencell.store.store import Store
from tests.dashboard.conftest import ServerThread, record_conversations
from tests.dashboard.test_browser import ARGS, CHROMIUM

REPO = Path(__file__).resolve().parents[2]


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        url = f"sqlite:///{scratch}/shots.db"
        store = Store.open(url)
        seed(store, sessions=3_000, events=30_000, days=30)
        store.close()
        ids = asyncio.run(record_conversations(url, latency=0.6))
        with ServerThread(url) as served, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
            shots = {
                # name: (path, full page, viewport, colour scheme)
                "sessions": ("/sessions", False, (1400, 960), "light"),
                "session": (f"/sessions/{ids['agent']}", True, (1400, 960), "light"),
                "analytics": ("/analytics", True, (1400, 960), "light"),
                "costs": ("/costs", True, (1400, 960), "light"),
                "sessions-dark": ("/sessions?q=parcel", False, (1400, 960), "dark"),
                "session-phone": (f"/sessions/{ids['agent']}", False, (390, 844), "light"),
            }
            for name, (path, full, (width, height), scheme) in shots.items():
                context = browser.new_context(viewport={"width": width, "height": height},
                                              device_scale_factor=1, color_scheme=scheme)
                page = context.new_page()
                page.goto(served.url + path)
                page.wait_for_load_state("networkidle")
                if name == "session":
                    page.locator("[data-kind=tool_call] summary").first.click()
                    page.locator("[data-kind=llm_call] summary").first.click()
                page.wait_for_timeout(300)
                target = out / f"{name}.png"
                page.screenshot(path=str(target), full_page=full)
                context.close()
                print(f"wrote {target}")
            browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs" / "screenshots")
