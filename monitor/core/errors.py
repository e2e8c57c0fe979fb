"""Errors that cross stages, and the stable codes of every refusal (``ErrorCode``): the use
cases refuse with them and the API answers with them (docs/api.md lists each)."""

from __future__ import annotations

from enum import StrEnum


class Unavailable(RuntimeError):
    """A stage could not make something durable (the store failed or the monitor is stopping).
    Devices get the protocol's ``unavailable`` error and send the reading again; people get
    503 with code ``unavailable``."""


class ErrorCode(StrEnum):
    """Codes of the API's error answers; docs/api.md lists each with its meaning."""

    INVALID_REQUEST = "invalid_request"  # 422: a field of the body, query or path is not valid
    UNAUTHENTICATED = "unauthenticated"  # 401: no token, a wrong one, or a failed login
    FORBIDDEN = "forbidden"  # 403: the user's role does not allow this
    NOT_FOUND = "not_found"  # 404: no such session, bed, alarm, device or path
    METHOD_NOT_ALLOWED = "method_not_allowed"  # 405
    CONFLICT = "conflict"  # 409 without a more specific code
    BED_OCCUPIED = "bed_occupied"  # 409: the bed already has an open session
    EVENT_NOT_ALLOWED = "event_not_allowed"  # 409: the event does not fit the session's phase
    SESSION_ENDED = "session_ended"  # 409: the session has ended
    ALARM_NOT_ACKNOWLEDGEABLE = "alarm_not_acknowledgeable"  # 409
    OVERRIDE_FORBIDDEN = "override_forbidden"  # 403: only charge or admin may override
    CHECKLIST_INCOMPLETE = "checklist_incomplete"  # 409: dosing before the checklist is done
    PREDOSE_BP_MISSING = "predose_bp_missing"  # 409: dosing without a pre-dose cuff BP
    PREDOSE_BP_HIGH = "predose_bp_high"  # 409: pre-dose BP at or above the protocol's
    DISCHARGE_BLOCKED = "discharge_blocked"  # 409: end while discharge criteria are unmet
    REMS_INCOMPLETE = "rems_incomplete"  # 409: signing an incomplete REMS record, no reason
    REMS_SIGNED = "rems_signed"  # 409: the REMS record is signed already
    REMS_NOT_SIGNED = "rems_not_signed"  # 409: marked filed before it was signed
    REMS_FILED = "rems_filed"  # 409: the REMS record is marked filed already
    REMS_NOT_REQUIRED = "rems_not_required"  # 409: the session's protocol needs no REMS record
    DUPLICATE_EVENT = "duplicate_event"  # 409: a plain repeat of the record event just stored
    RECORD_NEEDS_ATTENTION = "record_needs_attention"  # 409: the stored events do not fold
    TOO_MANY_LOGINS = "too_many_logins"  # 429: failed logins over the limit (name or address)
    LOGIN_BUSY = "login_busy"  # 503: too many logins waiting for the password check
    LOGIN_UNAVAILABLE = "login_unavailable"  # 503: the shared login limiter (Redis) is down
    USER_EXISTS = "user_exists"  # 409: that user name is taken (send reset to reset it)
    NO_SUCH_USER = "no_such_user"  # 404
    IDEMPOTENCY_KEY_UNRESOLVED = (
        "idempotency_key_unresolved"  # 409: its first request never answered
    )
    INTERNAL_ERROR = "internal_error"  # 500: a fault of the monitor (logged)
    UNAVAILABLE = "unavailable"  # 503: storage or another stage cannot take the command now
