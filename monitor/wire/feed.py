"""Feed protocol, version 1: what the monitor pushes to panels on ``/ws/feed``.

Every message is a JSON object with ``type`` and ``v``:
    hello    {"type": "hello", "v": 1, "server_time": RFC3339, "beds": [bed, ...]}
             sent first: the full snapshot, the same shape as ``GET /api/beds``.
    reading  {"type": "reading", "v": 1, "bed": id, "device_id": id, "seq": int,
              "ts": RFC3339, "received_at": RFC3339, "source": "nibp"|null,
              "values": {...}}
    alarm    {"type": "alarm", "v": 1, "alarm": {alarm as in GET /api/alarms}}
             sent on every change of an alarm (raised, escalated, acknowledged, paused, ended).
    session  {"type": "session", "v": 1, "session": {session as in GET /api/sessions/{id}}}
    ping     {"type": "ping", "v": 1, "server_time": RFC3339}
             every few seconds, so a panel can tell a quiet ward from a dead feed.
    bye      {"type": "bye", "v": 1, "reason": text}
             the monitor is dropping this client (too slow, shutting down).
    health   {"type": "health", "v": 1, "status": "ok"|"degraded", "failing": [stage, ...]}
             sent when the set of failing pipeline stages changes (and in ``hello`` as
             ``health``), so a panel can say "monitor degraded: <stage>" on every tile.

    batch    {"type": "batch", "v": 1, "messages": [message, ...]}
             only to a panel that opened the feed with ``?batch=1``: the messages that were
             waiting when its sender woke (at most ``BATCH_MAX``), in the order they were
             published, in one frame. Never nested, never empty, never holds ``hello``.

Panel -> monitor, once, first, and only when the upgrade carried no token (browsers cannot set
headers on a websocket, and a token in the URL ends up in logs):
    auth     {"type": "auth", "v": 1, "token": access token}
Anything else a panel sends is read and ignored.

Messages are serialised once per event and the same bytes go to every panel.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import orjson

from monitor.core.model import Alarm, Reading, to_rfc3339

VERSION: Final = 1
# Messages in one batch frame: about 60 KB of readings, under a browser's or a relay's
# comfortable frame size, and a bound on the panel's work per frame.
BATCH_MAX: Final = 256
_BATCH_HEAD: Final = f'{{"type":"batch","v":{VERSION},"messages":['


def _dumps(obj: Mapping[str, Any]) -> str:
    return orjson.dumps(obj).decode()


def reading_message(reading: Reading) -> str:
    return _dumps(
        {
            "type": "reading",
            "v": VERSION,
            "bed": reading.bed_id,
            "device_id": reading.device_id,
            "seq": reading.seq,
            "ts": to_rfc3339(reading.ts),
            "received_at": to_rfc3339(reading.received_at),
            "source": reading.source,
            "values": dict(reading.values),
        }
    )


def alarm_json(alarm: Alarm) -> dict[str, Any]:
    """The public shape of an alarm, shared by the REST API and the feed."""
    return {
        "id": alarm.id,
        "bed": alarm.bed_id,
        "signal": alarm.signal,
        "kind": alarm.kind.value,
        "priority": alarm.priority.value,
        "condition": alarm.condition,
        "started_at": to_rfc3339(alarm.started_at),
        "ended_at": to_rfc3339(alarm.ended_at),
        "acknowledged_at": to_rfc3339(alarm.acknowledged_at),
        "acknowledged_by": alarm.acknowledged_by,
        "state": alarm.state.value,
        "escalated": alarm.escalated,
        "audio_paused_until": to_rfc3339(alarm.audio_paused_until),
        "session_id": alarm.session_id,
        "device_id": alarm.device_id,
        "value": alarm.value,
    }


def alarm_message(alarm: Alarm) -> str:
    return _dumps({"type": "alarm", "v": VERSION, "alarm": alarm_json(alarm)})


def session_message(session: Mapping[str, Any]) -> str:
    return _dumps({"type": "session", "v": VERSION, "session": session})


def health_json(failing: list[str]) -> dict[str, Any]:
    return {"status": "degraded" if failing else "ok", "failing": list(failing)}


def health_message(failing: list[str]) -> str:
    return _dumps({"type": "health", "v": VERSION, **health_json(failing)})


def hello_message(
    server_time: float, beds: list[dict[str, Any]], failing: list[str] | None = None
) -> str:
    return _dumps(
        {
            "type": "hello",
            "v": VERSION,
            "server_time": to_rfc3339(server_time),
            "beds": beds,
            "health": health_json(failing or []),
        }
    )


def batch_message(messages: list[str]) -> str:
    """Several serialised messages as one (``batch``): joined as they are, not parsed and
    serialised again, so each panel's copy of a message stays the same text."""
    return _BATCH_HEAD + ",".join(messages) + "]}"


def ping_message(server_time: float) -> str:
    return _dumps({"type": "ping", "v": VERSION, "server_time": to_rfc3339(server_time)})


def bye_message(reason: str) -> str:
    return _dumps({"type": "bye", "v": VERSION, "reason": reason})


AUTH_TOKEN_MAX = 512


def parse_auth(text: str | None) -> str | None:
    """The token of an ``auth`` message, or None for anything else (the caller closes 1008)."""
    if text is None or len(text) > AUTH_TOKEN_MAX * 2:
        return None
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or obj.get("type") != "auth" or obj.get("v", VERSION) != VERSION:
        return None
    token = obj.get("token")
    if not isinstance(token, str) or not 0 < len(token) <= AUTH_TOKEN_MAX or "\x00" in token:
        return None
    return token
