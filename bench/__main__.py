"""`python -m bench [--quick] [--only startup,ingest,capacity,alarms,panel,memory] [--out FILE]`.

Runs the benchmarks (each server and each load generator in its own process, loopback only),
prints one table with every figure beside its baseline from the same run, and writes it with
the details to docs/performance.md (a --quick or --only run writes nothing unless --out is given).
A benchmark that raises is reported as a failed row of its own; the others still run.
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import sys
import time
import traceback
from pathlib import Path

from bench import common
from bench.results import Row, Section, table

ALL = ("startup", "ingest", "capacity", "alarms", "panel", "memory")
DOC = common.ROOT / "docs" / "performance.md"
NOTES = common.ROOT / "bench" / "notes.md"


def _run(name: str, work: Path, a: argparse.Namespace) -> Section:
    if name == "startup":
        from bench import startup

        return startup.run(work, a.quick)
    if name == "ingest":
        from bench import ingest

        return ingest.run(work, a.quick)
    if name == "capacity":
        from bench import capacity

        return capacity.run(work, a.quick)
    if name == "alarms":
        from bench import alarms

        return alarms.run(work, a.quick)
    if name == "panel":
        from bench import panel

        return panel.run(work, a.quick)
    from bench import memory

    return memory.run(work, a.quick, hours=a.memory_hours, speed=a.memory_speed)


def _failed(name: str, e: Exception) -> Section:
    """A benchmark whose run raised: one row saying so, so the table is still printed whole
    (and the run completes) instead of losing every other section's figures."""
    why = f"{type(e).__name__}: {e}".strip().splitlines()[0][:200]
    s = Section(f"{name} (failed)")
    s.rows.append(
        Row(
            f"{name}: section failed ({type(e).__name__})",
            math.nan,
            "",
            math.nan,
            "not measured",
            ok=False,
            note=why,
        )
    )
    s.details.append(f"- The {name} benchmark raised {why}; the traceback went to stderr.")
    return s


def render(sections: list[Section], a: argparse.Namespace, took_s: float) -> str:
    when = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        "# Performance",
        "",
        f"Measured by `make bench` (`python -m bench{' --quick' if a.quick else ''}`) on {when}: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, {platform.machine()}; "
        f"the whole run took {took_s / 60:.1f} min. Every figure stands beside a baseline "
        "measured in the same run. Servers and load generators are separate processes on the "
        "same machine (loopback), so clients and server share the 2 cores.",
        "",
        table(sections),
        "",
    ]
    body: list[str] = []
    for s in sections:
        body += [f"## {s.title}", "", *s.details, ""]
    notes = NOTES.read_text() if NOTES.exists() else ""
    return "\n".join(head + body) + ("\n" + notes if notes else "")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="short smoke run (tiny loads, seconds)")
    p.add_argument("--only", default=",".join(ALL), help=f"comma list of {', '.join(ALL)}")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"markdown report (default {DOC.relative_to(common.ROOT)}; "
        "a --quick run writes none unless given)",
    )
    p.add_argument("--memory-hours", type=float, default=None, help="device hours (default 8)")
    p.add_argument("--memory-speed", type=float, default=None, help="time warp (default 72)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, DBs)")
    a = p.parse_args(argv)
    names = [n.strip() for n in a.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in ALL]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}")
    common.raise_fd_limit()
    t0 = time.monotonic()
    sections: list[Section] = []
    with common.workdir(keep=a.keep) as work:
        for name in names:
            started = time.monotonic()
            print(f"bench: {name} ...", file=sys.stderr, flush=True)
            try:
                sections.append(_run(name, work, a))
            except Exception as e:  # a broken benchmark must not lose the others' figures
                traceback.print_exc()
                print(f"bench: {name} failed: {e!r}", file=sys.stderr, flush=True)
                sections.append(_failed(name, e))
            print(
                f"bench: {name} done in {time.monotonic() - started:.0f} s",
                file=sys.stderr,
                flush=True,
            )
        if a.keep:
            print(f"bench: work directory kept: {work}", file=sys.stderr)
    took = time.monotonic() - t0
    print(table(sections))
    for s in sections:
        print(f"\n{s.title}:")
        print("\n".join(line for line in s.details if line))
    # The doc holds the full run: a quick or partial run must not replace it with less.
    full = not a.quick and set(names) == set(ALL)
    out = a.out if a.out is not None else (DOC if full else None)
    if out is not None:
        out.write_text(render(sections, a, took))
        print(f"\nwritten to {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
