"""What travels on Redis between instances: the bus's message kinds as named, typed messages,
their wire text, and the names of the keys and channels under the deployment's prefix.

Wire text: ``{sender}\\x1f{kind}\\x1f{body}``. Readings and alarms travel as exact data (rule 2
of monitor.cluster), never as feed text to be parsed back; a session change travels as the
feed message its origin sent its panels, which receivers pass on unchanged. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar, Final

import orjson

from monitor.core.model import Alarm, Reading

SEP: Final = "\x1f"


class Kind(StrEnum):
    """What a bus message carries; commands and replies travel on an instance's own channel."""

    READING = "reading"  # a stored reading, as exact data
    ALARM = "alarm"  # an alarm change, as stored
    SESSION = "session"  # a session changed: its feed message (receivers re-read the row)
    SEEN = "seen"  # a device's last sign of life, for its bed's owner
    ARTEFACT = "artefact"  # a rejected frame, for its bed's owner
    REVOKED = "revoked"  # a device was revoked: close its socket wherever it is
    REBOUND = "rebound"  # a device was bound to another bed: reload its bindings
    RESYNC = "resync"  # the sender's panels may have missed events: reload snapshots
    COMMAND = "command"  # an alarm command for the bed's owner
    REPLY = "reply"  # the owner's answer to a command


@dataclass(frozen=True, slots=True)
class Keys:
    """Every Redis key and channel of one deployment, namespaced by its prefix."""

    prefix: str

    @property
    def bus(self) -> str:
        return f"{self.prefix}:bus"

    @property
    def seen(self) -> str:
        """Hash: device -> its last sign of life (server time), for a new owner's takeover."""
        return f"{self.prefix}:seen"

    def lease(self, bed_id: str) -> str:
        return f"{self.prefix}:lease:{bed_id}"

    def commands(self, instance_id: str) -> str:
        return f"{self.prefix}:cmd:{instance_id}"

    def instance(self, instance_id: str) -> str:
        return f"{self.prefix}:instance:{instance_id}"


# --- bus messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReadingStored:
    kind: ClassVar[Kind] = Kind.READING
    reading: Reading


@dataclass(frozen=True, slots=True)
class AlarmChanged:
    kind: ClassVar[Kind] = Kind.ALARM
    alarm: Alarm


@dataclass(frozen=True, slots=True)
class SessionChanged:
    kind: ClassVar[Kind] = Kind.SESSION
    session_id: int
    message: str  # the feed message, as the origin's panels got it


@dataclass(frozen=True, slots=True)
class DeviceSeen:
    kind: ClassVar[Kind] = Kind.SEEN
    bed_id: str
    device_id: str
    at: float


@dataclass(frozen=True, slots=True)
class FrameRejected:
    kind: ClassVar[Kind] = Kind.ARTEFACT
    bed_id: str
    device_id: str
    code: str
    at: float


@dataclass(frozen=True, slots=True)
class DeviceRevoked:
    kind: ClassVar[Kind] = Kind.REVOKED
    device_id: str


@dataclass(frozen=True, slots=True)
class DeviceRebound:
    kind: ClassVar[Kind] = Kind.REBOUND
    device_id: str
    old_bed: str | None


@dataclass(frozen=True, slots=True)
class Resync:
    kind: ClassVar[Kind] = Kind.RESYNC


# --- commands and replies (an instance's own channel) -------------------------------------


@dataclass(frozen=True, slots=True)
class Acknowledge:
    kind: ClassVar[Kind] = Kind.COMMAND
    rid: str
    alarm_id: str
    user: str


@dataclass(frozen=True, slots=True)
class PauseAudio:
    kind: ClassVar[Kind] = Kind.COMMAND
    rid: str
    bed_id: str | None
    seconds: float | None
    user: str


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """A command this version does not know (a newer peer's): answered ``UNKNOWN``."""

    kind: ClassVar[Kind] = Kind.COMMAND
    rid: str
    op: str


Command = Acknowledge | PauseAudio | UnknownCommand


class ReplyError(StrEnum):
    NOT_OWNER = "not_owner"  # the bed is not judged by the instance asked (ask again)
    UNAVAILABLE = "unavailable"  # the owner could not store the command
    VALUE = "value"  # the command was refused (``detail`` says why)
    UNKNOWN = "unknown"  # the owner does not know the command


@dataclass(frozen=True, slots=True)
class Reply:
    kind: ClassVar[Kind] = Kind.REPLY
    rid: str | None = None
    error: ReplyError | None = None
    detail: str | None = None
    alarm: Alarm | None = None  # an ack's acknowledged alarm
    alarms: tuple[Alarm, ...] = ()  # a pause's changed alarms


Message = (
    ReadingStored
    | AlarmChanged
    | SessionChanged
    | DeviceSeen
    | FrameRejected
    | DeviceRevoked
    | DeviceRebound
    | Resync
    | Acknowledge
    | PauseAudio
    | UnknownCommand
    | Reply
)


