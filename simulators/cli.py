"""Command line: `python -m simulators demo | demo-devices | replay | scenarios`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from monitor.core.model import parse_rfc3339
from simulators.client import DEFAULT_STATE_DIR
from simulators.demo import DEFAULT_MIX, demo_devices_csv, read_tokens, run_demo
from simulators.device import CuffConfig
from simulators.nurse import Nurse
from simulators.physiology import MINUTE, Timeline
from simulators.replay import run_replay
from simulators.scenarios import SCENARIOS

DEFAULT_URL = "ws://127.0.0.1:8000"


def api_from_ws(url: str) -> str:
    """ws://host:port[/...] -> http://host:port (wss -> https)."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def _scenario(text: str) -> str:
    if text not in SCENARIOS:
        raise argparse.ArgumentTypeError(
            f"unknown scenario {text!r}; known: {', '.join(SCENARIOS)}"
        )
    return text


def _scenario_list(text: str) -> list[str]:
    return [_scenario(t.strip()) for t in text.split(",") if t.strip()]


def _rfc3339(text: str) -> float:
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an RFC 3339 time") from None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulators", description=__doc__)
    p.add_argument("-v", "--verbose", action="store_true", help="log every connection event")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="simulate a ward of beds streaming to the monitor")
    d.add_argument(
        "--beds", type=int, default=None, help="number of beds (default 6; 1 with --scenario)"
    )
    d.add_argument(
        "--url",
        default=os.environ.get("VIGIL_SIM_URL", DEFAULT_URL),
        help="ws://HOST:PORT of the monitor",
    )
    d.add_argument("--api", default=None, help="monitor HTTP base URL (default: --url with http)")
    d.add_argument(
        "--speed",
        type=_positive,
        default=1.0,
        help="device time runs X times faster than wall time",
    )
    d.add_argument("--seed", type=int, default=0, help="seed for patients and scenarios")
    d.add_argument(
        "--tokens",
        type=Path,
        default=Path("data/demo-tokens.csv"),
        help="CSV device_id,token (from `monitor import-devices`)",
    )
    d.add_argument(
        "--user",
        default=os.environ.get("VIGIL_DEMO_USER"),
        help="user driving the session phases (env VIGIL_DEMO_USER)",
    )
    d.add_argument(
        "--password",
        default=os.environ.get("VIGIL_DEMO_PASSWORD"),
        help="(env VIGIL_DEMO_PASSWORD)",
    )
    d.add_argument("--scenario", type=_scenario, default=None, help="run this scenario on bed 1")
    d.add_argument(
        "--beds-scenarios",
        type=_scenario_list,
        default=None,
        metavar="A,B,...",
        help="scenario per bed, cycled",
    )
    d.add_argument("--baseline-min", type=_positive, default=5.0)
    d.add_argument(
        "--infusion-min", type=_positive, default=40.0, help="infusion length, 40-60 min"
    )
    d.add_argument("--recovery-min", type=_positive, default=30.0)
    d.add_argument(
        "--protocols",
        default=os.environ.get("VIGIL_DEMO_PROTOCOLS"),
        help="comma-separated clinic protocols the beds run in turn, e.g. "
        "iv-ketamine,esketamine (env VIGIL_DEMO_PROTOCOLS; default: the clinic's default)",
    )
    d.add_argument(
        "--cuff-min", type=_positive, default=5.0, help="cuff interval during the infusion"
    )
    d.add_argument("--cuff-baseline-min", type=_positive, default=5.0)
    d.add_argument("--cuff-recovery-min", type=_positive, default=10.0)
    d.add_argument(
        "--sessions",
        type=int,
        default=None,
        help="sessions per bed, then stop (default: run until stopped)",
    )
    d.add_argument(
        "--backlog",
        type=float,
        default=None,
        help="seconds device time starts in the past (default: one session when --speed > 1)",
    )
    d.add_argument(
        "--no-stagger", action="store_true", help="start every bed at the beginning of its session"
    )
    d.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="where each device keeps its next seq",
    )

    dd = sub.add_parser("demo-devices", help="print the demo's device CSV (device_id,bed_id)")
    dd.add_argument("--beds", type=int, default=6)

    r = sub.add_parser(
        "replay",
        help="replay a recording (contract or BIDMC numerics CSV, or WFDB record) as a device",
    )
    r.add_argument("path")
    r.add_argument("--device", required=True)
    r.add_argument(
        "--token",
        default=os.environ.get("VIGIL_DEVICE_TOKEN"),
        help="device token (env VIGIL_DEVICE_TOKEN)",
    )
    r.add_argument("--url", default=os.environ.get("VIGIL_SIM_URL", DEFAULT_URL))
    r.add_argument("--speed", type=_positive, default=1.0)
    r.add_argument(
        "--start",
        type=_rfc3339,
        default=None,
        help="device time of the first row (default: now minus the recording's length)",
    )
    r.add_argument(
        "--from-s",
        type=float,
        default=None,
        help="replay only rows from this many seconds into the recording",
    )
    r.add_argument("--until-s", type=float, default=None, help="... and before this many seconds")
    r.add_argument(
        "--window", type=int, default=512, help="readings in flight before waiting for acks"
    )
    r.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)

    sub.add_parser("scenarios", help="list the scenario library")
    return p


