"""The panel's login path (docs/security.md, "Client addresses"): the monitor's login limit
and audit log see the browser's address, not the panel's, and only when each hop trusts the
one before it. Driven through the panel's real login callback, no browser needed."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.browser_support import PanelProcess
from tests.conftest import MonitorProcess

PASSWORD = "panel-login-password-1"


def _login_via_panel(panel: PanelProcess, name: str, password: str, **headers: str) -> Any:
    """POST the login form's callback, as the browser does when "Log in" is clicked."""
    body = {
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
    r = httpx.post(f"{panel.url}/_dash-update-component", json=body, headers=headers, timeout=20)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()["response"]


def _login_targets(monitor: MonitorProcess, name: str) -> set[str]:
    entries = monitor.get("/api/audit", limit=10_000)["entries"]
    return {e["target"] for e in entries if e["action"] == "login" and e["actor"] == name}


def test_the_panel_forwards_the_browsers_address_to_the_monitor(
    server_factory: Any, tmp_path: Path
) -> None:
    """Panel behind a trusted proxy, monitor trusting the panel: the audited login address
    is the browser's (as the proxy gave it), and the token reaches the page."""
    monitor: MonitorProcess = server_factory(args=["--forwarded-allow-ips", "127.0.0.1"])
    name = f"pl-{uuid.uuid4().hex[:6]}"
    monitor.add_user(name, "nurse", PASSWORD)
    panel = PanelProcess(monitor.base_url, tmp_path, args=["--forwarded-allow-ips", "127.0.0.1"])
    panel.start()
    try:
        out = _login_via_panel(panel, name, PASSWORD, **{"X-Forwarded-For": "192.0.2.44"})
    finally:
        panel.stop()
    assert out["auth"]["data"]["username"] == name and out["auth"]["data"]["token"]
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
