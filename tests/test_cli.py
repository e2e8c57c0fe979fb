"""Admin commands (contract: add-device, import-devices, add-user; tokens hashed at rest)."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests import http_client
from tests.conftest import MonitorProcess


def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_add_device_prints_a_token_once_and_stores_only_its_hash(tmp_path: Path) -> None:
    """add-device prints the token; the database holds its SHA-256, never the token."""
    db = tmp_path / "v.db"
    r = cli("add-device", "chair-1-mon", "--bed", "chair-1", "--db", f"sqlite:///{db}")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert len(token) >= 40
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute("select token_hash from devices where id='chair-1-mon'").fetchone()
        beds = conn.execute("select id from beds").fetchall()
    assert stored == hashlib.sha256(token.encode()).hexdigest() and token not in stored
    assert beds == [("chair-1",)]


def test_import_devices_prints_device_token_lines(tmp_path: Path) -> None:
    """import-devices reads device_id,bed_id and prints a header then device_id,token lines."""
    csv = tmp_path / "d.csv"
    csv.write_text("device_id,bed_id\nd1,b1\nd2,b1\nd3,b2\n")
    r = cli("import-devices", str(csv), "--db", f"sqlite:///{tmp_path / 'v.db'}")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] == "device_id,token"
    assert [line.split(",")[0] for line in lines[1:]] == ["d1", "d2", "d3"]
    assert len({line.split(",")[1] for line in lines[1:]}) == 3


def test_import_devices_refuses_a_bad_header(tmp_path: Path) -> None:
    """A CSV without the contract's header is refused with a clear message."""
    csv = tmp_path / "d.csv"
    csv.write_text("id,bed\nd1,b1\n")
    r = cli("import-devices", str(csv), "--db", f"sqlite:///{tmp_path / 'v.db'}")
    assert r.returncode != 0 and "device_id,bed_id" in r.stderr


def test_bad_ids_and_db_urls_are_refused(tmp_path: Path) -> None:
    """Ids with unsafe characters and unknown database URLs get an error, not a traceback."""
    r = cli("add-device", "a b", "--bed", "x", "--db", f"sqlite:///{tmp_path / 'v.db'}")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    r = cli("add-device", "ok", "--bed", "x", "--db", "mysql://x")
    assert r.returncode != 0 and "db" in r.stderr and "Traceback" not in r.stderr


def test_add_user_reads_the_password_from_stdin_and_can_log_in(
    sqlite_server: MonitorProcess,
) -> None:
    """add-user takes the password on standard input; the user can then log in."""
    r = cli(
        "add-user",
        "nina",
        "--role",
        "nurse",
        "--db",
        sqlite_server.db_url,
        stdin="correct horse battery\n",
    )
    assert r.returncode == 0, r.stderr
    token = sqlite_server.login("nina", "correct horse battery")
    me = http_client.get(
        f"{sqlite_server.base_url}/api/me", headers={"Authorization": f"Bearer {token}"}
    )
    assert me.json() == {"username": "nina", "role": "nurse"}
    short = cli("add-user", "x", "--role", "nurse", "--db", sqlite_server.db_url, stdin="short\n")
    assert short.returncode != 0


def test_disable_and_enable_user_name_a_user_or_refuse_clearly(tmp_path: Path) -> None:
    """disable-user / enable-user change an existing user (audited); an unknown name is an
    error that says so, and a second add-user of a name needs --reset (docs/security.md)."""
    db = f"sqlite:///{tmp_path / 'v.db'}"
    assert (
        cli("add-user", "rita", "--role", "nurse", "--db", db, stdin="pw-rita-123\n").returncode
        == 0
    )
    again = cli("add-user", "rita", "--role", "admin", "--db", db, stdin="pw-rita-456\n")
    assert again.returncode != 0 and "--reset" in again.stderr and "Traceback" not in again.stderr
    r = cli("disable-user", "rita", "--db", db)
    assert r.returncode == 0 and "disabled" in r.stderr, r.stderr
    assert cli("enable-user", "rita", "--db", db).returncode == 0
    missing = cli("disable-user", "nobody", "--db", db)
    assert missing.returncode != 0 and "no user nobody" in missing.stderr
    assert "Traceback" not in missing.stderr

    async def actions() -> list[tuple[str, str]]:
        from monitor.records.store import Store

        store = await Store.open(db)
        try:
            return [(e["action"], e["target"]) for e in await store.audit_entries()]
        finally:
            await store.close()

    import asyncio

    done = asyncio.run(actions())
    assert {("user_add", "rita"), ("user_disable", "rita"), ("user_enable", "rita")} <= set(done)
    assert ("user_reset", "rita") not in done


async def test_retention_drops_only_readings_older_than_the_period(app_factory) -> None:  # type: ignore[no-untyped-def]
    """VIGIL_RETENTION_DAYS (settings retention_days): readings measured before the period
    go, newer ones stay. The app in this process, restarted with the setting: the sweep is
    the monitor's, not the process's."""
    import asyncio
    import time

    from tests.polling import apoll
    from tests.wsclient import Device

    s = await asyncio.to_thread(app_factory)
    token = s.add_device("ret-mon", "ret-bed")
    async with Device(s.ws_url, "ret-mon", token) as dev:
        assert (await dev.reading(1, {"hr": 70}, ts=time.time() - 3 * 86_400))["type"] == "ack"
        assert (await dev.reading(2, {"hr": 71}))["type"] == "ack"
    await asyncio.to_thread(s.stop)
    s.settings["retention_days"] = 1
    await asyncio.to_thread(s.start)

    def kept() -> list[int]:
        return [r["seq"] for r in s.get("/api/readings", bed="ret-bed")["readings"]]

    # The sweep runs beside the start, not before /health answers: wait for it.
    await apoll(lambda: kept() == [2], timeout=20)
