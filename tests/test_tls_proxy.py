"""The documented TLS front (deploy/Caddyfile, docs/deployment.md) run for real: Caddy in
front of a real monitor and a real panel, panel, API, feed and devices over TLS, and a
client's forged X-Forwarded-For overwritten before the monitor sees it."""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from dashboard.sessions import tag
from monitor.wire.device import encode_reading
from tests import http_client
from tests.browser_support import PanelProcess
from tests.conftest import ROOT, MonitorProcess, free_port, terminate
from tests.test_panel_login import login_callback_body

PASSWORD = "tls-proxy-password-1"


class Caddy:
    """`caddy run` with the repository's Caddyfile, upstreams pointed at local processes."""

    def __init__(self, workdir: Path, monitor: MonitorProcess, panel: PanelProcess) -> None:
        caddy = shutil.which("caddy")
        assert caddy, "caddy is not installed: run `make proxy-tool` (Debian's caddy package)"
        self.port = free_port()
        self.url = f"https://localhost:{self.port}"
        self.data = workdir / "caddy-data"
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "XDG_DATA_HOME": str(self.data),
            "XDG_CONFIG_HOME": str(workdir / "caddy-config"),
            "VIGIL_TLS_PORT": str(self.port),
            "VIGIL_CADDY_ADMIN": f"127.0.0.1:{free_port()}",
            "VIGIL_MONITORS": f"127.0.0.1:{monitor.port}",
            "VIGIL_PANEL": f"127.0.0.1:{panel.port}",
        }
        self.panel = panel
        self.log_path = workdir / "caddy.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [caddy, "run", "--adapter", "caddyfile", "--config", str(ROOT / "deploy/Caddyfile")],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    @property
    def root_cert(self) -> Path:
        return self.data / "caddy" / "pki" / "authorities" / "local" / "root.crt"

    def ssl_context(self) -> ssl.SSLContext:
        """Trusting Caddy's internal CA only, as a clinic's clients would be told to."""
        return ssl.create_default_context(cafile=str(self.root_cert))

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "caddy exited"
            if self.root_cert.exists():
                try:
                    r = http_client.get(f"{self.url}/health", verify=self.ssl_context(), timeout=2)
                    if r.status_code == 200:
                        return
                except (httpx.HTTPError, ssl.SSLError):
                    pass
            time.sleep(0.2)
        raise AssertionError("caddy did not come up")

    def stop(self) -> None:
        terminate(self.proc)  # type: ignore[arg-type]
        self.log.close()


@pytest.fixture(scope="module")
def front(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Caddy, MonitorProcess]]:
    from tests.conftest import _start

    tmp = tmp_path_factory.mktemp("tls")
    # The monitor trusts the proxy (here on loopback) for X-Forwarded-For, as in compose.
    monitor = _start(
        f"sqlite:///{tmp / 'vigil.db'}", tmp, extra_args=["--forwarded-allow-ips", "127.0.0.1"]
    )
    # The panel trusts the proxy too: for the browser's address and for "this was https".
    panel = PanelProcess(monitor.base_url, tmp, args=["--forwarded-allow-ips", "127.0.0.1"])
    panel.start()
    caddy = Caddy(tmp, monitor, panel)
    try:
        caddy.wait_ready()
        yield caddy, monitor
    finally:
        caddy.stop()
        panel.stop()
        monitor.stop()


def test_panel_api_and_health_are_served_over_tls_with_a_verifiable_certificate(
    front: tuple[Caddy, MonitorProcess],
) -> None:
    """The panel's pages (with their security headers) and the API answer over TLS with HSTS,
    the certificate verifying against the demo's CA; plain HTTP on that port gets nothing."""
    caddy, monitor = front
    ctx = caddy.ssl_context()
    page = http_client.get(f"{caddy.url}/", verify=ctx, timeout=10)
    assert page.status_code == 200 and "_dash-config" in page.text
    assert page.headers["strict-transport-security"].startswith("max-age=")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    r = http_client.post(
        f"{caddy.url}/api/auth/token",
        data={"username": "admin", "password": "admin-password-for-tests"},
        verify=ctx,
        timeout=10,
    )
    assert r.status_code == 200
    beds = http_client.get(
        f"{caddy.url}/api/beds",
        headers={"Authorization": f"Bearer {r.json()['access_token']}"},
        verify=ctx,
        timeout=10,
    )
    assert beds.status_code == 200 and beds.headers["cache-control"] == "no-store"
    clear = http_client.get(f"http://localhost:{caddy.port}/api/beds", timeout=10)
    assert clear.status_code == 400  # "Client sent an HTTP request to an HTTPS server"


