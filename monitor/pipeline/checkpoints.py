"""Checkpoints of open sessions (rule 7 of monitor.pipeline.alarm_loop): an open session whose
protocol has checkpoints is watched (its events and cuff readings, loaded when the session
changes or the bed is rebuilt, kept current with each stored cuff reading), and each tick
judges them on the server clock with the pure protocol model (docs/protocols.md), which
raises and ends the ``checkpoint`` alarms. They are held here, beside the engine; the alarm
loop stores them, and acknowledges and pauses them as it does the engine's."""

from __future__ import annotations

from collections.abc import Callable, Container
from dataclasses import dataclass

from monitor.alarms import AlarmEngine
from monitor.alarms.lifecycle import Event, State, snapshot
from monitor.alarms.lifecycle import apply as lifecycle_apply
from monitor.alarms.replay import Record, SessionRegime
from monitor.clinical import rules as pm
from monitor.clinical.protocols import Protocol as ClinicProtocol
from monitor.core.model import Alarm, Reading
from monitor.records.store import SessionEventRow, Store


@dataclass(slots=True)
class Watch:
    """An open session whose protocol has checkpoints: what its checkpoints are judged from."""

    session_id: int
    protocol: ClinicProtocol
    opened_at: float
    events: list[pm.SessionEvent]
    cuff: list[Reading]


class Checkpoints:
    """The watched sessions by bed, and the live checkpoint alarms by id."""

    def __init__(self, store: Store, engine: AlarmEngine) -> None:
        self.store = store
        # The engine's clinic config names the protocols (read at each use, as before).
        self.engine = engine
        self.watching: dict[str, Watch] = {}  # bed -> its open session's checkpoints
        self.live: dict[str, Alarm] = {}  # the live checkpoint alarms, by id

    def watched_protocols(self) -> set[str]:
        """The clinic's protocols whose sessions are watched: those with checkpoints."""
        return {name for name, p in self.engine.config.protocols.items() if p.checkpoints}

    async def watch_session(
        self,
        bed_id: str,
        row: SessionRegime,
        *,
        events: list[pm.SessionEvent] | None = None,
        cuff: list[Reading] | None = None,
    ) -> list[SessionEventRow] | None:
        """Watch a session's checkpoints from what is stored now, or stop watching it; its
        events and cuff readings are read here unless the caller read both.
        Returns the session's events when it loaded them, so the caller need not again."""
        protocol = self.engine.config.protocols.get(row.get("protocol") or "")
        if row["ended_at"] is not None or protocol is None or not protocol.checkpoints:
            current = self.watching.get(bed_id)
            if current is not None and (current.session_id == row["id"] or row["ended_at"] is None):
                del self.watching[bed_id]
            return None
        if events is not None and cuff is not None:
            self.watching[bed_id] = Watch(row["id"], protocol, row["opened_at"], events, cuff)
            return None
        rows = await self.store.session_events(row["id"])
        cuff = await self.store.readings(session_id=row["id"], source="nibp", limit=20_000)
        self.watching[bed_id] = Watch(
            session_id=row["id"],
            protocol=protocol,
            opened_at=row["opened_at"],
            events=[pm.SessionEvent(e["type"], e["at"], e["data"], e["id"]) for e in rows],
            cuff=cuff,
        )
        return rows

    def note_reading(self, r: Reading) -> None:
        """A stored reading: a cuff reading of a watched bed's session joins its cuff."""
        w = self.watching.get(r.bed_id) if r.source == "nibp" and r.bed_id is not None else None
        if w is not None and r.ts >= w.opened_at:
            w.cuff.append(r)

    def judge(
        self, now: float, *, here: Callable[[str], bool], dirty: Container[str]
    ) -> list[Alarm]:
        """Raise and end the checkpoint alarms of the beds judged ``here`` and not ``dirty``
        (server clock), and resume those whose audio pause ran out."""
        by_bed: dict[str, dict[str, Alarm]] = {}
        for a in self.live.values():
            by_bed.setdefault(a.bed_id, {})[a.id] = a
        changes: list[Alarm] = []
        for bed_id in set(self.watching) | set(by_bed):
            if not here(bed_id) or bed_id in dirty:
                continue
            w = self.watching.get(bed_id)
            statuses = (
                pm.checkpoints(w.protocol, w.opened_at, w.events, w.cuff, now)
                if w is not None
                else ()
            )
            session_id = w.session_id if w is not None else None
            changes += pm.checkpoint_alarms(
                bed_id, session_id, statuses, by_bed.get(bed_id, {}), now
            )
        for a in changes:
            if a.state == State.ENDED:
                self.live.pop(a.id, None)
            else:
                self.live[a.id] = a
        # A bed's audio pause runs out for its checkpoint alarms as for the engine's.
        for a in list(self.live.values()):
            if a.audio_paused_until is not None and now >= a.audio_paused_until:
                if not here(a.bed_id):
                    continue
                resumed = lifecycle_apply(snapshot(a), Event.AUDIO_RESUMED, now)
                self.live[a.id] = resumed
                changes.append(resumed)
        return changes

    async def rewatch(self, bed_id: str, record: Record) -> None:
        """On a rebuild: the bed's checkpoint alarms as stored, its open session watched."""
        for alarm_id in [k for k, a in self.live.items() if a.bed_id == bed_id]:
            del self.live[alarm_id]
        for a in record.open_alarms:
            if a.signal == pm.SIGNAL_CHECKPOINT and a.ended_at is None:
                self.live[a.id] = snapshot(a)
        self.watching.pop(bed_id, None)
        open_row = next((r for r, _ in record.sessions if r["ended_at"] is None), None)
        if open_row is not None:
            await self.watch_session(
                bed_id, open_row, events=record.watched_events, cuff=record.cuff
            )

    def release(self, bed_id: str) -> list[Alarm]:
        """Forget a bed judged elsewhere from now on: its live checkpoint alarms as they
        were, and nothing of it kept here."""
        live = [snapshot(a) for a in self.live.values() if a.bed_id == bed_id]
        for alarm_id in [k for k, a in self.live.items() if a.bed_id == bed_id]:
            del self.live[alarm_id]
        self.watching.pop(bed_id, None)
        return live
