"""Shared fixtures: a real monitor process on a free loopback port, on SQLite or PostgreSQL.

`server` runs every test that uses it twice, once per storage engine (the suite must pass
on both); `sqlite_server` is for tests whose subject is not storage (browser, simulators).
`InProcessMonitor` is the same app built in the test process and served by uvicorn on a free
port (tests/inprocess.py): for tests whose subject is the API, not the process.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import psycopg
import pytest
import yaml

from monitor.alarms.config import DEFAULT_CONFIG_PATH
from tests import http_client, spawn

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_DSN = os.environ.get("VIGIL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
ADMIN_PASSWORD = "admin-password-for-tests"
# The suite hashes and verifies several hundred passwords: every monitor here (in-process,
# and subprocesses, which inherit the environment) hashes new ones with OWASP's argon2id
# minimum, a sixth of the default's CPU (docs/security.md, "Password hashing"). A test whose
# subject is the hashing cost sets the default profile on its own monitor.
HASHING_ENV = "VIGIL_LOGIN_HASH_PROFILE"
os.environ.setdefault(HASHING_ENV, "owasp-minimum")


# The modules of about a minute or more (on 4 workers, 2 cores), handed to the workers first:
# `make test` shares whole modules out (--dist loadfile), and a long one started last would
# leave the others idle while it ends. An order only; nothing depends on it.
LONG_MODULES = (
    "test_pipeline_faults.py",
    "test_browser_ward.py",
    "test_cluster_failover.py",
    "test_schemathesis_api.py",
    "test_browser_bedpage.py",
    "test_browser_panel.py",
    "test_login_security.py",
    "test_browser_flows.py",
    "test_sim_e2e.py",
    "test_crash_recovery.py",
    "test_demo_story.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long modules first, each keeping its own order of tests."""
    rank = {name: i for i, name in enumerate(LONG_MODULES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


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


@functools.cache
def admin_password_hash() -> str:
    """The admin's hash, made once per test process (any valid hash of the password does)."""
    from monitor.core.security import PasswordHashing, hash_password

    return hash_password(ADMIN_PASSWORD, PasswordHashing(os.environ[HASHING_ENV]))


def seed_admin(db_url: str) -> None:
    from monitor.records.store import Store

    async def run() -> None:
        store = await Store.open(db_url)
        try:
            await store.add_user("admin", "admin", admin_password_hash(), time.time())
        finally:
            await store.close()

    # In a thread of its own: async tests call factories from inside a running loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def terminate(
    proc: subprocess.Popen[bytes] | spawn.ForkedProcess | None, grace: float = 10.0
) -> None:
    """SIGTERM (a clean shutdown), then SIGKILL if it has not gone within ``grace`` s."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Pollable(Protocol):
    """A running server: a process, or the thread of an in-process one."""

    def poll(self) -> int | None: ...


def wait_healthy(
    proc: Pollable, url: str, timeout: float, statuses: tuple[int, ...] = (200,)
) -> bool:
    """Poll ``url`` until it answers one of ``statuses``; False if the process exits or time
    runs out."""
    deadline = time.monotonic() + timeout
    # One client for the polling: building one (its TLS context) costs ~50 ms of CPU.
    with http_client.Client(timeout=1) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if http.get(url).status_code in statuses:
                    return True
            except httpx.HTTPError:
                pass
            # Short: a refused connect costs next to nothing, and the suite starts a few
            # hundred servers, each waited for by this loop.
            time.sleep(0.03)
    return False


class MonitorProcess:
    """A real `python -m monitor serve` process, with helpers to talk to it: forked from the
    worker's warm zygote (tests/spawn.py), so it skips the interpreter start and imports."""

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
        self.proc: subprocess.Popen[bytes] | spawn.ForkedProcess | None = None
        self.log_path = workdir / f"monitor-{self.port}.log"
        self.admin_token = ""
        self._http: httpx.Client | None = None

    @property
    def http(self) -> httpx.Client:
        """One keep-alive client for the helpers below, closed when the server stops: an
        httpx client per call (its TLS context) cost ~50 ms, much of many API tests' time."""
        if self._http is None:
            self._http = http_client.Client(base_url=self.base_url, timeout=10)
        return self._http

    def _close_http(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_token}"}

    def start(self, timeout: float = 30.0, *, degraded: bool = False) -> None:
        """Start and wait for /health: 200, or with ``degraded`` also 503 (a monitor that
        started but names a failing stage)."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.extra_env}
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--db", self.db_url]
        self._log = open(self.log_path, "ab")
        # `python -m monitor serve`, forked from a warm zygote (tests/spawn.py).
        self.proc = spawn.python_module(
            "monitor", [*args, *self.extra_args], cwd=self.workdir, env=env, log=self._log
        )
        statuses = (200, 503) if degraded else (200,)
        if not wait_healthy(self.proc, f"{self.base_url}/health", timeout, statuses):
            self.kill()
            raise RuntimeError(f"monitor did not start:\n{self.log_text()[-3000:]}")
        if not self.admin_token:
            self.admin_token = self.login("admin", ADMIN_PASSWORD)

    def login(self, name: str, password: str) -> str:
        r = self.http.post(
            "/api/auth/token",
            data={"username": name, "password": password},
            timeout=60,  # argon2 on a loaded 2-core box
        )
        r.raise_for_status()
        return str(r.json()["access_token"])

    def add_device(self, device_id: str, bed_id: str) -> str:
        r = self.http.post(
            "/api/devices", json={"device_id": device_id, "bed": bed_id}, headers=self.headers
        )
        r.raise_for_status()
        return str(r.json()["token"])

    def add_user(self, name: str, role: str, password: str) -> None:
        r = self.http.post(
            "/api/users",
            json={"name": name, "role": role, "password": password},
            headers=self.headers,
        )
        r.raise_for_status()

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params, headers=self.headers)
        r.raise_for_status()
        return r.json()

    def post(
        self, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """POST as the admin, or with ``headers`` (another user's token)."""
        return self.http.post(path, json=body, headers=headers or self.headers)

    def stop(self) -> None:
        terminate(self.proc)
        self._close_log()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self._close_log()

    def _close_log(self) -> None:
        self._close_http()
        log = getattr(self, "_log", None)
        if log is not None and not log.closed:
            log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class InProcessMonitor(MonitorProcess):
    """The monitor app built in this process, ``create_app(Settings(...))``, served by uvicorn
    with the options ``serve`` uses (monitor.cli.server_options) on a free loopback port, in a
    thread with its own event loop: real HTTP and websockets and MonitorProcess's helpers,
    without a Python start-up per server. Not for tests of the process itself (kill -9,
    restart, signals, fault points that kill): those keep MonitorProcess."""

    def __init__(self, db_url: str, workdir: Path, settings: dict[str, Any] | None = None) -> None:
        super().__init__(db_url, workdir)
        self.settings = dict(settings or {})
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._log_handler: logging.Handler | None = None
        self._root_level = logging.NOTSET

    def start(self, timeout: float = 30.0, *, degraded: bool = False) -> None:
        import uvicorn

        from monitor.app import create_app
        from monitor.cli import server_options
        from monitor.settings import Settings

        settings = Settings(host="127.0.0.1", port=self.port, db=self.db_url, **self.settings)
        # The app's log lines go to this server's log file, as the process's would (log_text);
        # log_config=None: uvicorn must not reconfigure the test process's logging.
        self._capture_log(settings.log_level.upper())
        config = uvicorn.Config(create_app(settings), **server_options(settings), log_config=None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name=f"monitor-{self.port}", daemon=True
        )
        self._thread.start()
        statuses = (200, 503) if degraded else (200,)
        if not wait_healthy(_Thread(self._thread), f"{self.base_url}/health", timeout, statuses):
            self.stop()
            raise RuntimeError(f"monitor did not start:\n{self.log_text()[-3000:]}")
        if not self.admin_token:
            self.admin_token = self.login("admin", ADMIN_PASSWORD)

    def _capture_log(self, level: str) -> None:
        handler = logging.FileHandler(self.log_path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(level)
        root = logging.getLogger()
        self._root_level = root.level
        root.setLevel(min(root.level or logging.WARNING, logging.getLevelName(level)))
        root.addHandler(handler)
        self._log_handler = handler

    def stop(self) -> None:
        """A clean shutdown: uvicorn's graceful exit and the app's lifespan end."""
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(30)
            if self._thread.is_alive():
                raise RuntimeError(f"in-process monitor on port {self.port} did not stop")
        self._server = self._thread = None
        self._close_http()
        if self._log_handler is not None:
            root = logging.getLogger()
            root.removeHandler(self._log_handler)
            root.setLevel(self._root_level)
            self._log_handler.close()
            self._log_handler = None

    def kill(self) -> None:
        # A thread cannot be killed: tests that kill a monitor use MonitorProcess.
        self.stop()


class _Thread:
    """A server thread seen as a process by wait_healthy: gone once the thread has ended."""

    def __init__(self, thread: threading.Thread) -> None:
        self.thread = thread

    def poll(self) -> int | None:
        return None if self.thread.is_alive() else 1


def start_in_process(
    db_url: str, workdir: Path, settings: dict[str, Any] | None = None
) -> InProcessMonitor:
    """Seed the admin and start an in-process monitor on ``db_url``."""
    seed_admin(db_url)
    srv = InProcessMonitor(db_url, workdir, settings)
    srv.start()
    return srv


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


@pytest.fixture
def app_factory(tmp_path: Path) -> Iterator[Any]:
    """In-process monitors with their own settings: ``app_factory(db_url=None, **settings)``
    (a fresh SQLite file unless ``db_url``), stopped after the test."""
    started: list[InProcessMonitor] = []

    def factory(db_url: str | None = None, **settings: Any) -> InProcessMonitor:
        url = db_url or f"sqlite:///{tmp_path / f'vigil-{len(started)}.db'}"
        srv = start_in_process(url, tmp_path, settings)
        started.append(srv)
        return srv

    yield factory
    for srv in started:
        srv.stop()
