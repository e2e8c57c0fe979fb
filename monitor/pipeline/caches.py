"""What the API and panels read without asking the database: each bed's newest value of each
signal, each device's last sign of life and each bed's open session. Filled from storage at
start and kept current by the pipeline; never the truth, only a view of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.core.model import Reading
from monitor.records.store import SessionRow


@dataclass(slots=True)
class OpenSession:
    id: int
    bed_id: str
    phase: str
    baseline: dict[str, float] | None
    overrides: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: SessionRow) -> OpenSession:
        return cls(
            id=row["id"],
            bed_id=row["bed_id"],
            phase=row["phase"],
            baseline=row["baseline"],
            overrides=row["limit_overrides"],
        )


@dataclass(slots=True)
class Caches:
    latest: dict[str, dict[str, Reading]] = field(default_factory=dict)
    last_seen: dict[str, float] = field(default_factory=dict)
    open_sessions: dict[str, OpenSession] = field(default_factory=dict)

    def note_reading(self, r: Reading) -> None:
        """A stored reading: newest value per signal by device time; the device was seen."""
        assert r.bed_id is not None
        latest = self.latest.setdefault(r.bed_id, {})
        for sig in r.values:
            prev = latest.get(sig)
            if prev is None or r.ts >= prev.ts:
                latest[sig] = r
        self.seen(r.device_id, r.received_at)

    def seen(self, device_id: str, at: float) -> None:
        prev = self.last_seen.get(device_id)
        self.last_seen[device_id] = at if prev is None else max(prev, at)

    def note_session(self, row: SessionRow) -> OpenSession | None:
        """A session row as stored now; returns the bed's open session, if any."""
        bed_id = row["bed_id"]
        if row["ended_at"] is not None:
            current = self.open_sessions.get(bed_id)
            if current is not None and current.id == row["id"]:
                del self.open_sessions[bed_id]
            return self.open_sessions.get(bed_id)
        s = OpenSession.from_row(row)
        self.open_sessions[bed_id] = s
        return s
