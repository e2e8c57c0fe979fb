"""The panel keeps its secrets (docs/security.md): security headers on its pages, a CSP it
runs under, the monitor token out of the page's reach (only the HttpOnly, SameSite=Strict
login cookie holds it, and the feed is relayed), and a logout or a disabled user that
really ends the session, in headless Chromium against the real processes."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from dashboard.sessions import tag
from tests import http_client
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
        r = http_client.get(panel.url + path, timeout=10)
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
    page = http_client.get(panel.url + "/", timeout=10).text
    asset = page.split('src="/assets/vigil.js', 1)[1].split('"', 1)[0]
    r = http_client.get(panel.url + "/assets/vigil.js" + asset, timeout=10)
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


def test_panel_runs_under_its_csp_and_the_page_never_holds_the_monitor_token(
    sqlite_server: MonitorProcess, panel: PanelProcess, browser: Any, device_factory: Any
) -> None:
    """The ward and a bed page with its trend work with no CSP violation; the page's storage,
    its script-visible cookies and its feed URL hold no token: the session cookie is HttpOnly
    and SameSite=Strict, and the feed comes through the panel's own origin."""
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
        stored = page.evaluate(
            "JSON.stringify([Object.entries(sessionStorage), Object.entries(localStorage),"
            " document.cookie])"
        )
        cookies = context.cookies()
    finally:
        context.close()
    session = [c for c in cookies if c["name"] == "vigil_session"]
    assert len(session) == 1 and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
    feed = panel.url.replace("http://", "ws://") + "/panel/feed?session="
    assert sockets and all(u.startswith(feed) for u in sockets), sockets
    # Nothing the page's script can reach (its storage, document.cookie, its feed URL) works
    # as a monitor token: the one token is the HttpOnly cookie's (docs/security.md).
    seen = " ".join([stored, *sockets])
    assert _working_tokens(sqlite_server, seen) == []
    assert session[0]["value"] not in stored
    others = json.dumps([c for c in cookies if c["name"] != "vigil_session"])
    assert _working_tokens(sqlite_server, others) == []
    assert violations == []


def _working_tokens(monitor: MonitorProcess, text: str) -> list[str]:
    """The token-shaped strings in ``text`` that the monitor accepts as a login."""
    candidates = set(re.findall(r"[A-Za-z0-9_-]{40,}", text))
    return [c for c in candidates if _status(monitor, c) == 200]


def _status(monitor: MonitorProcess, token: str) -> int:
    return http_client.get(
        f"{monitor.base_url}/api/me", headers={"Authorization": f"Bearer {token}"}, timeout=10
    ).status_code


def test_logging_out_of_the_panel_revokes_the_token_at_the_monitor(
    sqlite_server: MonitorProcess, panel: PanelProcess, page: Any
) -> None:
    """Log out is a revocation, not a forgetting: the monitor records the logout (its token is
    gone), the session cookie no longer opens the panel's endpoints, and the feed stops."""
    name, password = unique("out"), "logout-me-password"
    sqlite_server.add_user(name, "nurse", password)
    login(page, panel.url, name, password)
    wait_feed_up(page)
    cookie = {c["name"]: c["value"] for c in page.context.cookies()}["vigil_session"]
    ack = f"{panel.url}/panel/api/alarms/no-such-alarm/ack"
    mine = {"X-Vigil-Session": tag(cookie)}
    assert (
        http_client.post(ack, cookies={"vigil_session": cookie}, headers=mine, json={}).status_code
        == 404
    )
    page.click("#logout")
    page.wait_for_selector("#login-page")
    page.wait_for_function("document.body?.dataset?.feed === 'down'", timeout=5000)
    entries = sqlite_server.get("/api/audit", limit=10_000)["entries"]
    assert [e["action"] for e in entries if e["actor"] == name] == ["login", "logout"]
    assert (
        http_client.post(ack, cookies={"vigil_session": cookie}, headers=mine, json={}).status_code
        == 401
    )


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
