"""The panel's login path (docs/security.md, "Client addresses"): the monitor's login limit
and audit log see the browser's address, not the panel's, and only when each hop trusts the
one before it. Driven through the panel's real login callback, no browser needed."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from dashboard.sessions import tag
from tests import http_client
from tests.browser_support import PanelProcess
from tests.conftest import MonitorProcess

PASSWORD = "panel-login-password-1"


def login_callback_body(name: str, password: str) -> dict[str, Any]:
    """The login form's Dash callback request, as the browser sends it on "Log in"."""
    return {
        "output": "..auth.data...login-error.children..",
        "outputs": [
            {"id": "auth", "property": "data"},
            {"id": "login-error", "property": "children"},
        ],
        "inputs": [
            {"id": "login-submit", "property": "n_clicks", "value": 1},
            {"id": "login-password", "property": "n_submit", "value": None},
        ],
        "state": [
            {"id": "login-username", "property": "value", "value": name},
            {"id": "login-password", "property": "value", "value": password},
        ],
        "changedPropIds": ["login-submit.n_clicks"],
    }


def _login_via_panel(panel: PanelProcess, name: str, password: str, **headers: str) -> Any:
    body = login_callback_body(name, password)
    r = http_client.post(
        f"{panel.url}/_dash-update-component", json=body, headers=headers, timeout=20
    )
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r


def _login_targets(monitor: MonitorProcess, name: str) -> set[str]:
    entries = monitor.get("/api/audit", limit=10_000)["entries"]
    return {e["target"] for e in entries if e["action"] == "login" and e["actor"] == name}


def test_the_panel_forwards_the_browsers_address_to_the_monitor(
    server_factory: Any, tmp_path: Path
) -> None:
    """Panel behind a trusted proxy, monitor trusting the panel: the audited login address
    is the browser's (as the proxy gave it); the page gets an HttpOnly session cookie."""
    monitor: MonitorProcess = server_factory(args=["--forwarded-allow-ips", "127.0.0.1"])
    name = f"pl-{uuid.uuid4().hex[:6]}"
    monitor.add_user(name, "nurse", PASSWORD)
    panel = PanelProcess(monitor.base_url, tmp_path, args=["--forwarded-allow-ips", "127.0.0.1"])
    panel.start()
    try:
        out = _login_via_panel(panel, name, PASSWORD, **{"X-Forwarded-For": "192.0.2.44"})
    finally:
        panel.stop()
    # The page learns who logged in; the token stays with the panel, behind a cookie the
    # page's script cannot read.
    sid = out.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
    assert out.json()["response"]["auth"]["data"] == {
        "username": name,
        "role": "nurse",
        "session": tag(sid),
    }
    cookie = out.headers["set-cookie"].lower()
    assert cookie.startswith("vigil_session=") and "httponly" in cookie
    assert "samesite=strict" in cookie and "secure" not in cookie  # plain http here
    assert _login_targets(monitor, name) == {"192.0.2.44"}


def test_a_panel_that_trusts_no_proxy_forwards_its_peers_own_address(
    server_factory: Any, tmp_path: Path
) -> None:
    """Without --forwarded-allow-ips the panel ignores a client's X-Forwarded-For: what it
    forwards is the address that connected to it."""
    monitor: MonitorProcess = server_factory(args=["--forwarded-allow-ips", "127.0.0.1"])
    name = f"pl-{uuid.uuid4().hex[:6]}"
    monitor.add_user(name, "nurse", PASSWORD)
    panel = PanelProcess(monitor.base_url, tmp_path)
    panel.start()
    try:
        _login_via_panel(panel, name, PASSWORD, **{"X-Forwarded-For": "192.0.2.45"})
    finally:
        panel.stop()
    assert _login_targets(monitor, name) == {"127.0.0.1"}


def test_the_panels_feed_relay_refuses_no_session_and_other_origins(
    server_factory: Any, tmp_path: Path
) -> None:
    """/panel/feed: without a live session cookie, or opened from another site's page with
    one (cross-site websocket hijacking), it closes 1008 and relays nothing."""
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.sync.client import connect

    monitor: MonitorProcess = server_factory()
    name = f"pl-{uuid.uuid4().hex[:6]}"
    monitor.add_user(name, "nurse", PASSWORD)
    panel = PanelProcess(monitor.base_url, tmp_path)
    panel.start()
    try:
        out = _login_via_panel(panel, name, PASSWORD)
        sid = out.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]
        feed = panel.url.replace("http://", "ws://") + f"/panel/feed?session={tag(sid)}"
        with connect(feed, additional_headers={"Cookie": f"vigil_session={sid}"}) as ws:
            assert '"hello"' in str(ws.recv(timeout=10))
        # No live session: accepted, then closed 1008 with nothing relayed.
        with connect(feed, additional_headers={"Cookie": "vigil_session=not-a-session"}) as ws:
            try:
                ws.recv(timeout=10)
                raise AssertionError("feed relayed without a session")
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1008
        # Another site's page, even with the user's cookie: the handshake is refused (403).
        try:
            connect(
                feed,
                additional_headers={"Cookie": f"vigil_session={sid}"},
                origin="https://evil.example",  # type: ignore[arg-type]
            )
            raise AssertionError("cross-origin feed accepted")
        except InvalidStatus as refused:
            assert refused.response.status_code == 403
    finally:
        panel.stop()


def test_a_tab_never_acts_with_a_login_made_later_in_another_tab(
    server_factory: Any, tmp_path: Path
) -> None:
    """Two logins in one browser share its cookie jar: the first tab's commands and feed are
    then refused (it must log in again), never carried out as the second tab's user."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    monitor: MonitorProcess = server_factory()
    a, b = f"pa-{uuid.uuid4().hex[:6]}", f"pb-{uuid.uuid4().hex[:6]}"
    monitor.add_user(a, "nurse", PASSWORD)
    monitor.add_user(b, "nurse", PASSWORD)
    panel = PanelProcess(monitor.base_url, tmp_path)
    panel.start()
    try:
        sid_a = _login_via_panel(panel, a, PASSWORD).headers["set-cookie"].split(";")[0][14:]
        sid_b = _login_via_panel(panel, b, PASSWORD).headers["set-cookie"].split(";")[0][14:]
        ack = f"{panel.url}/panel/api/alarms/none/ack"
        jar = {"vigil_session": sid_b}  # the browser's cookie now: the second login's
        own = http_client.post(ack, cookies=jar, headers={"X-Vigil-Session": tag(sid_b)}, json={})
        assert own.status_code == 404  # through to the monitor: no such alarm
        stale = http_client.post(ack, cookies=jar, headers={"X-Vigil-Session": tag(sid_a)}, json={})
        assert stale.status_code == 401
        feed = panel.url.replace("http://", "ws://") + f"/panel/feed?session={tag(sid_a)}"
        with connect(feed, additional_headers={"Cookie": f"vigil_session={sid_b}"}) as ws:
            try:
                ws.recv(timeout=10)
                raise AssertionError("the first tab's feed ran on the second login")
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 1008
    finally:
        panel.stop()
    acks = [
        e
        for e in monitor.get("/api/audit", limit=10_000)["entries"]
        if e["action"] not in ("login", "user_add")
    ]
    assert acks == []
