"""Driving a session's phases through the monitor's HTTP API, as a nurse would.

``session_script`` (pure) lists what the nurse records over session time; ``Nurse``
performs it with httpx: log in, admit the patient (POST /api/sessions), then post events
(POST /api/sessions/{id}/events) stamped with the device time they belong to.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import httpx

from monitor.model import to_rfc3339
from simulators.physiology import MINUTE
from simulators.scenarios import Plan

log = logging.getLogger("simulators.nurse")


@dataclass(frozen=True, slots=True)
class NurseAction:
    s: float  # session seconds
    type: str  # "admit" or a session event type
    data: dict[str, Any] = field(default_factory=dict)


def session_script(plan: Plan) -> list[NurseAction]:
    """What the nurse records over one session, in session time order."""
    tl, p = plan.timeline, plan.patient
    acts = [
        NurseAction(0.0, "admit"),
        NurseAction(tl.infusion_start, "infusion_start"),
    ]
    # Sedation checks: strong dissociators respond less readily (MOAA/S 5 -> 3).
    moaas = 5 - round(2 * p.dissociation)
    for m in (10, 20, 30):
        if m * MINUTE < tl.infusion_s:
            acts.append(
                NurseAction(tl.infusion_start + m * MINUTE, "observation", {"moaas": moaas})
            )
    if plan.story_start is not None and plan.scenario in _STORY_NOTES:
        acts.append(
            NurseAction(plan.story_start + 2 * MINUTE, "observation", _STORY_NOTES[plan.scenario])
        )
    acts.append(NurseAction(tl.infusion_end, "infusion_stop"))
    acts.append(
        NurseAction(tl.infusion_end + 60.0, "observation", {"cadss6": round(12 * p.dissociation)})
    )
    acts.append(NurseAction(tl.end, "end"))
    acts.sort(key=lambda a: a.s)
    return acts


_STORY_NOTES: dict[str, dict[str, Any]] = {
    "hypertensive_surge": {"side_effect": "hypertension"},
    "sustained_tachycardia": {"side_effect": "tachycardia"},
    "desaturation": {"note": "verbal stimulation, chin lift"},
    "bradycardia": {"note": "patient drowsy, rechecked pulse"},
    "probe_off_storm": {"note": "oximeter probe repositioned"},
    "stale_cuff": {"note": "cuff tubing found disconnected"},
}


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

    async def admit(
        self, bed: str, label: str, age: int, baseline: dict[str, float] | None = None
    ) -> str | None:
        body: dict[str, Any] = {"bed": bed, "patient_label": label, "age": age}
        if baseline:
            body["baseline"] = baseline
        r = await self._call("POST", "/api/sessions", json=body)
        if r.status_code == 409:
            # A session left open by an earlier run: close it, then admit.
            await self.end_open_sessions(bed)
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
        if r.status_code >= 300:
            log.warning(
                "event %s on session %s: HTTP %s %s", kind, session_id, r.status_code, r.text[:200]
            )
            return False
        return True