async def _demo(a: argparse.Namespace) -> int:
    beds = a.beds if a.beds is not None else (1 if a.scenario else 6)
    if beds < 1:
        print("--beds must be at least 1", file=sys.stderr)
        return 2
    mix: list[str] | None = a.beds_scenarios
    if a.scenario:
        mix = [a.scenario, *(mix or DEFAULT_MIX)]
    if not a.tokens.exists():
        print(
            f"{a.tokens} not found: run `python -m simulators demo-devices --beds {beds} > devices.csv` "
            f"and `python -m monitor import-devices devices.csv > {a.tokens}`",
            file=sys.stderr,
        )
        return 2
    nurse = None
    if a.user and a.password:
        nurse = Nurse(a.api or api_from_ws(a.url), a.user, a.password)
        try:
            await nurse.login()
        except Exception as exc:
            print(f"cannot log in as {a.user!r} to drive session phases: {exc}", file=sys.stderr)
            await nurse.aclose()
            return 2
    else:
        logging.getLogger("simulators").warning(
            "no --user/--password (VIGIL_DEMO_USER/VIGIL_DEMO_PASSWORD): devices stream, "
            "but no sessions are opened"
        )
    timeline = Timeline(a.baseline_min * MINUTE, a.infusion_min * MINUTE, a.recovery_min * MINUTE)
    cuff = CuffConfig(a.cuff_baseline_min, a.cuff_min, a.cuff_recovery_min)
    clients = await run_demo(
        beds=beds,
        url=a.url,
        tokens=read_tokens(a.tokens),
        speed=a.speed,
        seed=a.seed,
        scenarios=mix,
        nurse=nurse,
        timeline=timeline,
        cuff=cuff,
        state_dir=a.state_dir,
        sessions=a.sessions,
        backlog_s=a.backlog,
        stagger=not a.no_stagger,
        protocols=[p.strip() for p in a.protocols.split(",") if p.strip()] if a.protocols else None,
    )
    for dev, c in clients.items():
        print(f"{dev}: {c.stats.summary()} pending={c.pending}", flush=True)
    return 0 if all(c.pending == 0 for c in clients.values()) else 1


async def _with_signals(coro_fn: object, a: argparse.Namespace) -> int:
    task = asyncio.ensure_future(coro_fn(a))  # type: ignore[operator]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, task.cancel)
    try:
        return int(await task)
    except asyncio.CancelledError:
        return 130


async def _replay(a: argparse.Namespace) -> int:
    if not a.token:
        print("--token (or VIGIL_DEVICE_TOKEN) is required", file=sys.stderr)
        return 2
    return await run_replay(
        a.path,
        device=a.device,
        token=a.token,
        url=a.url,
        speed=a.speed,
        start=a.start,
        state_dir=a.state_dir,
        from_s=a.from_s,
        until_s=a.until_s,
        window=a.window,
    )


# Options whose values are secrets that may begin with "-" (URL-safe base64 tokens do):
# argparse would take such a value for an option, so glue it on as --opt=value.
_SECRET_OPTIONS = ("--token", "--password")


def _glue_secrets(argv: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in _SECRET_OPTIONS and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(_glue_secrets(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=logging.INFO if a.verbose or a.command == "demo" else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not a.verbose:
        logging.getLogger("simulators.client").setLevel(logging.WARNING)
    if a.command == "demo-devices":
        sys.stdout.write(demo_devices_csv(a.beds))
        return 0
    if a.command == "scenarios":
        for s in SCENARIOS.values():
            print(f"{s.name:22s} {s.summary}")
        return 0
    if a.command == "demo":
        return asyncio.run(_with_signals(_demo, a))
    return asyncio.run(_with_signals(_replay, a))
