"""`python -m MODULE ARGS` as a real process, forked from a warm parent instead of exec'd.

Why: a `python -m monitor serve` start cost about 2 s of CPU, 1.7 s of it importing FastAPI,
SQLAlchemy, pydantic and the rest, and the suite starts well over a hundred monitors and
panels on a 2-core machine. Each test worker keeps one *zygote*, a process started once that
has imported those packages and nothing else (no test state, no threads, no event loop). A
spawn asks it to fork; the fork sets its working directory, environment, argv and output
and runs the module's ``__main__`` with runpy, as ``python -m`` does. What the tests get is a
real process of its own: its pid, signals, exit status (negative for a signal, as Popen
says), its log, its crash. Only the interpreter start-up and the imports are shared.

How the fork becomes the worker's child: the worker is made a Linux child subreaper
(prctl PR_SET_CHILD_SUBREAPER) and the zygote forks twice, so the server is re-parented to
the worker, which waits for it like any subprocess.

Limits: what CPython reads only at its own start (the ``PYTHON*`` variables other than
PYTHONUNBUFFERED, which the fork honours by writing through) cannot differ from the
zygote's: such a spawn, a non-Linux machine, or ``VIGIL_TEST_SPAWN=exec`` falls back to a
plain ``subprocess.Popen``. The entry points themselves are still exec'd by the CLI tests
(tests/test_cli.py and the others that run ``python -m monitor ...``).
"""

from __future__ import annotations

import atexit
import ctypes
import io
import json
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
# What the zygote imports: everything the monitor and the panel import on start, so a fork
# imports next to nothing. Import-only modules: none of them reads the environment or
# starts a thread at import (checked by the zygote before each fork).
WARM_MODULES = (
    "monitor.cli",
    "monitor.app",
    "dashboard.app",
    "dashboard.settings",
    "uvicorn",
    "uvicorn.config",
    "uvicorn.main",
    "uvicorn.server",
    "uvicorn.lifespan.on",
    "uvicorn.loops.auto",
    "uvicorn.loops.asyncio",
    "uvicorn.protocols.http.auto",
    "uvicorn.protocols.http.h11_impl",
    "uvicorn.protocols.websockets.auto",
    "uvicorn.protocols.websockets.websockets_impl",
    "sqlalchemy.dialects.sqlite.aiosqlite",
    "sqlalchemy.dialects.postgresql.psycopg",
    "aiosqlite",
    "psycopg",
    "argon2",
)
# Read by CPython before any module runs: a fork cannot take a different value.
_STARTUP_ONLY = frozenset(
    (
        "PYTHONPATH",
        "PYTHONHOME",
        "PYTHONHASHSEED",
        "PYTHONDEVMODE",
        "PYTHONWARNINGS",
        "PYTHONOPTIMIZE",
        "PYTHONDONTWRITEBYTECODE",
        "PYTHONSAFEPATH",
        "PYTHONTRACEMALLOC",
        "PYTHONFAULTHANDLER",
        "PYTHONASYNCIODEBUG",
        "PYTHONMALLOC",
        "PYTHONUTF8",
        "PYTHONIOENCODING",
        "PYTHONNOUSERSITE",
        "PYTHONPLATLIBDIR",
        "PYTHONINTMAXSTRDIGITS",
    )
)
_PR_SET_CHILD_SUBREAPER = 36


