"""make fuzz: schemathesis's own CLI, every phase, against a live monitor (docs/api.md).

Starts `python -m monitor serve` on a fresh database (SQLite by default, or --db URL),
seeds an admin, SEED_BEDS beds each with a device and an open session (ids 1..SEED_BEDS: the
small ids generators favour lead somewhere, and one `end` event does not leave the
session operations without a session to work on for the rest of the run), one free bed for the
admission body's documented example, and an alarm, then runs
`schemathesis run` with the admin's token: examples, coverage, fuzzing and stateful phases,
--examples per operation (default 80), checking not_a_server_error,
response_schema_conformance and status_code_conformance. Exits non-zero when schemathesis
finds anything or the monitor logged an unhandled exception.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance"
SEED_BEDS = 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _monitor(*args: str, stdin: str | None = None) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return out.stdout


async def _alarm(ws_url: str, token: str) -> None:
    """One cuff reading far above the systolic limit: an alarm at once (docs/alarms.md)."""
    from monitor.wire.device import encode_reading

    async with websockets.connect(
        f"{ws_url}/ws/device", additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        await ws.send(
            encode_reading("fz-dev-1", 1, time.time(), {"sbp": 215, "dbp": 100, "map": 138}, "nibp")
        )
        reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert reply["type"] == "ack", reply


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=80, help="examples per operation")
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    parser.add_argument("--log", type=Path, help="keep the monitor's log here")
    # Anything else goes to `schemathesis run` as is (e.g. --report har --report-dir DIR).
    args, passthrough = parser.parse_known_args()

    with tempfile.TemporaryDirectory(prefix="vigil-fuzz-") as tmp:
        db = args.db or f"sqlite:///{Path(tmp) / 'fuzz.db'}"
        password = secrets.token_urlsafe(12)
        _monitor("add-user", "admin", "--role", "admin", "--db", db, stdin=password + "\n")
        # The admission body's documented example admits to chair-1: a bed with a device and
        # no session, so that operation is seen to succeed, not only to refuse.
        _monitor("add-device", "fz-dev-free", "--bed", "chair-1", "--db", db)
        device_token = ""
        for n in range(1, SEED_BEDS + 1):
            token = _monitor("add-device", f"fz-dev-{n}", "--bed", f"fz-bed-{n}", "--db", db)
            device_token = device_token or token.strip()
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        log_path = Path(tmp) / "monitor.log"
        with open(log_path, "wb") as log:
            server = subprocess.Popen(
                [sys.executable, "-m", "monitor", "serve", "--port", str(port), "--db", db],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            try:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline or server.poll() is not None:
                        print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
                        return 2
                    time.sleep(0.2)
                login = {"username": "admin", "password": password}
                token = httpx.post(f"{base}/api/auth/token", data=login).json()["access_token"]
                auth = {"Authorization": f"Bearer {token}"}
                for n in range(1, SEED_BEDS + 1):
                    # Two sessions a patient: the course operations get a real course.
                    body = {
                        "bed": f"fz-bed-{n}",
                        "patient_label": f"FZ-{n}",
                        "patient_id": f"fz-patient-{(n + 1) // 2}",
                    }
                    httpx.post(f"{base}/api/sessions", json=body, headers=auth).raise_for_status()
                asyncio.run(_alarm(f"ws://127.0.0.1:{port}", device_token))
                cmd = [
                    str(Path(sys.executable).with_name("schemathesis")),
                    "run",
                    f"{base}/openapi.json",
                    "--checks",
                    CHECKS,
                    "--phases",
                    args.phases,
                    "--max-examples",
                    str(args.examples),
                    "--header",
                    f"Authorization: Bearer {token}",
                    "--workers",
                    "1",
                    # Logging out revokes the one token the run uses: every later case would
                    # get 401. Logout is fuzzed in tests/test_schemathesis_api.py, where each
                    # call spends a token of its own, and pinned in tests/test_login_security.py.
                    "--exclude-path",
                    "/api/auth/logout",
                    *passthrough,
                ]
                code = subprocess.call(cmd, cwd=tmp)
            finally:
                server.terminate()
                try:
                    server.wait(10)
                except subprocess.TimeoutExpired:
                    server.kill()
        text = log_path.read_text(errors="replace")
        if args.log:
            args.log.write_text(text)
        if "Exception in ASGI application" in text or "Traceback" in text:
            print("the monitor logged an unhandled exception:", file=sys.stderr)
            print(text[-5000:], file=sys.stderr)
            return code or 1
        return code


if __name__ == "__main__":
    sys.exit(main())
