"""The esketamine REMS monitoring record as a printable page (docs/course.md "REMS record").

Drawn from the JSON record of monitor.clinical.rems only (one builder, one renderer): a field still
missing is printed as MISSING so a nurse sees on paper what the form still needs. Every text
that came from a person (label, lot, answers, adverse events, reasons) is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.records.report.html_kit import CSS, DISCLAIMER, esc

_MISSING = '<b class="prio-high">MISSING</b>'

FORM_CLASSES = {
    "benzodiazepines": "Benzodiazepines",
    "non_benzodiazepine_sedative_hypnotics": "Non-benzodiazepine sedative-hypnotics",
    "psychostimulants": "Psychostimulants",
    "maois": "Monoamine oxidase inhibitors (MAOIs)",
}


def _val(value: object) -> str:
    if value is None:
        return _MISSING
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return esc(value)


def _rows(rows: list[tuple[str, str]]) -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<table>{body}</table>"


def _bp(bp: Mapping[str, Any] | None) -> str:
    if bp is None:
        return _MISSING
    return f"{esc(bp['sbp'])}/{esc(bp['dbp'])} mmHg at {esc(bp['at'])}"


def rems_html(rec: Mapping[str, Any], *, generated_at: str) -> str:
    """The page for one record (``monitor.clinical.rems.record``)."""
    missing = list(rec["missing"])
    status = (
        "<p><b>Complete</b>: every field the form asks for is recorded.</p>"
        if rec["complete"]
        else f'<p class="prio-high"><b>Incomplete</b>: missing {esc(", ".join(missing))}</p>'
    )
    meds = [(FORM_CLASSES.get(str(k), str(k)), _val(v)) for k, v in rec["medications"].items()]
    dose = rec["dose"]
    devices = "".join(
        f"<li>{esc(d['at'])}: {esc(d['mg'])} mg, lot {esc(d['lot'] or '-')}</li>"
        for d in rec["devices"]
    )
    mon = rec["monitoring"]
    answers = rec["answers"]
    events = "".join(
        f"<li>{esc(e['at'])}: {esc(e['description'])}</li>" for e in rec["adverse_events"]
    )
    signed = rec["signed"]
    filed = rec["filed"]
    sign_text = (
        f"{esc(signed['by'])} at {esc(signed['at'])}"
        + (
            f" (signed incomplete: {esc(signed['incomplete_reason'])})"
            if signed.get("incomplete_reason")
            else ""
        )
        if signed
        else "not signed"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>REMS monitoring record – session {esc(rec['session_id'])}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Esketamine REMS patient monitoring record</h1>",
        f'<p class="disclaimer">{esc(DISCLAIMER)} Vigil does not submit this form to the REMS; '
        "it records when a user marks it filed.</p>",
        status,
        _rows(
            [
                ("Session", esc(rec["session_id"])),
                ("Patient", esc(rec["patient_id"] or "-") + " " + esc(rec["patient_label"])),
                ("Protocol", esc(rec["protocol"])),
            ]
        ),
        "<h2>Concomitant medications</h2>",
        _rows(meds),
        "<h2>Dose</h2>",
        _rows(
            [
                (
                    "Dose",
                    _val(dose["category"])
                    + (f" ({esc(dose['total_mg'])} mg)" if dose["total_mg"] else ""),
                ),
                ("Lot", esc(", ".join(dose["lots"])) if dose["lots"] else _MISSING),
            ]
        ),
        f"<ul>{devices}</ul>" if devices else "",
        "<h2>Blood pressure</h2>",
        _rows(
            [
                ("Prior to administration", _bp(rec["bp"]["predose"])),
                ("About 40 minutes after", _bp(rec["bp"]["at_40_min"])),
                ("Prior to completion of monitoring", _bp(rec["bp"]["predischarge"])),
                ("Vitals acceptable before dosing", _val(rec["vitals_acceptable"]["predose"])),
                ("Vitals acceptable before leaving", _val(rec["vitals_acceptable"]["discharge"])),
            ]
        ),
        "<h2>Monitoring</h2>",
        _rows(
            [
                ("First device", _val(mon["first_device_at"])),
                ("Monitoring ended", _val(mon["ended_at"])),
                ("Total monitoring (min)", _val(mon["minutes"])),
                ("At least the minimum", _val(mon["meets_minimum"])),
                ("Ready to leave", _val(rec["ready_to_leave_at"])),
            ]
        ),
        "<h2>During the session</h2>",
        _rows(
            [
                ("Sedation", _val(answers["sedation"])),
                ("Dissociation", _val(answers["dissociation"])),
                ("Respiratory depression", _val(answers["respiratory_depression"])),
                ("Serious adverse event", _val(answers["serious_adverse_event"])),
            ]
        ),
        f"<ul>{events}</ul>" if events else "",
        "<h2>Sign-off</h2>",
        _rows(
            [
                ("Signed", sign_text),
                ("Marked filed", f"{esc(filed['by'])} at {esc(filed['at'])}" if filed else "no"),
                ("Due", esc(rec["due_at"] or "- (after the session ends)")),
            ]
        ),
        f'<p class="muted">Generated by Vigil at {esc(generated_at)}.</p>',
        "</body></html>",
    ]
    return "\n".join(parts)
