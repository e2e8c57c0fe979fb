"""Browser-test support: the real panel process, headless Debian Chromium, a sync device.

Import the fixtures into a test module (`from tests.browser_support import ...`). Nothing here
downloads a browser: Playwright drives /usr/bin/chromium.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect as ws_connect

from dashboard.headless import CHROMIUM
from dashboard.headless import CHROMIUM_ARGS as HEADLESS_ARGS
from monitor.wire.device import encode_reading
from tests import spawn
from tests.conftest import ROOT, MonitorProcess, free_port, terminate, wait_healthy

# The panel's alarm sounds must start without a real user's gesture in tests.
CHROMIUM_ARGS = [*HEADLESS_ARGS, "--autoplay-policy=no-user-gesture-required"]
NURSE = ("nurse1", "nurse-password-1")
# A stamp a nurse should never read: ISO date-times and sub-second clock times.
ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}|\d{2}:\d{2}:\d{2}\.\d")


class PanelProcess:
    """`python -m dashboard` on a free port, pointed at one monitor."""

    def __init__(self, monitor_url: str, workdir: Path, args: list[str] | None = None) -> None:
        self.args = args or []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.monitor_url = monitor_url
        self.log_path = workdir / f"panel-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | spawn.ForkedProcess | None = None

    def start(self, timeout: float = 30.0) -> None:
        log = open(self.log_path, "ab")
        args = ["--host", "127.0.0.1", "--port", str(self.port), "--monitor-url", self.monitor_url]
        # `python -m dashboard`, forked from a warm zygote (tests/spawn.py).
        self.proc = spawn.python_module(
            "dashboard",
            [*args, *self.args],
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            log=log,
        )
        log.close()
        if not wait_healthy(self.proc, f"{self.url}/panel/health", timeout):
            self.stop()
            raise RuntimeError(f"panel did not start:\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        terminate(self.proc)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class SyncDevice:
    """A real device on /ws/device (sync client, so it mixes with Playwright's sync API)."""

    def __init__(self, ws_url: str, device_id: str, token: str) -> None:
        self.device_id = device_id
        self._conn = ws_connect(
            f"{ws_url}/ws/device", additional_headers={"Authorization": f"Bearer {token}"}
        )
        self.ws = self._conn.__enter__()
        self.seq = 0

    def send(
        self, values: dict[str, float], ts: float | None = None, source: str | None = None
    ) -> dict[str, Any]:
        """Send one reading and wait for its ack (stored) or error."""
        import json

        self.seq += 1
        self.ws.send(
            encode_reading(
                self.device_id, self.seq, time.time() if ts is None else ts, values, source
            )
        )
        while True:
            msg = json.loads(self.ws.recv(timeout=10))
            if msg.get("seq") == self.seq:
                return dict(msg)

    def send_all(self, readings: list[tuple[dict[str, float], float]]) -> list[dict[str, Any]]:
        """Send (values, ts) readings back to back, then wait for every answer: one
        round trip, and batched commits, where ``send`` pays a commit per reading."""
        import json

        first = self.seq + 1
        for values, ts in readings:
            self.seq += 1
            self.ws.send(encode_reading(self.device_id, self.seq, ts, values, None))
        answers: dict[int, dict[str, Any]] = {}
        while len(answers) < len(readings):
            msg = json.loads(self.ws.recv(timeout=10))
            if first <= msg.get("seq", 0) <= self.seq:
                answers[msg["seq"]] = dict(msg)
        return [answers[q] for q in range(first, self.seq + 1)]

    def close(self) -> None:
        self._conn.__exit__(None, None, None)


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Any]:
    """One headless Chromium per test module. Not per session: sync Playwright keeps its loop
    marked running, so the asyncio tests that xdist puts on the same worker would fail
    ("asyncio.run() cannot be called from a running event loop"); and the launch is a quarter
    of a second beside the module's own monitor and panel (about 7 s), whose ward its tests
    read and so cannot share."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def running_panel(
    monitor: MonitorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PanelProcess]:
    """The real panel process in front of ``monitor``, stopped afterwards."""
    proc = PanelProcess(monitor.base_url, tmp_path_factory.mktemp("panel"))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module", name="panel")
def panel_fixture(
    sqlite_server: MonitorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PanelProcess]:
    """The real panel process in front of the module's monitor, with a nurse account."""
    sqlite_server.add_user(NURSE[0], "nurse", NURSE[1])
    with running_panel(sqlite_server, tmp_path_factory) as proc:
        yield proc


