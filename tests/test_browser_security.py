"""The panel keeps its secrets (docs/security.md): security headers on its pages, a CSP it
runs under, a feed login that keeps the token out of the URL, and a logout or a disabled
user that really ends the session, in headless Chromium against the real processes."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from tests.browser_support import (  # noqa: F401  (fixtures used by name)
    NURSE,
    PanelProcess,
    browser_fixture,
    device_factory_fixture,
    login,
    page_fixture,
    panel_fixture,
    unique,
    wait_feed_up,
)
from tests.conftest import MonitorProcess

pytestmark = pytest.mark.browser


def _csp(value: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for part in value.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def test_panel_pages_send_csp_frame_sniff_referrer_and_no_store_headers(
    panel: PanelProcess,
) -> None:
    """Every panel page: a CSP allowing only its own scripts (files and hashed inline ones),
    no framing, nosniff, no referrer; pages and callback answers are never cached."""
    for path in ("/", "/bed/any-bed", "/_dash-layout", "/panel/health"):
        r = httpx.get(panel.url + path, timeout=10)
        assert r.status_code == 200, path
        h = r.headers
        assert h["x-frame-options"] == "DENY", path
        assert h["x-content-type-options"] == "nosniff", path
        assert h["referrer-policy"] == "no-referrer", path
        assert h["cache-control"] == "no-store", path
        csp = _csp(h["content-security-policy"])
        assert csp["frame-ancestors"] == ["'none'"], path
        assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"], path
        scripts = csp["script-src"]
        assert scripts[0] == "'self'", path
        assert all(s.startswith("'sha256-") for s in scripts[1:]), scripts
        assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    # Static assets may be cached; they hold no patient data.
    page = httpx.get(panel.url + "/", timeout=10).text
    asset = page.split('src="/assets/vigil.js', 1)[1].split('"', 1)[0]
    r = httpx.get(panel.url + "/assets/vigil.js" + asset, timeout=10)
    assert r.status_code == 200 and r.headers.get("cache-control") != "no-store"
    assert r.headers["x-content-type-options"] == "nosniff"


def _poll_js(page: Any, expression: str, timeout: float = 10.0) -> None:
    """wait_for_function without eval (page.evaluate goes around the page's CSP)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.evaluate(expression):
            return
        time.sleep(0.1)
    raise AssertionError(f"not true within {timeout} s: {expression}")


def test_panel_runs_under_its_csp_and_its_feed_login_keeps_the_token_out_of_the_url(
    sqlite_server: MonitorProcess, panel: PanelProcess, browser: Any, device_factory: Any
) -> None:
    """The ward and a bed page with its trend work with no CSP violation, and the feed
    socket's URL carries no token (it goes in the first message)."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    page.set_default_timeout(10_000)
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("pageerror", lambda e: violations.append(str(e)))
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    bed = unique("csp")
    dev = device_factory(bed)
    try:
        page.goto(panel.url + "/")
        page.fill("#login-username", NURSE[0])
        page.fill("#login-password", NURSE[1])
        page.click("#login-submit")
        page.wait_for_selector("#feed-status")
        _poll_js(page, "document.body.dataset.feed === 'up'")
        assert dev.send({"hr": 71, "spo2": 98})["type"] == "ack"
        _poll_js(page, f"document.getElementById('tile-{bed}-hr-value')?.textContent === '71'")
        page.click(f"#tile-{bed}-name")
        page.wait_for_selector("#trend .main-svg")
        _poll_js(page, "document.body.dataset.feed === 'up'")
    finally:
        context.close()
    feed_sockets = [u for u in sockets if "/ws/feed" in u]
    assert feed_sockets, sockets
    assert all("token" not in u for u in feed_sockets), feed_sockets
    assert violations == []


def _panel_token(page: Any) -> str:
    auth = json.loads(page.evaluate("window.sessionStorage.getItem('auth')") or "null")
    token = (auth or {}).get("token") if isinstance(auth, dict) else None
    assert isinstance(token, str) and token
    return token


def _wait_status(url: str, token: str, status: int, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    got = 0
    while time.monotonic() < deadline:
        got = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5).status_code
        if got == status:
            return got
        time.sleep(0.1)
    return got


def test_logging_out_of_the_panel_revokes_the_token_at_the_monitor(
    sqlite_server: MonitorProcess, panel: PanelProcess, page: Any
) -> None:
    """Log out is a revocation, not a forgetting: the token the panel held gets 401."""
    login(page, panel.url)
    wait_feed_up(page)
    token = _panel_token(page)
    me = f"{sqlite_server.base_url}/api/me"
    assert httpx.get(me, headers={"Authorization": f"Bearer {token}"}).status_code == 200
    page.click("#logout")
    page.wait_for_selector("#login-page")
    assert _wait_status(me, token, 401) == 401
    page.wait_for_function("document.body?.dataset?.feed === 'down'", timeout=5000)


def test_disabling_a_logged_in_user_sends_their_panel_back_to_the_login_page(
    sqlite_server: MonitorProcess, panel: PanelProcess, page: Any
) -> None:
    """The monitor closes the feed (1008) within 5 s; the panel stops reconnecting with the
    dead token and asks for a login, saying why."""
    name, password = unique("dis"), "disable-me-password"
    sqlite_server.add_user(name, "nurse", password)
    login(page, panel.url, name, password)
    wait_feed_up(page)
    r = sqlite_server.post(f"/api/users/{name}/disable")
    assert r.status_code == 200 and r.json()["disabled"] is True
    started = time.monotonic()
    page.wait_for_selector("#login-page", timeout=6000)
    assert time.monotonic() - started < 5.5
    page.wait_for_function(
        "document.getElementById('login-error')?.textContent.includes('ended')", timeout=2000
    )
    # And a disabled user cannot log back in.
    page.fill("#login-username", name)
    page.fill("#login-password", password)
    page.click("#login-submit")
    page.wait_for_function(
        "document.getElementById('login-error')?.textContent.includes('Wrong')", timeout=5000
    )
