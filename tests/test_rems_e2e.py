"""The esketamine REMS monitoring record through the real server on both engines
(docs/course.md "REMS record"): filled from a session recorded with the shipped protocol,
signed (incomplete only by charge with a reason, audited), marked filed, listed on the ward
until both, and printable."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest

from monitor.core.model import to_rfc3339
from tests import http_client
from tests.conftest import MonitorProcess
from tests.factories import REMS_CUFFS, REMS_EVENTS
from tests.inprocess import in_process_server  # noqa: F401  (the module's `server`)
from tests.wsclient import Device

PASSWORD = "correct horse battery"


def _as(server: MonitorProcess, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.login(name, PASSWORD)}"}


NURSE, CHARGE = "rn-rems", "rc-rems"


@pytest.fixture(scope="module")
def staff(server: MonitorProcess) -> tuple[dict[str, str], dict[str, str]]:
    """A nurse's and a charge nurse's headers, shared by the module's tests (each records a
    session of its own): argon2 hashing per test was most of a test's time."""
    server.add_user(NURSE, "nurse", PASSWORD)
    server.add_user(CHARGE, "charge", PASSWORD)
    return _as(server, NURSE), _as(server, CHARGE)


def _record_session(server: MonitorProcess, tag: str, *, skip_cuff: int | None = None) -> int:
    """The factory's complete esketamine session, dated so that it ended just now."""
    bed = f"r-{tag}"
    token = server.add_device(f"{bed}-mon", bed)
    opened = time.time() - 7_850
    r = server.post(
        "/api/sessions",
        {
            "bed": bed,
            "patient_label": "J.S.",
            "patient_id": f"MRN-{tag}",
            "protocol": "esketamine",
            "at": to_rfc3339(opened),
        },
    )
    assert r.status_code == 201, r.text
    sid = int(r.json()["id"])
    frames: list[tuple[float, dict[str, float], str | None]] = [
        (offset, {"sbp": sbp, "dbp": dbp}, "nibp")
        for i, (offset, sbp, dbp) in enumerate(REMS_CUFFS)
        if i != skip_cuff
    ]
    frames.append((7_650, {"hr": 72, "spo2": 97}, None))

    async def send(upto: float, after: float) -> None:
        due = [(i, f) for i, f in enumerate(frames) if after <= f[0] < upto]
        if not due:  # no reading measured since the last event: no connection to open
            return
        async with Device(server.ws_url, f"{bed}-mon", token) as dev:
            for i, (offset, values, source) in due:
                ack = await dev.reading(int(offset * 10) + i, values, opened + offset, source)
                assert ack.get("type") == "ack", ack

    sent = 0.0
    for kind, offset, data in sorted(REMS_EVENTS, key=lambda e: e[1]):
        asyncio.run(send(offset + 1, sent))  # the readings measured before this event
        sent = offset + 1
        body: dict[str, Any] = {"type": kind, "at": to_rfc3339(opened + offset)}
        if data is not None:
            body["data"] = data
        answer = server.post(f"/api/sessions/{sid}/events", body)
        assert answer.status_code == 200, (kind, answer.text)
    return sid