@pytest.fixture(name="device_factory")
def device_factory_fixture(sqlite_server: MonitorProcess) -> Iterator[Any]:
    """Real devices on the module's monitor: ``device_factory(bed)``, closed after the test."""
    opened: list[SyncDevice] = []

    def make(bed: str) -> SyncDevice:
        dev = unique("dev")
        d = SyncDevice(sqlite_server.ws_url, dev, sqlite_server.add_device(dev, bed))
        opened.append(d)
        return d

    yield make
    for d in opened:
        d.close()


@pytest.fixture(name="page")
def page_fixture(browser: Any, panel: PanelProcess) -> Iterator[Any]:
    """A fresh browser context (fresh session storage) per test. Playwright's
    ``wait_for_function`` evaluates its string with eval, which the panel's CSP forbids: these
    pages bypass the CSP, and tests/test_browser_security.py checks the panel under it."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, bypass_csp=True)
    pg = context.new_page()
    # 20 s, not 10: on CI's two cores, four workers and their Chromiums, a bed page's redraw
    # (render_page, then load_bed's monitor reads) was seen to take longer than 10 s.
    pg.set_default_timeout(20_000)
    try:
        yield pg
    finally:
        context.close()


def login(page: Any, panel_url: str, user: str = NURSE[0], password: str = NURSE[1]) -> None:
    page.goto(panel_url + "/")
    page.fill("#login-username", user)
    page.fill("#login-password", password)
    page.click("#login-submit")
    page.wait_for_selector("#feed-status", timeout=10_000)


def wait_feed_up(page: Any, timeout_ms: int = 10_000) -> None:
    page.wait_for_function("document.body?.dataset?.feed === 'up'", timeout=timeout_ms)


def wait_text(page: Any, selector: str, text: str, timeout_ms: int = 10_000) -> str:
    """Poll until the element's text contains ``text``; its text."""
    page.wait_for_function(
        "([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
        arg=[selector, text],
        timeout=timeout_ms,
    )
    return str(page.inner_text(selector))


def wait_attr(page: Any, selector: str, attr: str, value: str, timeout_ms: int = 30_000) -> None:
    page.wait_for_function(
        "([sel, attr, value]) => document.querySelector(sel)?.getAttribute(attr) === value",
        arg=[selector, attr, value],
        timeout=timeout_ms,
    )


def page_state(page: Any) -> str:
    """Where the page is and what it says went wrong, for a failed wait's message: a wait
    that times out on a loaded machine should say whether the page moved and what it shows."""
    errors = page.evaluate(
        "() => Array.from(document.querySelectorAll('.error, #page-error'))"
        ".map(e => e.innerText).filter(Boolean)"
    )
    return f"url {page.url}; errors shown: {errors or 'none'}"


def unique(prefix: str) -> str:
    """Own ids per test: the monitor is shared by the module's tests."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def axe_serious(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page, each with where and why (the
    axe-selenium-python package ships axe-core; injected the way its Axe.inject does)."""
    from axe_selenium_python.axe import _DEFAULT_SCRIPT as AXE_SCRIPT

    page.add_script_tag(path=str(Path(AXE_SCRIPT)))
    result = page.evaluate("async () => await axe.run(document)")
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:4]} "
        f"{v['nodes'][0]['html'][:160]} {v['nodes'][0].get('failureSummary', '')[:200]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
