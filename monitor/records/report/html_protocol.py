"""The protocol part of the printable report: checklist, administration record, checkpoints,
the discharge decision and every override of a protocol gate (docs/protocols.md "Report").

Built from the session as the API shows it (its ``checklist``, ``checkpoints``, ``discharge``
and ``events``), the session's audit entries and its protocol (for the checkpoints' wording).
The words are for the nurse and the clinic's records: no config keys, no reason codes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from monitor.clinical.protocols import Anchor, Checkpoint, CheckpointKind, Protocol
from monitor.records.report.common import epoch, fmt_duration, fmt_number
from monitor.records.report.html_kit import esc, table, utc, when

KIND_NAMES: Final[Mapping[str, str]] = {
    CheckpointKind.BP.value: "Blood pressure (cuff)",
    CheckpointKind.MOAAS.value: "Sedation (MOAA/S)",
    CheckpointKind.CADSS.value: "Dissociation (CADSS)",
}
ANCHOR_WORDS: Final[Mapping[Anchor, str]] = {
    Anchor.ADMISSION: "admission",
    Anchor.INFUSION_START: "dosing started",
    Anchor.INFUSION_STOP: "dosing ended",
    Anchor.DISCHARGE_REQUEST: "discharge was requested",
}
PHASE_WORDS: Final[Mapping[str, str]] = {
    "baseline": "the baseline",
    "infusion": "dosing",
    "recovery": "recovery",
}
# The discharge model's reason codes (monitor.clinical.rules.Blocked) in plain words.
BLOCKED_WORDS: Final[Mapping[str, str]] = {
    "too_soon": "too soon: the minimum observation time had not passed",
    "bp_missing": "no cuff blood pressure since dosing",
    "bp_out_of_range": "the last cuff blood pressure was outside the discharge range",
    "spo2_missing": "no SpO2 since dosing",
    "spo2_low": "the last SpO2 was too low",
    "hr_missing": "no heart rate since dosing",
    "hr_out_of_range": "the last heart rate was outside the discharge range",
    "moaas_missing": "no sedation score (MOAA/S) since dosing",
    "moaas_low": "the last sedation score (MOAA/S) was below the discharge score",
    "escort_unconfirmed": "the escort was not confirmed",
}
OVERRIDE_WORDS: Final[Mapping[str, str]] = {
    "predose_bp_override": "Dosing despite a high pre-dose blood pressure",
    "dose_override": "A dose outside the dosing rules (device spacing or count)",
    "discharge_override": "Discharge before the criteria were met",
}
ROUTE_WORDS: Final[Mapping[str, str]] = {"iv": "intravenous", "intranasal": "intranasal"}


def _plain_time(text: object) -> str:
    """A time the nurse entered (RFC 3339) as date and clock time."""
    ts = epoch(text)
    if ts is None:
        return esc(text)
    return esc(datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC"))


def _answer(kind: str, value: object) -> str:
    if value is None:
        return '<span class="muted">not answered</span>'
    if kind == "confirm":
        return "Yes (confirmed)" if value is True else esc(value)
    if kind == "time":
        return _plain_time(value)
    if kind == "number" and isinstance(value, int | float):
        return esc(fmt_number(float(value)))
    return esc(value)


def _mapping(value: object) -> Mapping[str, Any]:
    """An event's data or an audit entry's detail, {} when it holds none."""
    return value if isinstance(value, Mapping) else {}


def _events(session: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return sorted(
        session.get("events") or [], key=lambda e: (epoch(e.get("at")) or 0.0, str(e.get("id")))
    )


def _checklist_section(session: Mapping[str, Any], origin: float | None) -> str:
    # Who answered each item and when: the latest checklist event that names it; earlier
    # answers are kept in view, since a corrected answer is part of the record.
    answers: dict[str, list[Mapping[str, Any]]] = {}
    for e in _events(session):
        data = e.get("data")
        if e.get("type") == "checklist" and isinstance(data, Mapping):
            for item_id in data:
                answers.setdefault(str(item_id), []).append(e)
    rows = []
    for item in session.get("checklist") or []:
        history = answers.get(str(item.get("id")), [])
        last = history[-1] if history else None
        earlier = "".join(
            f'<br><span class="muted">earlier: {_answer(str(item.get("kind")), (e.get("data") or {}).get(item.get("id")))}'
            f" ({when(epoch(e.get('at')), origin)}, {esc(e.get('by') or '')})</span>"
            for e in history[:-1]
        )
        rows.append(
            [
                esc(item.get("label")),
                _answer(str(item.get("kind")), item.get("value")) + earlier,
                when(epoch(last.get("at")), origin) if last else "–",
                esc(last.get("by") or "") if last else "",
            ]
        )
    return table(["Item", "Answer", "Recorded", "By"], rows)


def _dose_text(data: Mapping[str, Any]) -> str:
    parts = []
    route = str(data.get("route") or "")
    if route == "intranasal" and isinstance(data.get("device"), int):
        parts.append(
            f"device {data['device']}: {fmt_number(float(data.get('total_mg') or 0))} mg"
            + (
                f" (total so far {fmt_number(float(data['cumulative_mg']))} mg)"
                if isinstance(data.get("cumulative_mg"), int | float)
                else ""
            )
        )
    else:
        per_kg, total, weight = data.get("mg_per_kg"), data.get("total_mg"), data.get("weight_kg")
        if isinstance(per_kg, int | float) and isinstance(weight, int | float):
            parts.append(
                f"{fmt_number(float(per_kg))} mg/kg × {fmt_number(float(weight))} kg"
                + (f" = {fmt_number(float(total))} mg" if isinstance(total, int | float) else "")
            )
        elif isinstance(total, int | float):
            parts.append(f"{fmt_number(float(total))} mg")
    if isinstance(data.get("concentration_mg_ml"), int | float):
        parts.append(f"concentration {fmt_number(float(data['concentration_mg_ml']))} mg/mL")
    if data.get("rate"):
        parts.append(f"rate {data['rate']}")
    return "; ".join(esc(p) for p in parts)


def _administration_section(session: Mapping[str, Any], origin: float | None) -> str:
    rows = []
    for e in _events(session):
        kind, at = e.get("type"), epoch(e.get("at"))
        data = _mapping(e.get("data"))
        what = details = ""
        if kind == "infusion_start":
            what = "Dosing started"
            if data.get("prescriber"):
                details = (
                    f"over a high pre-dose blood pressure, on the decision of "
                    f"{esc(data['prescriber'])}: {esc(data.get('reason') or '')}"
                )
        elif kind == "dose":
            drug = esc(data.get("drug") or "")
            route = esc(ROUTE_WORDS.get(str(data.get("route")), data.get("route") or ""))
            what = f"Dose: {drug}" + (f", {route}" if route else "")
            details = _dose_text(data)
            if data.get("lot"):
                details += f"; lot <b>{esc(data['lot'])}</b>"
            if data.get("override_reason"):
                details += f"; outside the dosing rules: {esc(data['override_reason'])}"
        elif kind == "infusion_pause":
            what = "Dosing paused"
            details = (
                f"reason: {esc(data['reason'])}"
                if data.get("reason")
                else '<span class="muted">no reason given</span>'
            )
        elif kind == "infusion_resume":
            what = "Dosing resumed"
        elif kind == "infusion_stop":
            what = "Dosing ended"
        else:
            continue
        rows.append([when(at, origin), what, details, esc(e.get("by") or "")])
    return table(["Time", "What", "Details", "By"], rows)


def _checkpoint_words(cp: Mapping[str, Any], protocol: Protocol | None) -> str:
    kind = KIND_NAMES.get(str(cp.get("kind")), str(cp.get("kind")))
    rule: Checkpoint | None = None
    if protocol is not None:
        rule = next((c for c in protocol.checkpoints if c.id == cp.get("checkpoint")), None)
    if rule is None:
        return esc(kind)
    anchor = ANCHOR_WORDS[rule.anchor]
    text = (
        f"{kind}, {fmt_number(rule.offset_min)} min after {anchor}"
        if rule.offset_min
        else f"{kind}, when {anchor}"
    )
    if rule.every_min is not None and rule.within is not None:
        number = str(cp.get("id", "")).rpartition(".")[2]
        text += (
            f", then every {fmt_number(rule.every_min)} min during "
            f"{PHASE_WORDS.get(rule.within, rule.within)} (no. {number})"
        )
    return esc(text)


def _satisfier_words(
    s: Mapping[str, Any] | None, events: Sequence[Mapping[str, Any]], origin: float | None
) -> str:
    if not s:
        return ""
    values = s.get("values") or {}
    if s.get("type") == "reading":
        bp = f"{fmt_number(float(values.get('sbp', 0)))}/{fmt_number(float(values.get('dbp', 0)))}"
        mean = (
            f" (mean {fmt_number(float(values['map']))})"
            if isinstance(values.get("map"), int | float)
            else ""
        )
        return (
            f"cuff {esc(bp)} mmHg{esc(mean)} measured {when(epoch(s.get('ts')), origin)} "
            f"by {esc(s.get('device_id') or '')}"
        )
    by = next((e.get("by") for e in events if e.get("id") == s.get("event_id")), None)
    scores = ", ".join(
        f"{'MOAA/S' if k == 'moaas' else 'CADSS'} {fmt_number(float(v))}"
        for k, v in values.items()
        if isinstance(v, int | float)
    )
    return f"{esc(scores)} recorded {when(epoch(s.get('at')), origin)}" + (
        f" by {esc(by)}" if by else ""
    )


def _checkpoint_status(cp: Mapping[str, Any], ended: float | None, now: float) -> str:
    status = cp.get("status")
    if status == "done":
        if not cp.get("late"):
            return "On time"
        done, closes = epoch(cp.get("done_at")), epoch(cp.get("window_end"))
        late = fmt_duration(done - closes) if done is not None and closes is not None else ""
        return f'<span class="prio-medium">Late</span> ({esc(late)} after its window)'
    due, opens = epoch(cp.get("due_at")), epoch(cp.get("window_start"))
    if due is None:
        return '<span class="muted">Never due (its starting event did not happen)</span>'
    if ended is not None and opens is not None and ended < opens:
        return '<span class="muted">Not reached (the session ended before it was due)</span>'
    if status == "overdue" or ended is not None:
        return '<span class="prio-high">Missed</span>'
    closes = epoch(cp.get("window_end"))
    if status == "due" and closes is not None:
        return f"Due now (until {esc(utc(closes))})"
    return "Upcoming" if now < (opens or now) else esc(status)


def _checkpoints_section(
    session: Mapping[str, Any], protocol: Protocol | None, origin: float | None, now: float
) -> str:
    ended = epoch(session.get("ended_at"))
    events = _events(session)
    rows = []
    for cp in session.get("checkpoints") or []:
        opens, closes = epoch(cp.get("window_start")), epoch(cp.get("window_end"))
        window = f"{esc(utc(opens))}–{esc(utc(closes))}" if opens is not None else "–"
        rows.append(
            [
                _checkpoint_words(cp, protocol),
                when(epoch(cp.get("due_at")), origin),
                window,
                _checkpoint_status(cp, ended, now),
                _satisfier_words(cp.get("satisfied_by"), events, origin),
            ]
        )
    return table(["Check", "Due", "On time between", "Status", "Done by"], rows)


def _blocked_words(codes: object) -> str:
    if not isinstance(codes, list | tuple) or not codes:
        return ""
    return "; ".join(esc(BLOCKED_WORDS.get(str(c), str(c).replace("_", " "))) for c in codes)


def _discharge_section(
    session: Mapping[str, Any], audit: Sequence[Mapping[str, Any]], origin: float | None
) -> str:
    events = _events(session)
    end = next((e for e in events if e.get("type") == "end"), None)
    dosed = any(e.get("type") == "infusion_start" for e in events)
    current = session.get("discharge") or {}
    eligible_at = epoch(current.get("eligible_at"))
    lines = []
    if eligible_at is not None:
        lines.append(
            f"Earliest discharge by the protocol's minimum observation time: {when(eligible_at, origin)}."
        )
    if end is None:
        if current.get("eligible"):
            lines.append("Session still open; the discharge criteria are met now.")
        else:
            lines.append(
                "Session still open; discharge is blocked: "
                + (_blocked_words(current.get("blocked_by")) or "–")
                + "."
            )
        return "".join(f"<p>{line}</p>" for line in lines)
    at, by = when(epoch(end.get("at")), origin), esc(end.get("by") or "")
    data = _mapping(end.get("data"))
    reason = data.get("override_reason")
    if isinstance(reason, str) and reason.strip():
        entry = next((a for a in audit if a.get("action") == "discharge_override"), None)
        detail = entry.get("detail") if entry is not None else None
        blocked = detail.get("blocked_by") if isinstance(detail, Mapping) else None
        lines.append(
            f'<b class="prio-high">Discharged before the criteria were met</b> by {by} at {at}. '
            f"Reason: {esc(reason)}."
        )
        if blocked:
            lines.append(f"Not met at the time: {_blocked_words(blocked)}.")
    elif dosed:
        lines.append(f"<b>Discharge criteria met</b>; discharged by {by} at {at}.")
    else:
        lines.append(
            f"Ended by {by} at {at} before any dosing: the discharge criteria did not apply."
        )
    return "".join(f"<p>{line}</p>" for line in lines)


def _overrides_section(audit: Sequence[Mapping[str, Any]], origin: float | None) -> str:
    rows = []
    for entry in sorted(audit, key=lambda x: epoch(x.get("at")) or 0.0):
        action = str(entry.get("action") or "")
        if action not in OVERRIDE_WORDS:
            continue
        detail = _mapping(entry.get("detail"))
        what = []
        if detail.get("prescriber"):
            what.append(f"decided by prescriber {esc(detail['prescriber'])}")
        if detail.get("blocked_by"):
            what.append(f"not met: {_blocked_words(detail['blocked_by'])}")
        rows.append(
            [
                when(epoch(entry.get("at")), origin),
                esc(OVERRIDE_WORDS[action]),
                esc(entry.get("actor") or ""),
                esc(detail.get("reason") or ""),
                "; ".join(what),
            ]
        )
    return table(["Time", "Override", "By", "Reason", "Details"], rows)


def protocol_html(
    session: Mapping[str, Any],
    audit: Sequence[Mapping[str, Any]],
    protocol: Protocol | None,
    *,
    origin: float | None,
    generated_at: float,
) -> str:
    """The report's protocol sections, or "" for a session that runs none."""
    if not session.get("protocol"):
        return ""
    label = protocol.label if protocol is not None else str(session["protocol"])
    parts = [f"<h2>Protocol: {esc(label)}</h2>"]
    if session.get("checklist"):
        parts += ["<h3>Pre-dose checklist</h3>", _checklist_section(session, origin)]
    parts += ["<h3>Administration record</h3>", _administration_section(session, origin)]
    if session.get("checkpoints"):
        parts += [
            "<h3>Timed checks</h3>",
            _checkpoints_section(session, protocol, origin, generated_at),
        ]
    parts += ["<h3>Discharge</h3>", _discharge_section(session, audit, origin)]
    parts += ["<h3>Overrides of the protocol</h3>", _overrides_section(audit, origin)]
    return "".join(parts)
