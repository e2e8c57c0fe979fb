"""Every word the panel shows for a phase, a priority, a check, an event, a refusal and a
record that needs attention: one place, for Python and the browser alike (docs/panel.md).

A leaf module: it imports nothing from dashboard, so layout, bedpage, rems, course and the
page constants all import from it and never from each other for a word. The browser gets the
same words once, as ``words`` in the page constants (dashboard/constants.py ->
``#vigil-config[data-constants]``); assets/*.js keep no copy of their own
(tests/test_panel_words.py fails on a phase or priority word written in a JS file).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from monitor.clinical.protocols import Anchor, CheckpointKind, Route
from monitor.clinical.rules import Blocked, Gate, Status
from monitor.core.errors import ErrorCode
from monitor.core.model import Direction, Phase, Priority

# --- phases -----------------------------------------------------------------------------------

# A phase as the title of the session's clock, on the bed page and on the tile.
PHASE_TITLES: Final[Mapping[str, str]] = {
    Phase.BASELINE: "Baseline",
    Phase.INFUSION: "Infusion",
    Phase.RECOVERY: "Recovery",
    Phase.ENDED: "Session ended",
}
# A phase inside a sentence ("25 Nov 14:06 - bed-1 (dosing)").
PHASE_WORDS: Final[Mapping[str, str]] = {
    Phase.BASELINE: "baseline",
    Phase.INFUSION: "dosing",
    Phase.RECOVERY: "recovery",
    Phase.ENDED: "ended",
}
PAUSED: Final = " (paused)"
NO_PATIENT: Final = "No patient"
# What a tile counts a protocol's sessions in (docs/course.md): "Session 3 of 8" for an
# intranasal course, "Infusion 3 of 6" otherwise.
COURSE_NOUN_INTRANASAL: Final = "Session"
COURSE_NOUN_INFUSION: Final = PHASE_TITLES[Phase.INFUSION]

# --- priorities -------------------------------------------------------------------------------

# The limits table's column heads.
PRIORITY_WORDS: Final[Mapping[str, str]] = {
    Priority.HIGH: "High priority",
    Priority.MEDIUM: "Medium priority",
    Priority.LOW: "Low priority",
}
# After an alarm's condition ("SpO2 below 90 %: medium").
PRIORITY_ALARM_WORDS: Final[Mapping[str, str]] = {
    Priority.HIGH: "high",
    Priority.MEDIUM: "medium",
    Priority.LOW: "low",
}
# IEC 60601-1-8 marks priority by the number of "!" too, so it never rests on colour alone.
PRIORITY_BADGES: Final[Mapping[str, str]] = {
    Priority.HIGH: "!!! HIGH",
    Priority.MEDIUM: "!! MEDIUM",
    Priority.LOW: "! LOW",
}
# A limit's direction as a column head.
DIRECTION_WORDS: Final[Mapping[str, str]] = {Direction.LOW: "Low", Direction.HIGH: "High"}

# --- checks -----------------------------------------------------------------------------------


# A checkpoint's status as the monitor's protocol model names it (the session view's JSON).
STATUS_WORDS: Final[Mapping[str, str]] = {
    Status.UPCOMING: "Upcoming",
    Status.DUE: "Due now",
    Status.DONE: "Done",
    Status.OVERDUE: "Overdue",
}
# A check in the bed page's protocol panel, and (short) in a tile's one line.
CHECKPOINT_KINDS: Final[Mapping[str, str]] = {
    CheckpointKind.BP: "Cuff BP",
    CheckpointKind.MOAAS: "MOAA/S (sedation)",
    CheckpointKind.CADSS: "CADSS (dissociation)",
}
CHECK_SHORT: Final[Mapping[str, str]] = {
    CheckpointKind.BP: "BP",
    CheckpointKind.MOAAS: "MOAA/S",
    CheckpointKind.CADSS: "CADSS",
}
ANCHOR_WORDS: Final[Mapping[str, str]] = {
    Anchor.ADMISSION: "admission",
    Anchor.INFUSION_START: "dosing starts",
    Anchor.INFUSION_STOP: "dosing ends",
    Anchor.DISCHARGE_REQUEST: "discharge is asked for",
}
# What blocks discharge: in a sentence on the bed page, short on a tile.
BLOCKED_WORDS: Final[Mapping[str, str]] = {
    Blocked.TOO_SOON: "too soon after dosing",
    Blocked.BP_MISSING: "no cuff BP since dosing",
    Blocked.BP_OUT_OF_RANGE: "the last cuff BP is outside the discharge range",
    Blocked.SPO2_MISSING: "no SpO\u2082 since dosing",
    Blocked.SPO2_LOW: "SpO\u2082 too low",
    Blocked.HR_MISSING: "no heart rate since dosing",
    Blocked.HR_OUT_OF_RANGE: "heart rate outside the discharge range",
    Blocked.MOAAS_MISSING: "no MOAA/S score since dosing",
    Blocked.MOAAS_LOW: "MOAA/S below 5 (not fully alert)",
    Blocked.ESCORT_UNCONFIRMED: "escort not confirmed",
}
BLOCKED_SHORT: Final[Mapping[str, str]] = {
    Blocked.TOO_SOON: "too soon",
    Blocked.BP_MISSING: "no BP since dosing",
    Blocked.BP_OUT_OF_RANGE: "BP out of range",
    Blocked.SPO2_MISSING: "no SpO\u2082",
    Blocked.SPO2_LOW: "SpO\u2082 low",
    Blocked.HR_MISSING: "no HR",
    Blocked.HR_OUT_OF_RANGE: "HR out of range",
    Blocked.MOAAS_MISSING: "MOAA/S not recorded",
    Blocked.MOAAS_LOW: "MOAA/S low",
    Blocked.ESCORT_UNCONFIRMED: "escort not confirmed",
}

# How a dose was given.
ROUTE_WORDS: Final[Mapping[str, str]] = {Route.IV: "intravenous", Route.INTRANASAL: "intranasal"}

# --- events -----------------------------------------------------------------------------------

# The bed page's phase buttons, in the order shown.
EVENT_TYPES: Final[tuple[str, ...]] = (
    "infusion_start",
    "infusion_pause",
    "infusion_resume",
    "infusion_stop",
    "end",
)
EVENT_LABELS: Final[Mapping[str, str]] = {
    "infusion_start": "Start infusion",
    "infusion_pause": "Pause infusion",
    "infusion_resume": "Resume infusion",
    "infusion_stop": "Stop infusion",
    "end": "End session",
    "observation": "Observation",
}
# The same two buttons in a session run by a protocol (its dosing, whatever the route).
PROTOCOL_EVENT_LABELS: Final[Mapping[str, str]] = {
    "infusion_start": "Start dosing",
    "infusion_stop": "End dosing",
}
# An event on the bed page's timeline.
EVENT_WORDS: Final[Mapping[str, str]] = {
    "infusion_start": "Dosing started",
    "infusion_pause": "Dosing paused",
    "infusion_resume": "Dosing resumed",
    "infusion_stop": "Dosing ended",
    "end": "Session ended",
    "observation": "Observation",
    "checklist": "Checklist",
    "dose": "Dose",
    "discharge_request": "Discharge asked for",
}

# --- the record that needs attention ----------------------------------------------------------

# A stored event in the "record needs attention" line, on the bed page and on the tile.
RECORD_EVENT_WORDS: Final[Mapping[str, str]] = {
    "infusion_start": "an infusion start",
    "infusion_pause": "an infusion pause",
    "infusion_resume": "an infusion resume",
    "infusion_stop": "an infusion stop",
    "end": "an end of session",
    "observation": "an observation",
    "checklist": "a checklist entry",
    "discharge_request": "a discharge request",
    "dose": "a dose",
}
RECORD_UNKNOWN: Final = "an event of a kind this monitor does not know"
# Templates: the browser fills the same {what}, {which} and {id} (assets/vigil-1-fmt.js).
RECORD_LINE: Final = (
    "Record needs attention: {what} that does not fit{which}. Ask an administrator."
)
RECORD_EVENT_ID: Final = " (event {id})"

# --- refusals ---------------------------------------------------------------------------------

# A refusal of the monitor whose sentence needs nothing from the answer (codes: docs/api.md,
# docs/course.md); plain.refusal_text and rems.refusal_text word the rest from these parts.
REFUSAL_WORDS: Final[Mapping[str, str]] = {
    Gate.PREDOSE_BP_MISSING: "Dosing cannot start: take a cuff blood pressure first.",
    Gate.PREDOSE_BP_HIGH: (
        "Dosing cannot start: the last cuff blood pressure is at or above the protocol's "
        "threshold. The prescriber must decide: give the prescriber's name and a reason."
    ),
    ErrorCode.OVERRIDE_FORBIDDEN: "Only a charge nurse or an admin may do this.",
    Gate.DEVICES_EXCEEDED: "Every device of this dose has been given.",
    Gate.DOSE_OUTSIDE_INFUSION: (
        "A dose can be recorded only while dosing runs: press Start dosing first."
    ),
    ErrorCode.SESSION_ENDED: "This session has ended.",
    ErrorCode.EVENT_NOT_ALLOWED: "That step is not possible in this phase of the session.",
    ErrorCode.DUPLICATE_EVENT: "That was recorded moments ago; it is kept once, not twice.",
    ErrorCode.RECORD_NEEDS_ATTENTION: (
        "This session's record holds a step that does not fit the steps before it. "
        "Ask a charge nurse or an admin to check the record before recording more."
    ),
    ErrorCode.REMS_SIGNED: "This REMS record is signed already.",
    ErrorCode.REMS_NOT_SIGNED: "Sign the REMS record before marking it filed.",
    ErrorCode.REMS_FILED: "This REMS record is marked filed already.",
    ErrorCode.REMS_NOT_REQUIRED: "This session's protocol needs no REMS record.",
}
UNREACHABLE: Final = "The monitor cannot be reached."
LOGIN_EXPIRED: Final = "Your login has expired: log in again."
CHECKLIST_INCOMPLETE: Final = "Dosing cannot start: the pre-dose checklist is not complete"
DISCHARGE_BLOCKED: Final = "The patient cannot be discharged yet: {why}."
DEVICE_INTERVAL: Final = "Too soon for the next device"
NOT_ACCEPTED: Final = "The monitor did not accept this: {message}"
REFUSED: Final = "The monitor refused: {message}"
REMS_INCOMPLETE: Final = (
    "The REMS record cannot be signed yet: still missing {what}. "
    "A charge nurse or an admin may sign it with a reason."
)
REMS_SIGN_FORBIDDEN: Final = "Only a charge nurse or an admin may sign an incomplete REMS record."


# --- sentences --------------------------------------------------------------------------------


def fmt_clock(seconds: float | None) -> str:
    """23:41 below an hour, 1:02:03 above; what a nurse reads off an infusion pump."""
    if seconds is None:
        return "--:--"
    s = max(0, int(seconds))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def infusion_text(session: Mapping[str, Any] | None) -> str:
    """'Infusion 23:41 / 40:00' (the JS ticks it every second from the same fields)."""
    if not session:
        return NO_PATIENT
    phase = str(session.get("phase") or "")
    if phase == Phase.BASELINE:
        return PHASE_TITLES[Phase.BASELINE]
    if phase == Phase.RECOVERY:
        infused = fmt_clock(session.get("infusion_elapsed_s"))
        return f"{PHASE_TITLES[Phase.RECOVERY]} (infused {infused})"
    if phase == Phase.ENDED:
        return PHASE_TITLES[Phase.ENDED]
    if phase == Phase.INFUSION:
        elapsed = fmt_clock(session.get("infusion_elapsed_s"))
        planned = session.get("infusion_planned_s")
        text = f"{PHASE_TITLES[Phase.INFUSION]} {elapsed}"
        if planned:
            text += f" / {fmt_clock(planned)}"
        if not session.get("infusion_running", True):
            text += PAUSED
        return text
    return phase.capitalize() or NO_PATIENT


def record_text(problem: Mapping[str, Any] | None) -> str:
    """The session's ``record_problem`` (its stored history holds an event that does not fit)
    in a nurse's words, and whom to ask; "" when the record is fine."""
    if not problem:
        return ""
    what = RECORD_EVENT_WORDS.get(str(problem.get("type")), RECORD_UNKNOWN)
    event_id = problem.get("event_id")
    which = RECORD_EVENT_ID.format(id=event_id) if isinstance(event_id, int) else ""
    return RECORD_LINE.format(what=what, which=which)


def browser_words() -> dict[str, Any]:
    """The words the browser's painter shows, keyed as the monitor's codes are (the page
    constants' ``words``)."""
    return {
        "phase_title": {str(k): v for k, v in PHASE_TITLES.items()},
        "paused": PAUSED,
        "no_patient": NO_PATIENT,
        "course_noun": COURSE_NOUN_INFUSION,
        "priority": {str(k): v for k, v in PRIORITY_ALARM_WORDS.items()},
        "badge": {str(k): v for k, v in PRIORITY_BADGES.items()},
        "check": {str(k): v for k, v in CHECK_SHORT.items()},
        "blocked": {str(k): v for k, v in BLOCKED_SHORT.items()},
        "record_event": dict(RECORD_EVENT_WORDS),
        "record_unknown": RECORD_UNKNOWN,
        "record_line": RECORD_LINE,
        "record_event_id": RECORD_EVENT_ID,
    }
