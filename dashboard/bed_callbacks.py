"""The bed page's protocol callbacks: thin commands to the monitor and the redraw of what it
computed (docs/protocols.md). The monitor decides every gate; a refusal comes back as its
stable code and is shown as a sentence (dashboard/plain.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from dash import ALL, Dash, Input, Output, State, html, no_update

from dashboard import layout, plain, protocol_panel, words
from dashboard.client import MonitorClient, MonitorError, event_key
from dashboard.sessions import Session
from dashboard.widgets import HIDDEN, OVERRIDE_ROLES, SHOWN, message, tz_offset
from monitor.clinical.protocols import Route
from monitor.core.model import Phase

Who = Callable[[Any], Awaitable[Session | None]]
# The phase buttons' words without a protocol (the plain session timer).
TIMER_WORDS = (words.EVENT_LABELS["infusion_start"], words.EVENT_LABELS["infusion_stop"])
PROTOCOL_PARTS = (
    "protocol-panel",
    "checklist-section",
    "predose-section",
    "dose-section",
    "dose-form",
    "dose-iv-fields",
    "dose-override-fields",
    "checkpoint-section",
    "discharge-section",
    "discharge-override-fields",
)


def refusal(exc: MonitorError, tz: Any, labels: dict[str, str] | None = None) -> html.Div:
    return message(
        plain.refusal_text(exc.status, exc.code, exc.info, exc.detail, tz_offset(tz), labels),
        error=True,
    )


def _open_id(bed_session: Any) -> int | None:
    if isinstance(bed_session, dict) and bed_session.get("open") and bed_session.get("id"):
        return int(bed_session["id"])
    return None


async def _protocol(monitor: MonitorClient, token: str, pid: Any) -> dict[str, Any] | None:
    if not pid:
        return None
    protocols = await monitor.get("/api/protocols", token)
    return next((p for p in protocols if p.get("id") == pid), None)


def _has_criteria(protocol: dict[str, Any]) -> bool:
    rules = protocol.get("discharge")
    return isinstance(rules, dict) and any(v is not None for v in rules.values())


def register(app: Dash, monitor: MonitorClient, who: Who) -> None:
    """The bed page's protocol callbacks; ``who`` finds the tab's login (token and role)."""

    @app.callback(
        Output("admit-protocol", "options"),
        Output("admit-protocol", "value"),
        Input("bed-ctx", "data"),
        State("auth", "data"),
    )
    async def admit_protocols(_ctx: Any, auth: Any) -> Any:
        session = await who(auth)
        if session is None:
            return no_update, no_update
        try:
            protocols = await monitor.get("/api/protocols", session.token)
        except MonitorError:
            return [], None
        options = [
            {"label": str(p.get("label") or p.get("id")), "value": p["id"]} for p in protocols
        ]
        default = next((p["id"] for p in protocols if p.get("default")), None)
        return options, default

    @app.callback(
        *[Output(part, "style") for part in PROTOCOL_PARTS],
        Output("protocol-title", "children"),
        Output("checklist-items", "children"),
        Output("dose-what", "children"),
        Output("dose-list", "children"),
        Output("protocol-data", "data"),
        Output("ev-infusion_start", "children"),
        Output("ev-infusion_stop", "children"),
        Input("bed-session", "data"),
        State("auth", "data"),
        State("tz", "data"),
        State("protocol-data", "data"),
    )
    async def render_protocol(bed_session: Any, auth: Any, tz: Any, before: Any) -> Any:
        keep = [no_update] * (len(PROTOCOL_PARTS) + 7)
        plain: list[Any] = [HIDDEN] * len(PROTOCOL_PARTS) + ["", [], "", [], None, *TIMER_WORDS]
        login = await who(auth)
        if login is None or not isinstance(bed_session, dict):
            return keep
        sid = bed_session.get("id")
        if not sid:
            return plain
        try:
            session = await monitor.get(f"/api/sessions/{sid}", login.token)
            protocol = await _protocol(monitor, login.token, session.get("protocol"))
        except MonitorError:
            return keep
        if protocol is None:
            return plain
        tz_min = tz_offset(tz)
        phase = str(session.get("phase"))
        is_open = phase != Phase.ENDED and not session.get("ended_at")
        charge = login.role in OVERRIDE_ROLES
        what, iv_style = protocol_panel.dose_fields(protocol)
        has_checklist = bool(session.get("checklist"))
        styles = {
            "protocol-panel": SHOWN,
            "checklist-section": SHOWN if has_checklist and phase == Phase.BASELINE else HIDDEN,
            "predose-section": SHOWN
            if phase == Phase.BASELINE and (protocol.get("predose_bp") or {}).get("required")
            else HIDDEN,
            # The record once dosing began; the form only while it runs (the monitor
            # refuses a dose at any other time).
            "dose-section": SHOWN if protocol.get("dosing") and phase != Phase.BASELINE else HIDDEN,
            "dose-form": SHOWN if phase == Phase.INFUSION else HIDDEN,
            "dose-iv-fields": iv_style,
            "dose-override-fields": SHOWN if charge else HIDDEN,
            "checkpoint-section": SHOWN if session.get("checkpoints") else HIDDEN,
            # Only where the protocol has criteria, once dosing began: before, "End
            # session" is the way out (nothing was given).
            "discharge-section": SHOWN
            if is_open and phase != Phase.BASELINE and _has_criteria(protocol)
            else HIDDEN,
            "discharge-override-fields": SHOWN if charge else HIDDEN,
        }
        # The bed page reloads on every session change (the feed says so): redraw the
        # checklist only when what it shows changed, or the nurse's typing is wiped.
        signature = [
            sid,
            phase,
            [[i.get("id"), i.get("value")] for i in session.get("checklist") or []],
        ]
        same = isinstance(before, dict) and before.get("signature") == signature
        data = {
            "signature": signature,
            "session": sid,
            "kinds": {str(i.get("id")): str(i.get("kind")) for i in session.get("checklist") or []},
            "labels": {
                str(i.get("id")): str(i.get("label")) for i in session.get("checklist") or []
            },
            "dosing": protocol.get("dosing"),
        }
        return [
            *[styles[part] for part in PROTOCOL_PARTS],
            f"Protocol: {protocol.get('label') or protocol.get('id')}",
            no_update if same else protocol_panel.checklist_items(session, tz_min),
            what,
            protocol_panel.dose_list(session, protocol, tz_min),
            data,
            # "Dosing starts" is infusion_start for every protocol (docs/protocols.md).
            words.PROTOCOL_EVENT_LABELS["infusion_start"],
            words.PROTOCOL_EVENT_LABELS["infusion_stop"],
        ]

    @app.callback(
        Output("checkpoint-list", "children"),
        Output("discharge-status", "children"),
        Input("protocol-tick", "n_intervals"),
        Input("bed-session", "data"),
        State("auth", "data"),
        State("tz", "data"),
    )
    async def checkpoints(_n: Any, bed_session: Any, auth: Any, tz: Any) -> Any:
        login = await who(auth)
        sid = bed_session.get("id") if isinstance(bed_session, dict) else None
        if login is None or not sid:
            return no_update, no_update
        try:
            session = await monitor.get(f"/api/sessions/{sid}", login.token)
            protocol = await _protocol(monitor, login.token, session.get("protocol"))
        except MonitorError:
            return no_update, no_update
        if protocol is None:
            return [], ""
        tz_min = tz_offset(tz)
        return (
            protocol_panel.checkpoint_items(session, protocol, time.time(), tz_min),
            protocol_panel.discharge_status(session, tz_min),
        )

    async def post_event(
        auth: Any, bed_session: Any, body: dict[str, Any], tz: Any, done: str, labels: Any = None
    ) -> tuple[Any, Any]:
        login = await who(auth)
        sid = _open_id(bed_session)
        if login is None or sid is None:
            return no_update, no_update
        try:
            await monitor.post(
                f"/api/sessions/{sid}/events",
                login.token,
                body,
                idempotency_key=event_key(bed_session, body),
            )
        except MonitorError as exc:
            return refusal(exc, tz, labels if isinstance(labels, dict) else None), time.time()
        return message(done), time.time()

    @app.callback(
        Output("protocol-message", "children", allow_duplicate=True),
        Output("bed-refresh", "data", allow_duplicate=True),
        Input("checklist-save", "n_clicks"),
        State({"type": "check-item", "item": ALL}, "value"),
        State({"type": "check-item", "item": ALL}, "id"),
        State("protocol-data", "data"),
        State("bed-session", "data"),
        State("auth", "data"),
        State("tz", "data"),
        prevent_initial_call=True,
    )
    async def save_checklist(
        n: Any, values: list[Any], ids: list[Any], pdata: Any, bed_session: Any, auth: Any, tz: Any
    ) -> Any:
        if not n or not isinstance(pdata, dict):
            return no_update, no_update
        entered = {
            str(i["item"]): v for i, v in zip(ids, values, strict=False) if isinstance(i, dict)
        }
        data, bad = protocol_panel.checklist_answers(
            pdata.get("kinds") or {}, entered, time.time(), tz_offset(tz)
        )
        labels = pdata.get("labels") or {}
        if bad:
            names = ", ".join(str(labels.get(b, "an item")) for b in bad)
            return message(f"Cannot read: {names} (times as HH:MM).", error=True), no_update
        if not data:
            return message("Nothing to save: fill in at least one item.", error=True), no_update
        return await post_event(
            auth, bed_session, {"type": "checklist", "data": data}, tz, "Checklist saved."
        )

    @app.callback(
        Output("protocol-message", "children", allow_duplicate=True),
        Output("bed-refresh", "data", allow_duplicate=True),
        Input("predose-submit", "n_clicks"),
        State("predose-prescriber", "value"),
        State("predose-reason", "value"),
        State("protocol-data", "data"),
        State("bed-session", "data"),
        State("auth", "data"),
        State("tz", "data"),
        prevent_initial_call=True,
    )
    async def predose_override(
        n: Any, prescriber: Any, reason: Any, pdata: Any, bed_session: Any, auth: Any, tz: Any
    ) -> Any:
        if not n:
            return no_update, no_update
        if not str(prescriber or "").strip() or not str(reason or "").strip():
            return message("Give the prescriber's name and the reason.", error=True), no_update
        body = {
            "type": "infusion_start",
            "data": {"prescriber": str(prescriber).strip(), "reason": str(reason).strip()},
        }
        labels = (pdata or {}).get("labels") if isinstance(pdata, dict) else None
        return await post_event(auth, bed_session, body, tz, "Dosing started.", labels)

    @app.callback(
        Output("protocol-message", "children", allow_duplicate=True),
        Output("bed-refresh", "data", allow_duplicate=True),
        Output("dose-lot", "value"),
        Output("dose-override", "value"),
        Input("dose-submit", "n_clicks"),
        State("dose-mgkg", "value"),
        State("dose-total", "value"),
        State("dose-conc", "value"),
        State("dose-rate", "value"),
        State("dose-lot", "value"),
        State("dose-override", "value"),
        State("protocol-data", "data"),
        State("bed-session", "data"),
        State("auth", "data"),
        State("tz", "data"),
        prevent_initial_call=True,
    )
    async def record_dose(
        n: Any,
        mg_per_kg: Any,
        total: Any,
        conc: Any,
        rate: Any,
        lot: Any,
        override: Any,
        pdata: Any,
        bed_session: Any,
        auth: Any,
        tz: Any,
    ) -> Any:
        if not n or not isinstance(pdata, dict) or not isinstance(pdata.get("dosing"), dict):
            return no_update, no_update, no_update, no_update
        dosing = pdata["dosing"]
        data: dict[str, Any] = {"drug": dosing.get("drug"), "route": dosing.get("route")}
        if dosing.get("route") != Route.INTRANASAL:
            for key, value in (("mg_per_kg", mg_per_kg), ("total_mg", total)):
                if isinstance(value, int | float):
                    data[key] = float(value)
            if isinstance(conc, int | float):
                data["concentration_mg_ml"] = float(conc)
            if str(rate or "").strip():
                data["rate"] = str(rate).strip()
            if "mg_per_kg" not in data and "total_mg" not in data:
                msg = message("Enter the dose in mg/kg or the total in mg.", error=True)
                return msg, no_update, no_update, no_update
        if str(lot or "").strip():
            data["lot"] = str(lot).strip()
        if str(override or "").strip():
            data["override_reason"] = str(override).strip()
        msg, refresh = await post_event(
            auth, bed_session, {"type": "dose", "data": data}, tz, "Dose recorded."
        )
        failed = getattr(msg, "className", "") == "error"
        # The lot stays for the next device of the same pack; the override was for one dose.
        return msg, refresh, no_update, no_update if failed else ""

    @app.callback(
        Output("protocol-message", "children", allow_duplicate=True),
        Output("bed-refresh", "data", allow_duplicate=True),
        Input("discharge-request", "n_clicks"),
        State("bed-session", "data"),
        State("auth", "data"),
        State("tz", "data"),
        prevent_initial_call=True,
    )
    async def ask_discharge(n: Any, bed_session: Any, auth: Any, tz: Any) -> Any:
        if not n:
            return no_update, no_update
        return await post_event(
            auth,
            bed_session,
            {"type": "discharge_request"},
            tz,
            "Discharge asked for: take the pre-discharge checks.",
        )

    @app.callback(
        Output("protocol-message", "children", allow_duplicate=True),
        Output("bed-refresh", "data", allow_duplicate=True),
        Input("discharge-submit", "n_clicks"),
        State("discharge-reason", "value"),
        State("bed-session", "data"),
        State("auth", "data"),
        State("tz", "data"),
        prevent_initial_call=True,
    )
    async def discharge(n: Any, reason: Any, bed_session: Any, auth: Any, tz: Any) -> Any:
        if not n:
            return no_update, no_update
        body: dict[str, Any] = {"type": "end"}
        if str(reason or "").strip():
            body["data"] = {"override_reason": str(reason).strip()}
        return await post_event(auth, bed_session, body, tz, "Discharged: the session has ended.")

    @app.callback(
        Output("limits-message", "children"),
        Output("bed-refresh", "data", allow_duplicate=True),
        Output("limits-reason", "value"),
        Input("limits-save", "n_clicks"),
        State({"type": "limit", "path": ALL}, "value"),
        State({"type": "limit", "path": ALL}, "id"),
        State("limits-reason", "value"),
        State("bed-session", "data"),
        State("auth", "data"),
        State("tz", "data"),
        prevent_initial_call=True,
    )
    async def save_limits(
        n: int | None,
        values: list[Any],
        ids: list[Any],
        reason: Any,
        bed_session: Any,
        auth: Any,
        tz: Any,
    ) -> Any:
        login = await who(auth)
        sid = _open_id(bed_session)
        if not n or login is None or sid is None:
            return no_update, no_update, no_update
        shown = dict(layout.flatten_limits(layout.limits_subtree(bed_session.get("limits"))))
        edits: dict[str, float] = {}
        for value, ident in zip(values, ids, strict=False):
            if not isinstance(ident, dict) or not isinstance(value, int | float):
                continue
            path = str(ident["path"])
            if shown.get(path) != float(value):
                edits[path] = float(value)
        if not edits:
            return message("No limit changed."), no_update, no_update
        if not str(reason or "").strip():
            return message("Give a reason for the change.", error=True), no_update, no_update
        # PUT replaces the session's overrides: keep the ones already in force.
        doc = bed_session.get("limits")
        existing = doc.get("overrides") if isinstance(doc, dict) else None
        body = {
            "overrides": layout.merge_nested(existing or {}, layout.nest_paths(edits)),
            "reason": str(reason).strip(),
        }
        try:
            await monitor.put(f"/api/sessions/{sid}/limits", login.token, body)
        except MonitorError as exc:
            return refusal(exc, tz), no_update, no_update
        return message("Limits saved."), time.time(), ""