def test_the_proxy_overwrites_a_clients_forged_x_forwarded_for(
    front: tuple[Caddy, MonitorProcess],
) -> None:
    """Through the proxy a client's own X-Forwarded-For never reaches the monitor: the audit
    log has the address the proxy saw."""
    caddy, monitor = front
    name = f"tls-{uuid.uuid4().hex[:6]}"
    monitor.add_user(name, "nurse", PASSWORD)
    r = http_client.post(
        f"{caddy.url}/api/auth/token",
        data={"username": name, "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.23"},
        verify=caddy.ssl_context(),
        timeout=10,
    )
    assert r.status_code == 200
    entries = monitor.get("/api/audit", limit=10_000)["entries"]
    targets = {e["target"] for e in entries if e["action"] == "login" and e["actor"] == name}
    assert targets == {"127.0.0.1"}


def test_devices_and_the_feed_work_over_wss_through_the_proxy(
    front: tuple[Caddy, MonitorProcess],
) -> None:
    """A device streams over wss:// and is acknowledged; a panel's feed opened over wss://
    with the first-message login receives that reading."""
    caddy, monitor = front
    dev, bed = f"tls-dev-{uuid.uuid4().hex[:6]}", f"tls-bed-{uuid.uuid4().hex[:6]}"
    device_token = monitor.add_device(dev, bed)
    wss = caddy.url.replace("https://", "wss://")
    ctx = caddy.ssl_context()
    with ws_connect(f"{wss}/ws/feed", ssl=ctx) as feed:
        feed.send(json.dumps({"type": "auth", "v": 1, "token": monitor.admin_token}))
        assert json.loads(feed.recv(timeout=10))["type"] == "hello"
        with ws_connect(
            f"{wss}/ws/device",
            ssl=ctx,
            additional_headers={"Authorization": f"Bearer {device_token}"},
        ) as device:
            device.send(encode_reading(dev, 1, time.time(), {"hr": 64}))
            assert json.loads(device.recv(timeout=10)) == {"type": "ack", "seq": 1}
        deadline = time.monotonic() + 10
        got: dict[str, Any] = {}
        while time.monotonic() < deadline:
            got = json.loads(feed.recv(timeout=10))
            if got.get("type") == "reading" and got.get("device_id") == dev:
                break
        assert got.get("values") == {"hr": 64}


def test_the_panels_session_cookie_is_secure_over_tls_and_its_feed_relays_over_wss(
    front: tuple[Caddy, MonitorProcess],
) -> None:
    """Logged in through the proxy, the panel's session cookie is Secure (as well as HttpOnly
    and SameSite=Strict), and with it the relayed feed opens over wss:// on the same origin."""
    caddy, monitor = front
    name = f"tls-panel-{uuid.uuid4().hex[:6]}"
    monitor.add_user(name, "nurse", PASSWORD)
    ctx = caddy.ssl_context()
    r = http_client.post(
        f"{caddy.url}/_dash-update-component",
        json=login_callback_body(name, PASSWORD),
        verify=ctx,
        timeout=20,
    )
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    attrs = {a.strip().lower() for a in cookie.split(";")}
    assert {"httponly", "secure", "samesite=strict"} <= attrs, cookie
    sid = cookie.split(";", 1)[0].split("=", 1)[1]
    wss = caddy.url.replace("https://", "wss://")
    hello = first_message(
        caddy, f"{wss}/panel/feed?session={tag(sid)}", ctx, {"Cookie": f"vigil_session={sid}"}
    )
    assert hello["type"] == "hello"


def first_message(
    caddy: Caddy, url: str, ctx: ssl.SSLContext, headers: dict[str, str], bound: float = 40.0
) -> dict[str, Any]:
    """The first message of a wss:// feed, or a failure that shows what the proxy and the
    panel logged. The bound is kept here, around a thread: once a handshake has timed out,
    the websockets sync client can stay blocked in a TLS read (a TLS 1.3 session ticket made
    the socket readable) until the test's own timeout, which would say nothing."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            with ws_connect(url, ssl=ctx, additional_headers=headers, open_timeout=20) as feed:
                box["message"] = json.loads(feed.recv(timeout=10))
        except Exception as e:  # reported below, with the logs
            box["error"] = e

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(bound)
    if "message" in box:
        return dict(box["message"])
    pytest.fail(
        f"no feed message within {bound:g} s ({box.get('error', 'still connecting')!r});\n"
        f"caddy: {caddy.log_path.read_text(errors='replace')[-2000:]}\n"
        f"panel: {caddy.panel.log_text()[-2000:]}"
    )
