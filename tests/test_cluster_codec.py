"""The multi-instance bus messages (docs/deployment.md, "How multi-instance mode is built"):
each kind is a typed message whose wire text decodes to the same message, in the wire format
instances already running speak."""

from __future__ import annotations

import pytest

from monitor.cluster.codec import (
    Acknowledge,
    AlarmChanged,
    DeviceRebound,
    DeviceRevoked,
    DeviceSeen,
    FrameRejected,
    Kind,
    Message,
    PauseAudio,
    ReadingStored,
    Reply,
    ReplyError,
    Resync,
    SessionChanged,
    UnknownCommand,
    decode,
    encode,
)
from tests.factories import T0, make_alarm, make_reading

ALARM = make_alarm(detail={"limit": 85})
MESSAGES: list[Message] = [
    ReadingStored(make_reading({"spo2": 91.5, "hr": 72.0}, received_at=T0 + 0.25)),
    AlarmChanged(ALARM),
    SessionChanged(7, '{"type":"session","session":{"id":7,"phase":"dosing"}}'),
    DeviceSeen("bed-1", "dev-1", T0),
    FrameRejected("bed-1", "dev-1", "out_of_range", T0),
    DeviceRevoked("dev-1"),
    DeviceRebound("dev-1", None),
    DeviceRebound("dev-1", "bed-0"),
    Resync(),
    Acknowledge(rid="r1", alarm_id="a-1", user="nurse"),
    PauseAudio(rid="r2", bed_id="bed-1", seconds=30, user="nurse"),
    UnknownCommand(rid="r3", op="future"),
    Reply(rid="r1", alarm=ALARM),
    Reply(rid="r2", alarms=(ALARM, ALARM)),
    Reply(rid="r3", error=ReplyError.VALUE, detail="too long"),
    Reply(rid="r4", error=ReplyError.NOT_OWNER),
]


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: type(m).__name__)
def test_every_bus_message_decodes_to_the_message_encoded(message: Message) -> None:
    """docs/deployment.md: readings and alarms travel as exact data, each kind named."""
    sender, decoded = decode(encode("inst-a", message))
    assert sender == "inst-a" and decoded == message
    assert encode("inst-a", message).split("\x1f")[1] == message.kind.value


def test_the_wire_text_is_the_one_running_instances_speak() -> None:
    """docs/deployment.md (rolling upgrade): the kinds, separators and bodies are unchanged."""
    assert [k.value for k in Kind] == [
        "reading", "alarm", "session", "seen", "artefact", "revoked", "rebound", "resync",
        "command", "reply",
    ]  # fmt: skip
    assert encode("a", DeviceSeen("b1", "d1", 1.5)) == 'a\x1fseen\x1f["b1","d1",1.5]'
    assert encode("a", DeviceRevoked("d1")) == "a\x1frevoked\x1fd1"
    ack = encode("a", Acknowledge(rid="r", alarm_id="x", user="u"))
    assert ack == 'a\x1fcommand\x1f{"op":"ack","alarm_id":"x","user":"u","rid":"r"}'
    _, pause = decode('b\x1fcommand\x1f{"op":"pause","bed":"b1","seconds":30,"user":"u","rid":"q"}')
    assert pause == PauseAudio(rid="q", bed_id="b1", seconds=30, user="u")
    _, reply = decode('b\x1freply\x1f{"error":"unavailable","rid":"q"}')
    assert reply == Reply(rid="q", error=ReplyError.UNAVAILABLE)
