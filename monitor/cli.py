"""Command line: `python -m monitor serve | add-device | import-devices | add-user | disable-user |
enable-user | alarm-report`.

Every ``serve`` option also has a VIGIL_* environment variable; options win over the
environment. Admin commands work directly on the database named by ``--db``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import getpass
import io
import logging
import sys
import time
from typing import Any

from pydantic import ValidationError

from monitor.core.model import ID_PATTERN, Role
from monitor.settings import Settings


def _settings(args: argparse.Namespace, **extra: Any) -> Settings:
    given = {k: v for k, v in extra.items() if v is not None}
    if getattr(args, "db", None):
        given["db"] = args.db
    try:
        return Settings(**given)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise SystemExit(f"error: invalid setting {where}: {first['msg']}") from None


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for the monitor: ``serve`` uses them, and so do the tests that build
    the app in their own process (tests/conftest.py), so both serve it the same way."""
    return dict(
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        # The websockets implementation stayed fair under 1,000 flooding connections where
        # the sans-I/O one stalled (docs/performance.md); it also enforces the frame limit.
        ws="websockets",
        # The transport refuses frames past 4x the limit outright (1009, no reason); frames
        # between the limit and that are closed by the handler with 1009 and a reason.
        ws_max_size=settings.frame_max_bytes * 4,
        timeout_graceful_shutdown=5,
        # X-Forwarded-For/-Proto are believed only from the configured peers (the panel, the
        # TLS proxy). uvicorn's own default trusts loopback, which would let any local client
        # forge the address that the login limit and the audit log use.
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=list(settings.forwarded_allow_ips),
        server_header=False,
        log_level=settings.log_level,
        access_log=False,
    )


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from monitor.app import create_app

    settings = _settings(
        args,
        host=args.host,
        port=args.port,
        clinic_config=args.config,
        hl7_port=args.hl7_port,
        redis_url=args.redis,
        forwarded_allow_ips=args.forwarded_allow_ips,
    )
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = uvicorn.Config(create_app(settings), **server_options(settings))
    server = uvicorn.Server(config)
    server.run()
    return 0


async def _with_store(settings: Settings, fn: Any) -> Any:
    from monitor.records.store import Store

    store = await Store.from_settings(settings)
    try:
        return await fn(store)
    finally:
        await store.close()


def _check_ids(*pairs: tuple[str, str]) -> None:
    for name, value in pairs:
        if not ID_PATTERN.match(value):
            raise SystemExit(
                f"error: {name} {value!r} must be 1-64 characters of letters, digits, '.', '_' or '-'"
            )


def _add_device(args: argparse.Namespace) -> int:
    _check_ids(("device id", args.device_id), ("bed id", args.bed))
    settings = _settings(args)

    async def run(store: Any) -> str:
        token: str = await store.add_device(args.device_id, args.bed, time.time())
        await store.audit(
            "device_add", actor="cli", target=args.device_id, detail={"bed": args.bed}
        )
        return token

    token = asyncio.run(_with_store(settings, run))
    print(token)
    print(
        f"device {args.device_id} bound to bed {args.bed}; the token above is shown only once",
        file=sys.stderr,
    )
    return 0


def _import_devices(args: argparse.Namespace) -> int:
    settings = _settings(args)
    text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or [f.strip() for f in reader.fieldnames] != [
        "device_id",
        "bed_id",
    ]:
        raise SystemExit("error: the CSV must start with the header device_id,bed_id")
    rows = []
    for n, row in enumerate(reader, start=2):
        dev, bed = (row.get("device_id") or "").strip(), (row.get("bed_id") or "").strip()
        if not dev and not bed:
            continue
        if not ID_PATTERN.match(dev) or not ID_PATTERN.match(bed):
            raise SystemExit(f"error: line {n}: invalid device_id or bed_id")
        rows.append((dev, bed))

    async def run(store: Any) -> list[tuple[str, str]]:
        out = []
        for dev, bed in rows:
            out.append((dev, await store.add_device(dev, bed, time.time())))
        await store.audit("devices_import", actor="cli", detail={"count": len(rows)})
        return out

    tokens = asyncio.run(_with_store(settings, run))
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["device_id", "token"])
    w.writerows(tokens)
    return 0


def _add_user(args: argparse.Namespace) -> int:
    from monitor.core.security import PasswordHashing, hash_password

    _check_ids(("user name", args.name))
    settings = _settings(args)
    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise SystemExit("error: the password must have at least 8 characters")

    async def run(store: Any) -> int | None:
        hashed = hash_password(password, PasswordHashing(settings.login_hash_profile))
        if await store.create_user(args.name, args.role, hashed, time.time()):
            await store.audit("user_add", actor="cli", target=args.name, detail={"role": args.role})
            return None
        if not args.reset:
            raise SystemExit(
                f"error: user {args.name} exists; add --reset to set a new password and role "
                "(this revokes the user's logins)"
            )
        revoked: int | None = await store.reset_user(args.name, args.role, hashed)
        await store.audit(
            "user_reset",
            actor="cli",
            target=args.name,
            detail={"role": args.role, "tokens_revoked": revoked or 0},
        )
        return revoked or 0

    revoked = asyncio.run(_with_store(settings, run))
    if revoked is None:
        print(f"user {args.name} ({args.role}) saved", file=sys.stderr)
    else:
        print(
            f"user {args.name} ({args.role}) reset; {revoked} login token(s) revoked",
            file=sys.stderr,
        )
    return 0


