"""Panel logins live where the monitor keeps its tokens (docs/security.md, "Where the token
lives"): a login survives a panel restart, a second panel process accepts it, and a logout
or a disabled user is refused by both. Real monitor and panel processes, the panel's real
login and logout callbacks, no browser needed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from websockets.sync.client import connect

from dashboard.sessions import COOKIE, tag
from tests import http_client
from tests.browser_support import PanelProcess
from tests.conftest import MonitorProcess
from tests.test_panel_login import PASSWORD, _login_via_panel

BED = "shared-login-bed"


@pytest.fixture(scope="module")
def monitor(sqlite_server: MonitorProcess) -> MonitorProcess:
    sqlite_server.add_device("shared-login-mon", BED)
    return sqlite_server


@pytest.fixture(scope="module")
def panels(
    monitor: MonitorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PanelProcess, PanelProcess]]:
    """Two panel processes on their own ports, in front of the one monitor."""
    work = tmp_path_factory.mktemp("panels")
    first, second = PanelProcess(monitor.base_url, work), PanelProcess(monitor.base_url, work)
    first.start()
    try:
        second.start()
        yield first, second
    finally:
        first.stop()
        second.stop()


def log_in(monitor: MonitorProcess, panel: PanelProcess) -> tuple[str, str]:
    """A fresh nurse logged in through the panel's login callback: name and cookie."""
    name = f"sl-{uuid.uuid4().hex[:6]}"
    monitor.add_user(name, "nurse", PASSWORD)
    out = _login_via_panel(panel, name, PASSWORD)
    return name, out.headers["set-cookie"].split(";", 1)[0].split("=", 1)[1]


def readings(panel: PanelProcess, cookie: str) -> int:
    """An authenticated panel API call with the login cookie, as the page makes it."""
    return http_client.get(
        f"{panel.url}/panel/api/readings",
        params={"bed": BED},
        cookies={COOKIE: cookie},
        headers={"X-Vigil-Session": tag(cookie)},
        timeout=20,
    ).status_code


def log_out(panel: PanelProcess, cookie: str, name: str) -> None:
    """The logout button's Dash callback, as the browser sends it."""
    deps = http_client.get(f"{panel.url}/_dash-dependencies", timeout=20).json()
    dep = next(d for d in deps if {"id": "logout", "property": "n_clicks"} in d["inputs"])
    output_id, output_prop = dep["output"].split(".", 1)
    body: dict[str, Any] = {
        "output": dep["output"],
        "outputs": {"id": output_id, "property": output_prop},
        "inputs": [{"id": "logout", "property": "n_clicks", "value": 1}],
        "state": [
            {"id": "auth", "property": "data", "value": {"username": name, "session": tag(cookie)}}
        ],
        "changedPropIds": ["logout.n_clicks"],
    }
    r = http_client.post(
        f"{panel.url}/_dash-update-component", json=body, cookies={COOKIE: cookie}, timeout=20
    )
    assert r.status_code == 200, r.text


def test_a_panel_login_survives_a_panel_restart_and_opens_a_second_panel(
    monitor: MonitorProcess, panels: tuple[PanelProcess, PanelProcess]
) -> None:
    """The cookie a panel set at login still works after that panel restarts, and on another
    panel process of the same monitor, for its API calls and its feed (docs/security.md)."""
    first, second = panels
    _, cookie = log_in(monitor, first)
    assert readings(first, cookie) == 200
    first.stop()
    first.start()
    assert readings(first, cookie) == 200
    # A page load's worth of calls at once on the other panel, which has not seen it yet.
    with ThreadPoolExecutor(20) as pool:
        assert list(pool.map(lambda _: readings(second, cookie), range(20))) == [200] * 20
    feed = second.url.replace("http://", "ws://") + f"/panel/feed?session={tag(cookie)}"
    with connect(feed, additional_headers={"Cookie": f"{COOKIE}={cookie}"}) as ws:
        assert '"hello"' in str(ws.recv(timeout=10))
    # A cookie no login made opens neither.
    assert readings(first, "not-a-token") == 401 and readings(second, "not-a-token") == 401


def test_logging_out_on_one_panel_ends_the_login_on_both(
    monitor: MonitorProcess, panels: tuple[PanelProcess, PanelProcess]
) -> None:
    """Logout through one panel revokes the token at the monitor: both panels refuse the
    cookie from then on (docs/security.md)."""
    first, second = panels
    name, cookie = log_in(monitor, first)
    assert readings(second, cookie) == 200  # the second panel has it remembered now
    log_out(first, cookie, name)
    assert readings(first, cookie) == 401
    assert readings(second, cookie) == 401
    entries = monitor.get("/api/audit", limit=10_000)["entries"]
    assert [e["action"] for e in entries if e["actor"] == name] == ["login", "logout"]


def test_disabling_a_user_ends_their_login_on_every_panel(
    monitor: MonitorProcess, panels: tuple[PanelProcess, PanelProcess]
) -> None:
    """``disable-user`` revokes the user's tokens at the monitor: neither panel lets the
    cookie in any more (docs/security.md)."""
    first, second = panels
    name, cookie = log_in(monitor, second)
    assert readings(first, cookie) == 200 and readings(second, cookie) == 200
    assert monitor.post(f"/api/users/{name}/disable").status_code == 200
    assert readings(first, cookie) == 401
    assert readings(second, cookie) == 401
