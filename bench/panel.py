"""Panel: the real panel (`python -m dashboard` against a real monitor) in headless Chromium,
16 beds streaming at 1 Hz. Per feed update: main-thread script time (CDP Performance.getMetrics
ScriptDuration delta / updates) and bytes received (websocket payloads from CDP
Network.webSocketFrameReceived plus HTTP bodies, / updates), on the ward overview and on a bed
page with its trend, once with 1 minute of session history and once with 60 (must not grow).
History is written to the database before the monitor starts; live readings come from devices.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench import common, loadgen, runner
from bench.results import Row, Section
from dashboard.headless import CHROMIUM, CHROMIUM_ARGS

BEDS = 16


def _seed_history(db_url: str, fleet: common.Fleet, minutes: float) -> None:
    """An open session per bed, opened ``minutes`` ago, with its 1 Hz readings and cuff cycles."""
    from monitor.records.schema import readings
    from monitor.records.store import Store

    async def run() -> None:
        store = await Store.open(db_url)
        try:
            now = time.time()
            opened = now - minutes * 60
            rows: list[dict[str, Any]] = []
            for i, (dev, bed, _tok) in enumerate(fleet.devices):
                sid = await store.create_session(
                    bed_id=bed,
                    patient_label=f"Bench {i}",
                    age=40,
                    baseline={"hr": 72},
                    planned_s=2400,
                    now=opened,
                    by="bench",
                )
                await store.add_session_event(
                    sid,
                    expected_version=0,
                    event_type="infusion_start",
                    at=opened + 20,
                    now=opened + 20,
                    by="bench",
                    data=None,
                    new_phase="infusion",
                )
                # Under another device id: the live device starts its own seq at 1.
                hist = f"{dev}-h"
                n = int(minutes * 60)
                for k in range(n):
                    ts = opened + k
                    row = {
                        "device_id": hist,
                        "seq": k + 1,
                        "bed_id": bed,
                        "ts": ts,
                        "received_at": ts,
                        "source": None,
                        "hr": 70.0 + (k % 7),
                        "spo2": 97.0,
                        "rr": 14.0,
                        "sbp": None,
                        "dbp": None,
                        "map": None,
                    }
                    if k % 300 == 30:
                        row.update(
                            source="nibp",
                            hr=None,
                            spo2=None,
                            rr=None,
                            sbp=120.0,
                            dbp=80.0,
                            map=93.0,
                        )
                    rows.append(row)
            async with store.engine.begin() as conn:
                for j in range(0, len(rows), 5000):
                    await conn.execute(readings.insert(), rows[j : j + 5000])
        finally:
            await store.close()

    common.run_async(run())


class Meter:
    """CDP counters for one page: websocket and HTTP bytes received, feed updates."""

    def __init__(self, page: Any) -> None:
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("Performance.enable")
        self.cdp.send("Network.enable")
        self.ws_bytes = 0
        self.http_bytes = 0
        self.updates = 0
        self.cdp.on("Network.webSocketFrameReceived", self._frame)
        self.cdp.on("Network.dataReceived", self._data)

    def _frame(self, ev: dict[str, Any]) -> None:
        payload = ev["response"]["payloadData"]
        self.ws_bytes += len(payload.encode())
        if payload.startswith('{"type":"reading"'):
            self.updates += 1

    def _data(self, ev: dict[str, Any]) -> None:
        self.http_bytes += int(ev.get("encodedDataLength") or ev.get("dataLength") or 0)

    def script_s(self) -> float:
        metrics = self.cdp.send("Performance.getMetrics")["metrics"]
        return float(next(m["value"] for m in metrics if m["name"] == "ScriptDuration"))

    def measure(self, page: Any, seconds: float) -> dict[str, float]:
        s0, w0, h0, u0 = self.script_s(), self.ws_bytes, self.http_bytes, self.updates
        # Keep Playwright's event pump running while time passes.
        page.wait_for_timeout(seconds * 1000)
        s1, w1, h1, u1 = self.script_s(), self.ws_bytes, self.http_bytes, self.updates
        n = max(1, u1 - u0)
        return {
            "updates": u1 - u0,
            "script_ms": (s1 - s0) * 1000 / n,
            "bytes": ((w1 - w0) + (h1 - h0)) / n,
            "ws_bytes": (w1 - w0) / n,
            "http_bytes": (h1 - h0) / n,
        }


def _one(work: Path, minutes: float, seconds: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    db = common.sqlite_url(work, f"panel-{minutes:g}.db")
    fleet = common.seed(db, common.device_names(BEDS, prefix=f"p{minutes:g}"))
    _seed_history(db, fleet, minutes)
    with (
        common.monitor_server(work, db).start() as mon,
        common.panel_server(work, mon.base_url).start() as panel,
    ):
        load = runner.background(
            loadgen.paced,
            {
                "url": mon.ws_url,
                "devices": fleet.devices,
                "feed_token": None,
                "steps": [BEDS],
                "warmup_s": 0.0,
                "duration_s": 4 * seconds + 60,
            },
        )
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    # wait_for_function evaluates with eval, which the panel's CSP forbids.
                    page = browser.new_context(
                        viewport={"width": 1920, "height": 1080}, bypass_csp=True
                    ).new_page()
                    page.set_default_timeout(30_000)
                    meter = Meter(page)
                    page.goto(panel.base_url + "/")
                    page.fill("#login-username", common.NURSE[0])
                    page.fill("#login-password", common.NURSE[1])
                    page.click("#login-submit")
                    page.wait_for_function("document.body?.dataset?.feed === 'up'")
                    page.wait_for_selector(f"#tile-{fleet.devices[-1][1]}")
                    page.wait_for_timeout(2000)
                    ward = meter.measure(page, seconds)
                    bed = fleet.devices[0][1]
                    page.goto(f"{panel.base_url}/bed/{bed}")
                    page.wait_for_selector("#trend-wrap.live #trend .main-svg")
                    page.wait_for_function("document.body?.dataset?.feed === 'up'")
                    page.wait_for_timeout(3000)
                    points = page.evaluate(
                        "() => (document.getElementById('trend')?.querySelector('.js-plotly-plot')"
                        " || document.getElementById('trend'))?.data?.[0]?.x?.length ?? -1"
                    )
                    bedm = meter.measure(page, seconds)
                    bedm["trend_points"] = points
                finally:
                    browser.close()
        finally:
            load.terminate()
            load.join(10)
    return {"ward": ward, "bed": bedm}


def run(work: Path, quick: bool) -> Section:
    seconds = 3.0 if quick else 15.0
    short = _one(work, 1, seconds)
    long = _one(work, 60, seconds)
    s = Section("Panel")
    for page, label in (("ward", "ward overview"), ("bed", "bed page with trend")):
        a, b = short[page], long[page]
        s.rows.append(
            Row(
                f"panel script time / update, {label}, 60 min history",
                b["script_ms"],
                "ms",
                a["script_ms"],
                "same at 1 min history",
                goal="no growth",
                ok=b["script_ms"] <= 1.25 * a["script_ms"] + 0.05,
            )
        )
        s.rows.append(
            Row(
                f"panel bytes / update, {label}, 60 min history",
                b["bytes"],
                "B",
                a["bytes"],
                "same at 1 min history",
                goal="no growth",
                ok=b["bytes"] <= 1.10 * a["bytes"] + 16,
            )
        )
    s.details += [
        f"- {BEDS} beds at 1 Hz; each page measured for {seconds:g} s after it settled; "
        "updates = feed reading messages the page received.",
        "",
        "| history | page | updates | script ms/update | bytes/update (ws + http) | trend points |",
        "|---|---|---|---|---|---|",
    ]
    for minutes, r in ((1, short), (60, long)):
        for page in ("ward", "bed"):
            m = r[page]
            s.details.append(
                f"| {minutes} min | {page} | {m['updates']} | {m['script_ms']:.2f} "
                f"| {m['bytes']:.0f} ({m['ws_bytes']:.0f} + {m['http_bytes']:.0f}) "
                f"| {m.get('trend_points', '')} |"
            )
    s.raw = {"1": short, "60": long}
    return s