def _set_disabled(args: argparse.Namespace, disabled: bool) -> int:
    _check_ids(("user name", args.name))
    settings = _settings(args)

    async def run(store: Any) -> int | None:
        revoked: int | None = await store.set_user_disabled(args.name, disabled)
        if revoked is not None:
            await store.audit(
                "user_disable" if disabled else "user_enable",
                actor="cli",
                target=args.name,
                detail={"tokens_revoked": revoked} if disabled else None,
            )
        return revoked

    revoked = asyncio.run(_with_store(settings, run))
    if revoked is None:
        raise SystemExit(f"error: no user {args.name}")
    if disabled:
        print(f"user {args.name} disabled; {revoked} login token(s) revoked", file=sys.stderr)
    else:
        print(f"user {args.name} enabled", file=sys.stderr)
    return 0


def _disable_user(args: argparse.Namespace) -> int:
    return _set_disabled(args, True)


def _enable_user(args: argparse.Namespace) -> int:
    return _set_disabled(args, False)


def _alarm_report(argv: list[str]) -> int:
    from monitor.records.alarm_report import alarm_report_main

    return alarm_report_main(argv)


def _merge_patient(args: argparse.Namespace) -> int:
    """Join a (provisional) patient's sessions to another identifier (docs/course.md)."""
    from monitor.usecases import patients

    _check_ids(("patient id", args.source), ("patient id", args.into))
    if args.source == args.into:
        raise SystemExit("error: a patient cannot be merged into itself")
    settings = _settings(args)

    async def run(store: Any) -> patients.Merged:
        return await patients.merge_patient(
            store, args.source, args.into, now=time.time(), by="cli"
        )

    moved = asyncio.run(_with_store(settings, run)).moved
    if not moved:
        # A repeat, or the loser of two merges at once: nothing left to move.
        print(f"error: no session belongs to {args.source}", file=sys.stderr)
        return 1
    print(f"{moved} session(s) of {args.source} now belong to {args.into}", file=sys.stderr)
    return 0


def _assign_patient(args: argparse.Namespace) -> int:
    """Give one session another patient (split a provisional patient, docs/course.md)."""
    from monitor.usecases import Conflict, patients

    _check_ids(("patient id", args.patient_id))
    settings = _settings(args)

    async def run(store: Any) -> patients.Assignment:
        return await patients.assign_patient(
            store, args.session, args.patient_id, now=time.time(), by="cli"
        )

    try:
        done = asyncio.run(_with_store(settings, run))
    except Conflict as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if done.outcome is patients.Assigned.NOT_FOUND:
        print(f"error: no session {args.session}", file=sys.stderr)
        return 1
    if done.outcome is patients.Assigned.ALREADY:
        print(f"session {args.session} already belongs to {args.patient_id}", file=sys.stderr)
        return 0
    print(f"session {args.session} now belongs to {args.patient_id}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m monitor", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the monitor (device websocket, API, feed)")
    s.add_argument("--host", help="address to listen on (VIGIL_HOST, default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (VIGIL_PORT, default 8000)")
    s.add_argument(
        "--db", help="sqlite:///PATH (default ./data/vigil.db) or postgresql:// DSN (VIGIL_DB)"
    )
    s.add_argument("--config", help="clinic alarm configuration YAML (VIGIL_CLINIC_CONFIG)")
    s.add_argument("--hl7-port", type=int, help="listen for IHE PCD-01 over MLLP (VIGIL_HL7_PORT)")
    s.add_argument("--redis", help="redis:// URL for multi-instance mode (VIGIL_REDIS_URL)")
    s.add_argument(
        "--forwarded-allow-ips",
        help="comma-separated addresses or networks whose X-Forwarded-For is believed: the "
        "panel, the TLS proxy (VIGIL_FORWARDED_ALLOW_IPS; default none)",
    )
    s.set_defaults(func=_serve)

    d = sub.add_parser("add-device", help="bind a device to a bed and print its token once")
    d.add_argument("device_id")
    d.add_argument("--bed", required=True)
    d.add_argument("--db")
    d.set_defaults(func=_add_device)

    i = sub.add_parser("import-devices", help="register devices from a device_id,bed_id CSV")
    i.add_argument("file", help="CSV path, or - for standard input")
    i.add_argument("--db")
    i.set_defaults(func=_import_devices)

    u = sub.add_parser("add-user", help="create a user; password on standard input")
    u.add_argument("name")
    u.add_argument("--role", required=True, choices=[r.value for r in Role])
    u.add_argument(
        "--reset",
        action="store_true",
        help="the user exists: set this password and role, enable it, revoke its logins",
    )
    u.add_argument("--db")
    u.set_defaults(func=_add_user)

    for cmd, fn, text in (
        ("disable-user", _disable_user, "stop a user logging in and revoke their logins"),
        ("enable-user", _enable_user, "let a disabled user log in again"),
    ):
        x = sub.add_parser(cmd, help=text)
        x.add_argument("name")
        x.add_argument("--db")
        x.set_defaults(func=fn)

    m = sub.add_parser("merge-patient", help="move every session of one patient id to another")
    m.add_argument("source", help="the patient id to empty, such as a provisional prov-...")
    m.add_argument("--into", required=True, help="the clinic's identifier for that patient")
    m.add_argument("--db")
    m.set_defaults(func=_merge_patient)

    a = sub.add_parser("assign-patient", help="give one session another patient id")
    a.add_argument("session", type=int)
    a.add_argument("patient_id")
    a.add_argument("--db")
    a.set_defaults(func=_assign_patient)

    sub.add_parser(
        "alarm-report", help="replay a recording through the alarm engine offline", add_help=False
    )
    return p


def main(argv: list[str]) -> int:
    if argv[:1] == ["alarm-report"]:
        return _alarm_report(argv[1:])
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
