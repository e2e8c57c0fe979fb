"""Health of each pipeline stage, for ``GET /health``, the panel and the logs.

Rules
-----
1. Every stage that can fail (``Stage``) reports here: a failure is counted, remembered with
   its time and a short reason (never patient data), and makes the stage unhealthy until the
   stage next succeeds. Nothing that fails is silent.
2. Some stages are judged by liveness as well: a stage whose task has died, or that has not
   reported within its deadline while it had work, is unhealthy whatever it said last.
3. The monitor is healthy only while every stage in use is healthy; ``/health`` then answers
   200, otherwise 503 naming the failing stages. Health returns by itself once the fault
   clears: the next success of the stage heals it.
4. Pure: time is an argument; the caller owns the clock.
5. Named, non-fatal problems: a stored session record that needs attention (an impossible
   history, docs/reliability.md "An impossible session record is isolated") is listed under
   ``records_needing_attention`` but fails no stage: the pipeline works, one bed's record
   needs an administrator. It is listed from when a reader of the record (a rebuild, the
   session or ward view) finds the problem until a reader finds the record fine again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from monitor.clinical.session import RecordProblem


class Stage(StrEnum):
    WRITER = "writer"  # the ingest writer task, its queue and the age of its last commit
    DATABASE = "database"  # writes reach the database (readings, session commands, probe)
    ALARM_STORE = "alarm_store"  # alarm changes are stored
    ENGINE = "engine"  # the alarm engine judged what it was given (else: beds to rebuild)
    TICKER = "ticker"  # technical alarms on the server clock are evaluated
    FANOUT = "fanout"  # panels are fed
    HL7 = "hl7"  # the HL7 MLLP edge
    REDIS = "redis"  # multi-instance bus and leases


@dataclass
class StageState:
    ok: bool = True
    failures: int = 0
    last_ok: float | None = None
    last_failure: float | None = None
    reason: str | None = None
    # Liveness probe: returns a reason while the stage is not alive, else None.
    alive: Callable[[float], str | None] | None = None

    def status(self, now: float) -> tuple[bool, str | None]:
        if self.alive is not None:
            why = self.alive(now)
            if why is not None:
                return False, why
        return self.ok, None if self.ok else self.reason


@dataclass(frozen=True, slots=True)
class RecordNotice:
    """A session whose stored record needs attention, and the first event that does not fit."""

    bed: str
    session: int
    event_id: int | None
    message: str


def record_notice(bed: str, session: int, problem: RecordProblem | None) -> RecordNotice | None:
    """Rule 5's entry for a session whose fold found ``problem`` (None: nothing to list)."""
    if problem is None:
        return None
    return RecordNotice(bed, session, problem.event_id, problem.reason)


@dataclass
class Health:
    """The stages in use on this instance and what each last reported."""

    stages: dict[Stage, StageState] = field(default_factory=dict)
    # Called with the list of failing stages whenever it changes (the feed tells panels).
    on_change: Callable[[list[str]], None] | None = None
    _failing: list[str] = field(default_factory=list)
    # Rule 5: by session id.
    records: dict[int, RecordNotice] = field(default_factory=dict)

    def record(self, session: int, notice: RecordNotice | None) -> None:
        """What a reader of a session's record found: its problem, or None (the record fits)."""
        if notice is None:
            self.records.pop(session, None)
        else:
            self.records[session] = notice

    def use(self, stage: Stage, alive: Callable[[float], str | None] | None = None) -> None:
        state = self.stages.setdefault(stage, StageState())
        if alive is not None:
            state.alive = alive

    def ok(self, stage: Stage, now: float) -> None:
        state = self.stages.setdefault(stage, StageState())
        state.last_ok = now
        if not state.ok:
            state.ok = True
            state.reason = None
            self.check(now)

    def failed(self, stage: Stage, now: float, reason: str) -> None:
        state = self.stages.setdefault(stage, StageState())
        state.failures += 1
        state.last_failure = now
        state.reason = reason[:200]
        if state.ok:
            state.ok = False
            self.check(now)

    def failing(self, now: float) -> list[str]:
        return [s.value for s, st in self.stages.items() if not st.status(now)[0]]

    def check(self, now: float) -> list[str]:
        """The failing stages; tells ``on_change`` when the set changed since last asked."""
        failing = self.failing(now)
        if failing != self._failing:
            self._failing = failing
            if self.on_change is not None:
                self.on_change(failing)
        return failing

    def report(self, now: float, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        failing = self.check(now)
        stages: dict[str, Any] = {}
        for stage, st in self.stages.items():
            ok, why = st.status(now)
            stages[stage.value] = {
                "ok": ok,
                "reason": why,
                "failures": st.failures,
                "last_failure_age_s": (
                    None if st.last_failure is None else round(now - st.last_failure, 1)
                ),
            }
        body: dict[str, Any] = {
            "status": "ok" if not failing else "degraded",
            "failing": failing,
            "stages": stages,
            "records_needing_attention": [
                {"bed": n.bed, "session": n.session, "event_id": n.event_id, "message": n.message}
                for _, n in sorted(self.records.items())
            ],
        }
        if extra:
            body.update(extra)
        return body
