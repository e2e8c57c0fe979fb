"""Shared pieces of the benchmarks: server processes, database seeding, statistics.

Every server runs as its own process on a free loopback port, with the monitor's production
uvicorn settings (monitor/cli.py); load generators run in other processes (bench.loadgen).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
NURSE = ("bench-nurse", "bench-nurse-password")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit(want: int = 65536) -> None:
    """Thousands of sockets per process: lift the soft limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(want, hard) if hard != resource.RLIM_INFINITY else want
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@contextlib.contextmanager
def workdir(keep: bool = False) -> Iterator[Path]:
    # On disk, not tmpfs: SQLite's synchronous=FULL must pay for real fsyncs.
    path = Path(tempfile.mkdtemp(prefix="vigil-bench-", dir="/var/tmp"))
    try:
        yield path
    finally:
        if not keep:
            import shutil

            shutil.rmtree(path, ignore_errors=True)


# --- statistics -------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return math.nan
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))
    return float(s[k])


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by one process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


# --- seeding ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fleet:
    """Devices registered for a run: device i sits on bed i."""

    devices: list[tuple[str, str, str]]  # (device_id, bed_id, token)

    def slice(self, start: int, stop: int) -> list[tuple[str, str, str]]:
        return self.devices[start:stop]


def device_names(n: int, prefix: str = "b") -> list[tuple[str, str]]:
    return [(f"{prefix}dev-{i:05d}", f"{prefix}bed-{i:05d}") for i in range(n)]


def seed(
    db_url: str,
    pairs: Sequence[tuple[str, str]],
    *,
    users: Sequence[tuple[str, str, str]] = (NURSE + ("nurse",),),
) -> Fleet:
    """Create the schema, beds, devices (with fresh tokens) and users in one transaction.

    Bulk inserts rather than `monitor add-device` per device: registering 6,000 devices one
    command (and one fsync) at a time would take longer than the benchmark.
    """
    from monitor.core.security import PasswordHashing, hash_password, new_token, token_hash
    from monitor.records.schema import beds, devices
    from monitor.records.store import Store
    from monitor.settings import Settings

    # The profile the monitor under test hashes new passwords with (VIGIL_LOGIN_HASH_PROFILE).
    profile = PasswordHashing(Settings().login_hash_profile)

    tokens = [new_token() for _ in pairs]

    async def run() -> None:
        store = await Store.open(db_url)
        try:
            now = time.time()
            bed_ids = sorted({b for _, b in pairs})
            async with store.engine.begin() as conn:
                if bed_ids:
                    await conn.execute(
                        beds.insert(), [{"id": b, "label": b, "created_at": now} for b in bed_ids]
                    )
                if pairs:
                    await conn.execute(
                        devices.insert(),
                        [
                            {"id": d, "bed_id": b, "token_hash": token_hash(t), "created_at": now}
                            for (d, b), t in zip(pairs, tokens, strict=True)
                        ],
                    )
            for name, password, role in users:
                await store.add_user(name, role, hash_password(password, profile), now)
        finally:
            await store.close()

    run_async(run())
    return Fleet([(d, b, t) for (d, b), t in zip(pairs, tokens, strict=True)])


def run_async(coro: Any) -> Any:
    """Run a coroutine to its end from synchronous bench code (in a thread of its own, so a
    caller already inside an event loop can use it too)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


# --- server processes -----------------------------------------------------------------


class ServerProcess:
    """A server subprocess on a free loopback port; ready once its health URL answers."""

    def __init__(
        self, cmd: list[str], port: int, health: str, log_path: Path, env: dict[str, str]
    ) -> None:
        self.cmd = cmd
        self.port = port
        self.health = health
        self.log_path = log_path
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0, every_s: float = 0.1) -> ServerProcess:
        """Launch, then poll the health URL every ``every_s`` until it answers 200; raises
        RuntimeError (the process stopped) if it exits or is not healthy within ``timeout``."""
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.cmd[2]} exited early:\n{self.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + self.health, timeout=1).status_code == 200:
                    return self
            time.sleep(every_s)
        self.stop()
        raise RuntimeError(f"{self.cmd[2]} did not start:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# Benchmarks that push one connection past a bedside monitor's rate lift the per-device
# flood limit (50 frames/s by default); everything else runs with the shipped settings.
UNLIMITED_RATE = {"VIGIL_DEVICE_RATE_PER_S": "1000000", "VIGIL_DEVICE_RATE_BURST": "1000000"}


def monitor_server(work: Path, db_url: str, env: dict[str, str] | None = None) -> ServerProcess:
    port = free_port()
    cmd = [PY, "-m", "monitor", "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--db", db_url]
    return ServerProcess(cmd, port, "/health", work / f"monitor-{port}.log", env or {})


def bare_server(work: Path) -> ServerProcess:
    port = free_port()
    cmd = [PY, "-m", "bench.bare", "--port", str(port)]
    return ServerProcess(cmd, port, "/health", work / f"bare-{port}.log", {})


def panel_server(work: Path, monitor_url: str) -> ServerProcess:
    port = free_port()
    cmd = [PY, "-m", "dashboard", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--monitor-url", monitor_url]
    return ServerProcess(cmd, port, "/panel/health", work / f"panel-{port}.log", {})


def login(base_url: str, user: str = NURSE[0], password: str = NURSE[1]) -> str:
    r = httpx.post(
        base_url + "/api/auth/token", data={"username": user, "password": password}, timeout=10
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


def sqlite_url(work: Path, name: str = "vigil.db") -> str:
    return f"sqlite:///{work / name}"


class CpuSampler:
    """Samples a process's CPU seconds and RSS a few times a second, from this process."""

    def __init__(self, pid: int, every_s: float = 0.25) -> None:
        import threading

        self.pid = pid
        self.every_s = every_s
        self.samples: list[tuple[float, float, int]] = []  # (wall, cpu s, rss bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, RuntimeError):
                self.samples.append((time.time(), cpu_seconds(self.pid), rss_bytes(self.pid)))
            self._stop.wait(self.every_s)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_between(self, t0: float, t1: float) -> float:
        """Cores used on average between two wall times (nearest samples inside)."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2:
            return math.nan
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])