class ForkedProcess:
    """The Popen calls the tests make (pid, poll, wait, send_signal, terminate, kill,
    returncode) for a process forked by the zygote and re-parented to this one."""

    def __init__(self, pid: int, args: list[str]) -> None:
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: gone, status unknown
                self.returncode = 1
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            time.sleep(delay)
            delay = min(delay * 2, 0.02)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class _Zygote:
    """This worker's zygote: started on the first spawn, ended with the worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._env: dict[str, str] = {}
        atexit.register(self.close)  # once: a restarted zygote is closed by the same call

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
            self._env = dict(os.environ)
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tests.spawn"],
                cwd=ROOT,
                env=self._env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
        return self._proc

    def compatible(self, env: dict[str, str]) -> bool:
        base = self._env or os.environ
        return all(env.get(name) == base.get(name) for name in _STARTUP_ONLY)

    def spawn(self, module: str, args: list[str], cwd: Path, env: dict[str, str], log: Path) -> int:
        request = {"module": module, "args": args, "cwd": str(cwd), "env": env, "log": str(log)}
        with self._lock:
            proc = self._ensure()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(request).encode() + b"\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        if not line:
            raise RuntimeError("the spawn zygote exited")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the spawn zygote could not fork: {answer['error']}")
        return int(answer["pid"])

    def close(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            assert self._proc.stdin is not None
            self._proc.stdin.close()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._proc = None


_ZYGOTE = _Zygote()


def python_module(
    module: str, args: list[str], *, cwd: Path, env: dict[str, str], log: IO[bytes]
) -> subprocess.Popen[bytes] | ForkedProcess:
    """Run ``python -m module args`` with stdout and stderr to ``log`` (an open file): forked
    from the zygote, or exec'd where a fork could not honour the environment."""
    argv = [sys.executable, "-m", module, *args]
    forkable = (
        sys.platform == "linux"
        and os.environ.get("VIGIL_TEST_SPAWN", "fork") != "exec"
        and _ZYGOTE.compatible(env)
    )
    if forkable:
        pid = _ZYGOTE.spawn(module, args, cwd, env, Path(log.name))
        return ForkedProcess(pid, argv)
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)


# --- the zygote's side ----------------------------------------------------------------------


def _run_as_main(request: dict[str, Any]) -> int:
    """In the fork: become ``python -m module args`` and run it; the exit status."""
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    out = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.closerange(3, 1024)  # the zygote's pipes, so the worker sees them close with it
    # As PYTHONUNBUFFERED gives an exec'd child: every write reaches the log at once.
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), write_through=True)
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), write_through=True, errors="backslashreplace"
    )
    sys.argv = ["-m", *request["args"]]
    sys.path[0] = os.getcwd()
    try:
        runpy.run_module(request["module"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as exit_:
        if exit_.code is None:
            code = 0
        elif isinstance(exit_.code, int):
            code = exit_.code
        else:
            print(exit_.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    return code


def _fork(request: dict[str, Any]) -> int | None:
    """Fork twice; the middle child exits at once so the grandchild is re-parented to the
    worker (the subreaper). The grandchild's pid; None in the grandchild itself."""
    if threading.active_count() != 1:
        raise RuntimeError("the zygote has threads: a fork would lose them")
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        child = -1
        try:
            os.close(read_end)
            child = os.fork()
            if child:
                os.write(write_end, str(child).encode())
        finally:
            if child:  # the middle child (or a failed fork): gone without any clean-up
                os._exit(0)
        os.close(write_end)
        return None
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        pid = pipe.read()
    os.waitpid(middle, 0)
    return int(pid)


def _zygote() -> dict[str, Any] | None:
    """Serve fork requests until the worker closes the pipe; in a fork, its request."""
    import importlib

    for name in WARM_MODULES:
        importlib.import_module(name)
    for line in sys.stdin.buffer:
        request = json.loads(line)
        try:
            pid = _fork(request)
        except Exception as exc:  # said to the worker, which raises it in the test
            answer: dict[str, Any] = {"error": repr(exc)}
        else:
            if pid is None:
                return request
            answer = {"pid": pid}
        sys.stdout.buffer.write(json.dumps(answer).encode() + b"\n")
        sys.stdout.buffer.flush()
    return None


if __name__ == "__main__":
    # The fork leaves the zygote's loop and ends as `python -m` does: its exit status, then
    # the interpreter's own shutdown (threads joined, atexit, output flushed).
    forked = _zygote()
    if forked is not None:
        sys.exit(_run_as_main(forked))
