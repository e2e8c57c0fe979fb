"""Patient merge and assign (docs/course.md; docs/api.md, "Repeats and races: alarms, REMS
and patients"): the CLI translates arguments and outcomes, the store holds the SQL guard.

- Merge moves every session of one patient to another in one conditional UPDATE. A repeat,
  or the loser of two merges at once, finds no session of the source left: it moves none and
  stores nothing (no audit entry).
- Assign changes one session's patient with ``WHERE version = <the version read>`` and bumps
  the version. A session that already belongs to the patient is a repeat: nothing stored. A
  change that lost the version race is judged again on the session as now stored: the same
  patient makes it a repeat, another one is applied on top (as if it had arrived second).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from monitor.records.store import Store
from monitor.usecases import Stale, retried


class SamePatient(ValueError):
    """Merging a patient into itself."""


@dataclass(frozen=True, slots=True)
class Merged:
    moved: int  # sessions moved; 0 for a repeat or the loser of a race


class Assigned(StrEnum):
    CHANGED = "changed"  # stored (and audited) by this call
    ALREADY = "already"  # the session belonged to that patient already: nothing stored
    NOT_FOUND = "not_found"  # no such session


@dataclass(frozen=True, slots=True)
class Assignment:
    outcome: Assigned
    previous: str | None = None


async def merge_patient(
    store: Store, source: str, target: str, *, now: float, by: str | None
) -> Merged:
    """Move every session of ``source`` to ``target``, once."""
    if source == target:
        raise SamePatient("a patient cannot be merged into itself")
    return Merged(await store.merge_patient(source, target, now=now, by=by))


async def assign_patient(
    store: Store, session_id: int, patient_id: str, *, now: float, by: str | None
) -> Assignment:
    """Give the session ``patient_id``, unless it has it already."""

    async def attempt() -> Assignment:
        current = await store.session_patient(session_id)
        if current is None:
            return Assignment(Assigned.NOT_FOUND)
        old, version = current
        if old == patient_id:
            return Assignment(Assigned.ALREADY, old)
        if await store.set_session_patient(
            session_id, patient_id, expected_version=version, old=old, now=now, by=by
        ):
            return Assignment(Assigned.CHANGED, old)
        raise Stale

    return await retried(attempt, f"session {session_id}")