def test_a_recorded_esketamine_session_gives_a_complete_record_signed_and_filed(
    server: MonitorProcess, staff: tuple[dict[str, str], dict[str, str]]
) -> None:
    """Complete: nothing missing, the three BPs with their times; a nurse signs it, it stays
    on the ward list (unfiled, about 7 days left) until marked filed; neither happens twice."""
    tag = uuid.uuid4().hex[:8]
    nurse, _charge = staff
    sid = _record_session(server, tag)
    url = f"{server.base_url}/api/sessions/{sid}/rems"

    rec = http_client.get(url, headers=nurse).json()
    assert rec["missing"] == [] and rec["complete"] is True, rec["missing"]
    assert [rec["bp"][k]["sbp"] for k in ("predose", "at_40_min", "predischarge")] == [
        128,
        138,
        124,
    ]
    assert all(rec["bp"][k]["at"] for k in ("predose", "at_40_min", "predischarge"))
    assert rec["dose"]["category"] == "56" and rec["dose"]["lots"] == ["LOT-42A"]

    signed = http_client.post(f"{url}/sign", headers=nurse)
    assert signed.status_code == 200, signed.text
    assert signed.json()["signed"]["by"] == NURSE
    again = http_client.post(f"{url}/sign", headers=nurse)
    assert again.status_code == 409 and again.json()["detail"]["code"] == "rems_signed"

    listed = {r["session_id"]: r for r in server.get("/api/rems")["records"]}
    assert listed[sid]["filed"] is None and 6.9 < listed[sid]["days_left"] <= 7.0
    filed = http_client.post(f"{url}/filed", headers=nurse)
    assert filed.status_code == 200 and filed.json()["filed"]["by"] == NURSE
    twice = http_client.post(f"{url}/filed", headers=nurse)
    assert twice.status_code == 409 and twice.json()["detail"]["code"] == "rems_filed"
    assert sid not in {r["session_id"] for r in server.get("/api/rems")["records"]}


def test_an_incomplete_record_says_what_is_missing_and_only_charge_signs_it(
    server: MonitorProcess, staff: tuple[dict[str, str], dict[str, str]]
) -> None:
    """No 40-minute cuff BP: missing bp.40min; a nurse's signature is refused (409 without a
    reason, 403 with one), filing before signing is refused; a charge nurse signs with a
    reason, audited; the printable page marks it."""
    tag = uuid.uuid4().hex[:8]
    nurse, charge = staff
    sid = _record_session(server, tag, skip_cuff=1)
    url = f"{server.base_url}/api/sessions/{sid}/rems"
    rec = http_client.get(url, headers=nurse).json()
    assert rec["complete"] is False and rec["missing"] == ["bp.40min"]
    (in_course,) = server.get(f"/api/patients/MRN-{tag}")["sessions"]
    assert in_course["rems"]["missing"] == ["bp.40min"] and in_course["rems"]["signed"] is None
    assert sid in {r["session_id"] for r in server.get("/api/rems")["records"]}

    refused = http_client.post(f"{url}/sign", headers=nurse)
    assert refused.status_code == 409
    assert refused.json()["detail"]["code"] == "rems_incomplete"
    assert refused.json()["detail"]["missing"] == ["bp.40min"]
    reason = {"reason": "cuff failed at 40 min; manual BP 136/86 in the paper chart"}
    assert http_client.post(f"{url}/sign", headers=nurse, json=reason).status_code == 403
    early = http_client.post(f"{url}/filed", headers=nurse)
    assert early.status_code == 409 and early.json()["detail"]["code"] == "rems_not_signed"

    page = http_client.get(f"{url}.html", headers=nurse)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "MISSING" in page.text and "bp.40min" in page.text

    ok = http_client.post(f"{url}/sign", headers=charge, json=reason)
    assert ok.status_code == 200, ok.text
    assert ok.json()["signed"]["incomplete_reason"] == reason["reason"]
    entries = server.get("/api/audit", session=sid)["entries"]
    signs = [e for e in entries if e["action"] == "rems_sign_incomplete"]
    assert signs and signs[0]["detail"]["missing"] == ["bp.40min"]


def test_a_session_without_rems_has_a_record_that_is_not_required(
    server: MonitorProcess,
) -> None:
    """A basic session: required false, nothing missing, and it cannot be signed."""
    bed = f"rb-{uuid.uuid4().hex[:8]}"
    server.add_device(f"{bed}-mon", bed)
    sid = server.post("/api/sessions", {"bed": bed, "patient_label": "B"}).json()["id"]
    rec = server.get(f"/api/sessions/{sid}/rems")
    assert (rec["required"], rec["complete"], rec["missing"]) == (False, False, [])
    r = server.post(f"/api/sessions/{sid}/rems/sign")
    assert r.status_code == 409 and r.json()["detail"]["code"] == "rems_not_required"
    assert server.post("/api/sessions/999999/rems/sign").status_code == 404
