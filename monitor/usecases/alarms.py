"""A person's alarm commands: acknowledge an alarm, pause a bed's audio (docs/alarms.md;
docs/api.md, "Repeats and races: alarms, REMS and patients"). The routes translate; the
alarm stage (monitor.pipeline.alarm_loop) decides where the bed is judged and stores the change with
its audit entry in one transaction.

- Acknowledge is once: the stored row is claimed with ``WHERE acknowledged_at IS NULL AND
  ended_at IS NULL`` in the transaction that stores the acknowledgement and its ``alarm_ack``
  entry. A repeat, or a loser of simultaneous acks, stores nothing and answers the stored
  acknowledgement, as an ack arriving second does.
- Audio pause is a press, not a one-shot: each re-arms the bed's pause from its own moment
  and is stored with its own ``audio_pause`` entry; the alarms keep one pause, the latest.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from monitor.core.model import Alarm
from monitor.pipeline.service import Monitor


class Ack(StrEnum):
    ACKNOWLEDGED = "acknowledged"  # this call acknowledged it (stored, audited)
    ALREADY = "already"  # acknowledged or ended before: the stored alarm, nothing stored
    NOT_FOUND = "not_found"  # no such alarm
    NOT_ACKNOWLEDGEABLE = "not_acknowledgeable"  # open, but no live alarm takes an ack now


@dataclass(frozen=True, slots=True)
class AckResult:
    outcome: Ack
    alarm: Alarm | None = None


class NoSuchBed(LookupError):
    pass


async def acknowledge(monitor: Monitor, alarm_id: str, user: str) -> AckResult:
    """Acknowledge an alarm as ``user``, once. Raises Unavailable if it could not be stored."""
    alarm = await monitor.acknowledge(alarm_id, user)
    if alarm is not None:
        return AckResult(Ack.ACKNOWLEDGED, alarm)
    # Read after any acknowledgement in flight has committed (AlarmLoop.acknowledge_here).
    stored = await monitor.store.alarm(alarm_id)
    if stored is None:
        return AckResult(Ack.NOT_FOUND)
    if stored.ended_at is not None or stored.acknowledged_at is not None:
        return AckResult(Ack.ALREADY, stored)
    return AckResult(Ack.NOT_ACKNOWLEDGEABLE, stored)


async def pause_audio(
    monitor: Monitor, bed_id: str, seconds: float | None, user: str
) -> list[Alarm]:
    """Pause the bed's sound for ``seconds`` (the clinic's default if None): the alarms it
    paused. Raises NoSuchBed, ValueError for seconds outside the clinic's bounds, and
    Unavailable if it could not be stored."""
    if not await monitor.store.bed_exists(bed_id):
        raise NoSuchBed(bed_id)
    return await monitor.pause_audio(bed_id, seconds, user)
