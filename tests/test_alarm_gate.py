"""The alarm stage works with any gate (docs/deployment.md, "How multi-instance mode is built"):
it asks the gate only through the Gate protocol, never which gate it was given, and only the
composition root knows the multi-instance one."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from monitor.alarms import AlarmEngine, load_config
from monitor.core.faults import Faults
from monitor.core.model import Alarm, Reading
from monitor.pipeline.alarm_loop import AlarmLoop
from monitor.pipeline.caches import Caches
from monitor.pipeline.fanout import FanOut
from monitor.pipeline.gate import Gate, Held, HeldReading, Route
from monitor.pipeline.health import Health
from monitor.pipeline.hub import Hub
from monitor.records.store import Store
from tests.factories import T0, make_alarm, make_reading

ROOT = Path(__file__).resolve().parent.parent
HERE_BED, AWAY_BED, HELD_BED = "bed-here", "bed-away", "bed-held"


class RoutingGate:
    """A gate of its own (no LocalGate): one bed judged elsewhere, one being taken over, the
    rest here; it records what the alarm stage hands it."""

    def __init__(self) -> None:
        self.held: list[tuple[str, Held]] = []
        self.seen_calls: list[tuple[str, str, bool]] = []
        self.commands: list[tuple[str, str]] = []
        self.remote = make_alarm(alarm_id="remote-1", bed_id=AWAY_BED)

    def route(self, bed_id: str) -> Route:
        return {AWAY_BED: Route.AWAY, HELD_BED: Route.HOLD}.get(bed_id, Route.HERE)

    def hold(self, bed_id: str, item: Held) -> None:
        self.held.append((bed_id, item))

    def seen(self, bed_id: str, device_id: str, at: float, *, here: bool) -> None:
        self.seen_calls.append((bed_id, device_id, here))

    def artefact(self, bed_id: str, device_id: str, code: str, at: float) -> None:
        return None

    def remote_alarms(self) -> list[Alarm]:
        return [dataclasses.replace(self.remote)]

    async def acknowledge(
        self, alarm_id: str, user: str, here: Callable[[], Awaitable[Alarm | None]]
    ) -> Alarm | None:
        self.commands.append(("ack", alarm_id))
        return dataclasses.replace(self.remote, acknowledged_by=user, state="acknowledged")

    async def pause_audio(
        self,
        bed_id: str,
        seconds: float | None,
        user: str,
        here: Callable[[], Awaitable[list[Alarm]]],
    ) -> list[Alarm]:
        self.commands.append(("pause", bed_id))
        return [dataclasses.replace(self.remote, audio_paused_until=T0 + (seconds or 0))]

    def device_revoked(self, device_id: str) -> None:
        return None

    def device_rebound(self, device_id: str, old_bed: str | None) -> None:
        return None


@pytest.fixture
async def stage(tmp_path: Path) -> AsyncIterator[tuple[AlarmLoop, RoutingGate, Store]]:
    store = await Store.open(f"sqlite:///{tmp_path / 'gate.db'}")
    gate = RoutingGate()
    typed: Gate = gate  # the protocol is all the stage needs
    health, faults = Health(), Faults(None)
    loop = AlarmLoop(
        store=store,
        engine=AlarmEngine(load_config(None)),
        fanout=FanOut(Hub(100), health, faults, lambda: T0 + 60),
        caches=Caches(),
        health=health,
        faults=faults,
        clock=lambda: T0 + 60,
        tick_interval_s=1.0,
        gate=typed,
    )
    try:
        yield loop, gate, store
    finally:
        await store.close()


def desaturation(bed: str, device: str) -> list[Reading]:
    return [
        make_reading({"spo2": 80.0, "hr": 80.0}, ts=T0 + s, seq=s + 1, bed_id=bed, device_id=device)
        for s in range(20)
    ]


async def test_the_alarm_stage_judges_only_the_beds_its_gate_routes_here(
    stage: tuple[AlarmLoop, RoutingGate, Store],
) -> None:
    """docs/deployment.md: a bed is judged only where the gate routes it here; what arrives
    for a bed being taken over is handed to the gate to hold, a bed judged elsewhere is left."""
    loop, gate, _ = stage
    readings = [
        *desaturation(HERE_BED, "dev-h"),
        *desaturation(AWAY_BED, "dev-a"),
        *desaturation(HELD_BED, "dev-t"),
    ]
    changes = loop.judge(readings)
    assert {a.bed_id for a in changes} == {HERE_BED}
    assert any(a.signal == "spo2" and a.priority == "high" for a in changes)
    assert loop.engine.active(AWAY_BED) == [] and loop.engine.active(HELD_BED) == []
    assert [b for b, _ in gate.held] == [HELD_BED] * 20
    assert all(isinstance(item, HeldReading) for _, item in gate.held)

    await loop.device_seen(AWAY_BED, "dev-a", T0 + 30)
    await loop.device_seen(HERE_BED, "dev-h", T0 + 30)
    assert gate.seen_calls == [(AWAY_BED, "dev-a", False), (HERE_BED, "dev-h", True)]


async def test_commands_for_alarms_not_held_here_go_through_any_gate(
    stage: tuple[AlarmLoop, RoutingGate, Store],
) -> None:
    """docs/deployment.md: an ack or audio pause for a bed judged elsewhere is the gate's to
    run (it answers for the owner); a pause for a bed judged here is stored here."""
    loop, gate, store = stage
    acked = await loop.acknowledge("remote-1", "nurse")
    assert acked is not None and acked.acknowledged_by == "nurse"
    paused = await loop.pause_audio(AWAY_BED, 30.0, "nurse")
    assert [a.id for a in paused] == ["remote-1"] and paused[0].audio_paused_until == T0 + 30
    assert gate.commands == [("ack", "remote-1"), ("pause", AWAY_BED)]

    assert await loop.pause_audio(HERE_BED, 30.0, "nurse") == []  # nothing sounding here
    assert gate.commands == [("ack", "remote-1"), ("pause", AWAY_BED)]
    entries = await store.audit_entries()
    assert [(e["action"], e["target"]) for e in entries] == [("audio_pause", HERE_BED)]


async def test_the_ward_view_shows_the_gates_alarms_of_beds_judged_elsewhere(
    stage: tuple[AlarmLoop, RoutingGate, Store],
) -> None:
    """docs/deployment.md: a panel on any instance sees every bed's alarms: the live alarms
    are this instance's and, for beds judged elsewhere, the gate's."""
    loop, _, _ = stage
    loop.judge(desaturation(HERE_BED, "dev-h"))
    ward = loop.active()
    assert {a.bed_id for a in ward} == {HERE_BED, AWAY_BED}
    assert [a.id for a in loop.active(AWAY_BED)] == ["remote-1"]
    assert AWAY_BED not in {a.bed_id for a in loop.active(HERE_BED)}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_only_the_composition_root_names_the_cluster() -> None:
    """docs/deployment.md: the pipeline knows a gate by its protocol only; monitor/app.py alone
    imports monitor.cluster, and no module asks whether its gate is the local one."""
    importers = sorted(
        str(p.relative_to(ROOT))
        for folder in ("monitor", "dashboard")
        for p in (ROOT / folder).rglob("*.py")
        if p.relative_to(ROOT).parts[:2] != ("monitor", "cluster")
        and any(n == "monitor.cluster" or n.startswith("monitor.cluster.") for n in _imports(p))
    )
    assert importers == ["monitor/app.py"]
    for p in (ROOT / "monitor").rglob("*.py"):
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
                assert "LocalGate" not in ast.unparse(node), f"{p} asks which gate it has"
