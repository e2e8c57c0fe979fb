"""Shared fixtures: a real monitor process on a free loopback port, on SQLite or PostgreSQL.

`server` runs every test that uses it twice, once per storage engine (the suite must pass
on both); `sqlite_server` is for tests whose subject is not storage (browser, simulators).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml

from monitor.alarms.config import DEFAULT_CONFIG_PATH

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get("VIGIL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
ADMIN_PASSWORD = "admin-password-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_base() -> str:
    return PG_ADMIN_DSN.rsplit("/", 1)[0]


def create_pg_database() -> str:
    name = f"vigil_t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # name is generated above, not user input
    return f"{_pg_base()}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed_admin(db_url: str) -> None:
    from monitor.db.store import Store
    from monitor.security import hash_password

    async def run() -> None:
        store = await Store.open(db_url)
        try:
            await store.add_user("admin", "admin", hash_password(ADMIN_PASSWORD), time.time())
        finally:
            await store.close()

    # In a thread of its own: async tests call factories from inside a running loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def terminate(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL if it has not gone within ``grace`` s."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_healthy(
    proc: subprocess.Popen[bytes], url: str, timeout: float, statuses: tuple[int, ...] = (200,)
) -> bool:
    """Poll ``url`` until it answers one of ``statuses``; False if the process exits or time
    runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            if httpx.get(url, timeout=1).status_code in statuses:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return False


class MonitorProcess:
    """A real `python -m monitor serve` subprocess, with helpers to talk to it."""

    def __init__(
        self,
        db_url: str,
        workdir: Path,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.db_url = db_url
        self.workdir = workdir
        self.extra_args = extra_args or []
        self.extra_env = env or {}
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"monitor-{self.port}.log"
        self.admin_token = ""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def start(self, timeout: float = 30.0, *, degraded: bool = False) -> None:
        """Start and wait for /health: 200, or with ``degraded`` also 503 (a monitor that
        started but names a failing stage)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.extra_env}
        cmd = [
            sys.executable,
            "-m",
            "monitor",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db",
            self.db_url,
            *self.extra_args,
        ]
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            cmd, cwd=self.workdir, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        statuses = (200, 503) if degraded else (200,)
        if not wait_healthy(self.proc, f"{self.base_url}/health", timeout, statuses):
            self.kill()
            raise RuntimeError(f"monitor did not start:\n{self.log_text()[-3000:]}")
        if not self.admin_token:
            self.admin_token = self.login("admin", ADMIN_PASSWORD)

    def login(self, name: str, password: str) -> str:
        r = httpx.post(
            f"{self.base_url}/api/auth/token",
            data={"username": name, "password": password},
            timeout=60,  # argon2 on a loaded 2-core box
        )
        r.raise_for_status()
        return str(r.json()["access_token"])

    def add_device(self, device_id: str, bed_id: str) -> str:
        r = httpx.post(
            f"{self.base_url}/api/devices",
            json={"device_id": device_id, "bed": bed_id},
            headers=self.headers,
            timeout=10,
        )
        r.raise_for_status()
        return str(r.json()["token"])

    def add_user(self, name: str, role: str, password: str) -> None:
        r = httpx.post(
            f"{self.base_url}/api/users",
            json={"name": name, "role": role, "password": password},
            headers=self.headers,
            timeout=10,
        )
        r.raise_for_status()

    def get(self, path: str, **params: Any) -> Any:
        r = httpx.get(f"{self.base_url}{path}", params=params, headers=self.headers, timeout=10)
        r.raise_for_status()
        return r.json()

    def post(
        self, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """POST as the admin, or with ``headers`` (another user's token)."""
        return httpx.post(
            f"{self.base_url}{path}", json=body, headers=headers or self.headers, timeout=10
        )

    def stop(self) -> None:
        terminate(self.proc)
        self._close_log()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._close_log()

    def _close_log(self) -> None:
        log = getattr(self, "_log", None)
        if log is not None and not log.closed:
            log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def post_event(
    srv: MonitorProcess, sid: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    """POST one session event (as the admin unless ``headers`` say otherwise); the answer."""
    return srv.post(f"/api/sessions/{sid}/events", body, headers)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.contextmanager
def fresh_database(backend: str, directory: Path) -> Iterator[str]:
    """An empty database of ``backend``: a file in ``directory``, or a PostgreSQL database
    created for the caller and dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / f'vigil-{uuid.uuid4().hex[:8]}.db'}"
        return
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(scope="module")
def db_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(backend, tmp_path_factory.mktemp("db")) as url:
        yield url


def clinic_config(directory: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """The shipped clinic config changed by ``edit``, written to ``directory``/clinic.yaml."""
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    edit(data)
    path = directory / "clinic.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _start(db_url: str, tmp_path: Path, **kw: Any) -> MonitorProcess:
    seed_admin(db_url)
    proc = MonitorProcess(db_url, tmp_path, **kw)
    proc.start()
    return proc


@pytest.fixture(scope="module")
def server(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitorProcess]:
    """The real monitor on a free port, once on SQLite and once on PostgreSQL.

    Shared by the tests of one module: give each test its own device and bed ids.
    """
    proc = _start(db_url, tmp_path_factory.mktemp("monitor"))
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitorProcess]:
    """The real monitor on SQLite, shared by a module's tests (own ids per test, please)."""
    tmp = tmp_path_factory.mktemp("monitor")
    proc = _start(f"sqlite:///{tmp / 'vigil.db'}", tmp)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    """Start monitors with extra CLI arguments or environment: factory(db_url=None, args=[], env={})."""
    started: list[MonitorProcess] = []

    def factory(
        db_url: str | None = None, args: list[str] | None = None, env: dict[str, str] | None = None
    ) -> MonitorProcess:
        url = db_url or f"sqlite:///{tmp_path / f'vigil-{len(started)}.db'}"
        proc = _start(url, tmp_path, extra_args=args, env=env)
        started.append(proc)
        return proc

    yield factory
    for p in started:
        p.stop()