# --- wire text ------------------------------------------------------------------------------


def _reading_data(r: Reading) -> list[Any]:
    return [r.device_id, r.seq, r.ts, r.received_at, dict(r.values), r.source, r.bed_id]


def _reading_from(data: Any) -> Reading:
    dev, seq, ts, received_at, values, source, bed = data
    return Reading(
        device_id=dev,
        seq=int(seq),
        ts=float(ts),
        received_at=float(received_at),
        values=values,
        source=source,
        bed_id=bed,
    )


def alarm_data(a: Alarm) -> dict[str, Any]:
    return dataclasses.asdict(a)


def alarm_from(d: Any) -> Alarm:
    return Alarm(**d)


def _body(m: Message) -> str:
    data: Any
    match m:
        case ReadingStored(reading=r):
            data = _reading_data(r)
        case AlarmChanged(alarm=a):
            data = alarm_data(a)
        case SessionChanged(message=text):
            return text
        case DeviceSeen():
            data = [m.bed_id, m.device_id, m.at]
        case FrameRejected():
            data = [m.bed_id, m.device_id, m.code, m.at]
        case DeviceRevoked(device_id=device_id):
            return device_id
        case DeviceRebound():
            data = [m.device_id, m.old_bed]
        case Resync():
            return ""
        case Acknowledge():
            data = {"op": "ack", "alarm_id": m.alarm_id, "user": m.user, "rid": m.rid}
        case PauseAudio():
            data = {
                "op": "pause",
                "bed": m.bed_id,
                "seconds": m.seconds,
                "user": m.user,
            }
            data["rid"] = m.rid
        case UnknownCommand():
            data = {"op": m.op, "rid": m.rid}
        case Reply():
            data = {}
            if m.error is not None:
                data["error"] = m.error.value
                if m.detail is not None:
                    data["detail"] = m.detail
            if m.alarm is not None:
                data["alarm"] = alarm_data(m.alarm)
            if m.alarms:
                data["alarms"] = [alarm_data(a) for a in m.alarms]
            data["rid"] = m.rid
    return orjson.dumps(data).decode()


def encode(sender: str, message: Message) -> str:
    return f"{sender}{SEP}{message.kind.value}{SEP}{_body(message)}"


def _command_from(d: dict[str, Any]) -> Command:
    rid = str(d.get("rid", ""))
    op = d.get("op")
    if op == "ack":
        return Acknowledge(rid=rid, alarm_id=str(d["alarm_id"]), user=str(d["user"]))
    if op == "pause":
        bed = d.get("bed")
        seconds: float | None = d.get("seconds")
        return PauseAudio(
            rid=rid,
            bed_id=None if bed is None else str(bed),
            seconds=seconds,  # as sent: the audit entry records the nurse's number
            user=str(d.get("user", "")),
        )
    return UnknownCommand(rid=rid, op=str(op))


def _reply_from(d: dict[str, Any]) -> Reply:
    error = d.get("error")
    rid = d.get("rid")
    detail = d.get("detail")
    return Reply(
        rid=None if rid is None else str(rid),
        error=None if error is None else ReplyError(error),
        detail=None if detail is None else str(detail),
        alarm=None if d.get("alarm") is None else alarm_from(d["alarm"]),
        alarms=tuple(alarm_from(a) for a in d.get("alarms", [])),
    )


def decode(text: str) -> tuple[str, Message]:
    """(sender, message) of a wire text; raises ValueError (or KeyError) if malformed."""
    sender, kind_text, body = text.split(SEP, 2)
    kind = Kind(kind_text)
    message: Message
    if kind is Kind.READING:
        message = ReadingStored(_reading_from(orjson.loads(body)))
    elif kind is Kind.ALARM:
        message = AlarmChanged(alarm_from(orjson.loads(body)))
    elif kind is Kind.SESSION:
        message = SessionChanged(int(orjson.loads(body)["session"]["id"]), body)
    elif kind is Kind.SEEN:
        bed_id, device_id, at = orjson.loads(body)
        message = DeviceSeen(str(bed_id), str(device_id), float(at))
    elif kind is Kind.ARTEFACT:
        bed_id, device_id, code, at = orjson.loads(body)
        message = FrameRejected(str(bed_id), str(device_id), str(code), float(at))
    elif kind is Kind.REVOKED:
        message = DeviceRevoked(body)
    elif kind is Kind.REBOUND:
        device_id, old_bed = orjson.loads(body)
        message = DeviceRebound(str(device_id), None if old_bed is None else str(old_bed))
    elif kind is Kind.RESYNC:
        message = Resync()
    elif kind is Kind.COMMAND:
        message = _command_from(orjson.loads(body))
    else:
        message = _reply_from(orjson.loads(body))
    return sender, message
