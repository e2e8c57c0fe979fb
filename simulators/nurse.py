"""Driving a session's phases through the monitor's HTTP API, as a nurse would.

``session_script`` (pure) lists what the nurse records over session time; ``Nurse``
performs it with httpx: log in, admit the patient (POST /api/sessions), then post events
(POST /api/sessions/{id}/events) stamped with the device time they belong to.

With a protocol (docs/protocols.md) the nurse also fills its checklist after admission,
records the MOAA/S and CADSS its checkpoints ask for, and a MOAA/S 5 before discharge; a
high pre-dose BP goes ahead on a (simulated) prescriber's decision, and a discharge the
vitals still block is overridden with a reason (the demo's driver is a charge nurse).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from monitor.core.model import to_rfc3339
from simulators.physiology import MINUTE
from simulators.scenarios import Plan

log = logging.getLogger("simulators.nurse")


@dataclass(frozen=True, slots=True)
class NurseAction:
    s: float  # session seconds
    type: str  # "admit" or a session event type
    data: dict[str, Any] = field(default_factory=dict)


def session_script(plan: Plan, protocol: dict[str, Any] | None = None) -> list[NurseAction]:
    """What the nurse records over one session, in session time order; ``protocol`` as
    GET /api/protocols gives it."""
    tl, p = plan.timeline, plan.patient
    acts = [
        NurseAction(0.0, "admit"),
        NurseAction(tl.infusion_start, "infusion_start"),
    ]
    if protocol is not None:
        acts += _protocol_actions(plan, protocol)
    # Sedation checks: strong dissociators respond less readily (MOAA/S 5 -> 3).
    moaas = 5 - round(2 * p.dissociation)
    for m in (10, 20, 30):
        if m * MINUTE < tl.infusion_s:
            acts.append(
                NurseAction(tl.infusion_start + m * MINUTE, "observation", {"moaas": moaas})
            )
    if plan.story_start is not None and plan.scenario in _STORY_NOTES:
        after = _STORY_NOTE_AFTER_S.get(plan.scenario, 2 * MINUTE)
        acts.append(
            NurseAction(plan.story_start + after, "observation", _STORY_NOTES[plan.scenario])
        )
    acts.append(NurseAction(tl.infusion_end, "infusion_stop"))
    acts.append(
        NurseAction(tl.infusion_end + 60.0, "observation", {"cadss6": round(12 * p.dissociation)})
    )
    acts.append(NurseAction(tl.end, "end"))
    acts.sort(key=lambda a: a.s)
    return acts


def _protocol_actions(plan: Plan, protocol: dict[str, Any]) -> list[NurseAction]:
    tl, p = plan.timeline, plan.patient
    acts = []
    if protocol.get("checklist"):
        acts.append(NurseAction(10.0, "checklist"))  # data filled in by Nurse.checklist_data
    dosing = protocol.get("dosing") or {}
    if dosing.get("route") == "iv":
        acts.append(NurseAction(tl.infusion_start + 1.0, "dose", {"mg_per_kg": 0.5}))
    elif dosing.get("route") == "intranasal":
        # 56 mg: two devices, the protocol's rest apart (docs/protocols.md "Doses").
        rest = (dosing.get("device_interval_min") or 0) * MINUTE
        for k in range(2):
            s = tl.infusion_start + 30.0 + k * (rest + 30.0)
            if s < tl.infusion_end:
                acts.append(NurseAction(s, "dose", {"lot": f"SIM-{p.seed % 1000:03d}"}))
    anchors = {"infusion_start": tl.infusion_start, "infusion_stop": tl.infusion_end}
    for cp in protocol.get("checkpoints", []):
        base = anchors.get(cp["anchor"])
        if base is None or cp["kind"] not in ("moaas", "cadss") or cp.get("every_min"):
            continue
        s = base + cp["offset_min"] * MINUTE
        if not s < tl.end - 60.0:
            continue
        if cp["kind"] == "moaas":
            data = {"moaas": 5 if s >= tl.infusion_end else 5 - round(2 * p.dissociation)}
        else:
            data = {"cadss6": round(12 * p.dissociation)}
        acts.append(NurseAction(s, "observation", data))
    if (protocol.get("discharge") or {}).get("moaas") is not None:
        acts.append(NurseAction(tl.end - 60.0, "observation", {"moaas": 5}))
    return acts


def checklist_data(protocol: dict[str, Any], at: float, weight_kg: float) -> dict[str, Any]:
    """The simulated patient's answers to a protocol's checklist."""
    out: dict[str, Any] = {}
    for item in protocol.get("checklist", []):
        kind = item["kind"]
        if kind == "confirm":
            out[item["id"]] = True
        elif kind == "number":
            out[item["id"]] = round(weight_kg, 1)
        elif kind == "time":
            out[item["id"]] = to_rfc3339(at - 4 * 3600.0)
        else:
            out[item["id"]] = "no"
    return out


_STORY_NOTES: dict[str, dict[str, Any]] = {
    "hypertensive_surge": {"side_effect": "hypertension"},
    "sustained_tachycardia": {"side_effect": "tachycardia"},
    "desaturation": {"note": "verbal stimulation, chin lift"},
    "bradycardia": {"note": "patient drowsy, rechecked pulse"},
    "probe_off_storm": {"note": "oximeter probe repositioned"},
    "stale_cuff": {"note": "cuff tubing found disconnected"},
}

# The note comes as the nurse responds, 2 min into the story; a desaturation's SpO2 alarm
# comes about 2.5 min in (SpO2 follows the slowing breathing), so its note comes after that.
_STORY_NOTE_AFTER_S: dict[str, float] = {"desaturation": 4 * MINUTE}


class Nurse:
    """A logged-in user of the monitor's HTTP API (credentials from options or env)."""

    def __init__(self, api_url: str, username: str, password: str, timeout: float = 10.0) -> None:
        self.api_url = api_url.rstrip("/")
        self.username = username
        self.password = password
        self._http = httpx.AsyncClient(base_url=self.api_url, timeout=timeout, trust_env=False)
        self._token: str | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def login(self) -> None:
        r = await self._http.post(
            "/api/auth/token", data={"username": self.username, "password": self.password}
        )
        r.raise_for_status()
        self._token = r.json()["access_token"]

    async def _call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        if self._token is None:
            await self.login()
        for attempt in range(2):
            r = await self._http.request(
                method, path, headers={"Authorization": f"Bearer {self._token}"}, **kw
            )
            if r.status_code == 401 and attempt == 0:
                await self.login()  # token expired: log in again once
                continue
            return r
        return r

    async def end_open_sessions(self, bed: str, at: float | None = None) -> None:
        r = await self._call("GET", "/api/sessions", params={"bed": bed, "open": "true"})
        if r.status_code != 200:
            return
        for sess in r.json().get("sessions", []):
            await self.event(sess["id"], "end", at)

    async def protocols(self) -> dict[str, dict[str, Any]]:
        """The clinic's protocols by id (GET /api/protocols)."""
        r = await self._call("GET", "/api/protocols")
        r.raise_for_status()
        return {p["id"]: p for p in r.json()}

    async def admit(
        self,
        bed: str,
        label: str,
        age: int,
        baseline: dict[str, float] | None = None,
        protocol: str | None = None,
        at: float | None = None,
        patient_id: str | None = None,
    ) -> str | None:
        body: dict[str, Any] = {"bed": bed, "patient_label": label, "age": age}
        if patient_id:
            body["patient_id"] = patient_id  # the course is the patient's (docs/course.md)
        if at is not None:
            # Admitted at the device time the session began, so that its readings (sent in
            # device time) fall in its span, as the pre-dose BP gate needs.
            body["at"] = to_rfc3339(at)
        if baseline:
            body["baseline"] = baseline
        if protocol:
            body["protocol"] = protocol
        r = await self._call("POST", "/api/sessions", json=body)
        if r.status_code == 409:
            # A session left open by an earlier run: close it, then admit.
            await self.end_open_sessions(bed)
            r = await self._call("POST", "/api/sessions", json=body)
        if r.status_code in (409, 422) and "at" in body:
            body.pop("at")  # not before the bed's previous session: admit as of now
            r = await self._call("POST", "/api/sessions", json=body)
        if r.status_code not in (200, 201):
            log.warning("admit on %s failed: HTTP %s %s", bed, r.status_code, r.text[:200])
            return None
        return str(r.json()["id"])

    async def event(
        self, session_id: str, kind: str, at: float | None, data: dict[str, Any] | None = None
    ) -> bool:
        body: dict[str, Any] = {"type": kind}
        if at is not None:
            body["at"] = to_rfc3339(at)
        if data:
            body["data"] = data
        r = await self._call("POST", f"/api/sessions/{session_id}/events", json=body)
        if r.status_code in (400, 422) and at is not None:
            # The monitor would not take the back-dated time: record it as of now instead.
            body.pop("at")
            r = await self._call("POST", f"/api/sessions/{session_id}/events", json=body)
        for _ in range(10):
            if _refusal_code(r) != "predose_bp_missing":
                break
            # The pre-dose cuff reading may still be on its way (store-and-forward).
            await asyncio.sleep(0.5)
            r = await self._call("POST", f"/api/sessions/{session_id}/events", json=body)
        decision = _DECISIONS.get(_refusal_code(r) or "")
        if decision is not None:
            # What a prescriber or a charge nurse decides in the demo, with its reason (audited).
            log.info("session %s: %s refused (%s); %s", session_id, kind, r.text[:200], decision)
            body["data"] = {**(data or {}), **decision}
            r = await self._call("POST", f"/api/sessions/{session_id}/events", json=body)
        if r.status_code >= 300:
            log.warning(
                "event %s on session %s: HTTP %s %s", kind, session_id, r.status_code, r.text[:200]
            )
            return False
        return True


_DECISIONS: dict[str, dict[str, str]] = {
    "predose_bp_high": {
        "prescriber": "Dr Demo (simulated)",
        "reason": "simulated prescriber decision: benefit outweighs the risk",
    },
    "discharge_blocked": {
        "override_reason": "simulated charge nurse decision: released to the escort",
    },
}


def _refusal_code(r: httpx.Response) -> str | None:
    if r.status_code != 409:
        return None
    try:
        detail = r.json().get("detail")
    except ValueError:
        return None
    return detail.get("code") if isinstance(detail, dict) else None
