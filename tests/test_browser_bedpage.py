"""The bed page runs a whole protocol session in headless Chromium, against the real monitor
with a clinic config whose esketamine checks come within seconds (docs/protocols.md), in
plain words (docs/panel.md) and without serious accessibility violations (axe-core)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser_support import (  # noqa: F401  (fixtures used by name)
    ISO_TIME,
    NURSE,
    PanelProcess,
    SyncDevice,
    axe_serious,
    browser_fixture,
    page_fixture,
    running_panel,
    unique,
    wait_attr,
    wait_feed_up,
    wait_text,
)
from tests.browser_support import login as panel_login
from tests.conftest import MonitorProcess, _start, clinic_config
from tests.polling import poll

pytestmark = pytest.mark.browser

CHARGE = ("bp-charge", "charge-password-1")
# The shipped esketamine protocol with its clock shortened: the MOAA/S check overdue 6 s
# after dosing starts, the 40-minute BP window from 12 s to 36 s, discharge after 33 s.
QUICK_CHECKS = [
    {"id": "bp-40", "kind": "bp", "anchor": "infusion_start", "offset_min": 0.4, "window_min": 0.2},
    {"id": "moaas-40", "kind": "moaas", "anchor": "infusion_start", "offset_min": 0.05,
     "window_min": 0.05},
    {"id": "cadss-40", "kind": "cadss", "anchor": "infusion_start", "offset_min": 30,
     "window_min": 10},
    {"id": "bp-discharge", "kind": "bp", "anchor": "discharge_request", "offset_min": 0,
     "window_min": 1},
]  # fmt: skip
RAW_KEY = re.compile(
    r"\b(?:spo2|hr|rr|sbp|dbp|map)\.(?:low|high)\b|\b[a-z0-9]+_[a-z0-9_]+\b|\b\d+\.0\b"
)


def _quick_esketamine(data: dict[str, Any]) -> None:
    esk = data["protocols"]["esketamine"]
    esk["checkpoints"] = QUICK_CHECKS
    esk["discharge"]["after"] = {"anchor": "infusion_start", "min": 0.55}


@pytest.fixture(scope="module")
def quick_monitor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MonitorProcess]:
    """The real monitor on SQLite with the quick esketamine protocol."""
    tmp = tmp_path_factory.mktemp("bedpage")
    path = clinic_config(tmp, _quick_esketamine)
    proc = _start(f"sqlite:///{tmp / 'vigil.db'}", tmp, extra_args=["--config", str(path)])
    proc.add_user(NURSE[0], "nurse", NURSE[1])
    proc.add_user(CHARGE[0], "charge", CHARGE[1])
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module", name="panel")
def quick_panel(
    quick_monitor: MonitorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PanelProcess]:
    with running_panel(quick_monitor, tmp_path_factory) as proc:
        yield proc


@pytest.fixture
def device(quick_monitor: MonitorProcess) -> Iterator[SyncDevice]:
    """A real device on its own bed."""
    dev, bed = unique("dev"), unique("bed")
    d = SyncDevice(quick_monitor.ws_url, dev, quick_monitor.add_device(dev, bed))
    d.bed = bed  # type: ignore[attr-defined]
    try:
        yield d
    finally:
        d.close()


def plain_words_problems(page: Any) -> list[str]:
    """Raw config keys, snake_case codes, ISO stamps and "68.0" floats in the visible text."""
    text = page.inner_text("#page")
    return ISO_TIME.findall(text) + RAW_KEY.findall(text)


def _checkpoint_alarms(srv: MonitorProcess, bed: str) -> list[dict[str, Any]]:
    return [a for a in srv.get("/api/alarms", bed=bed, active="true")["alarms"] if a["signal"] == "checkpoint"]  # fmt: skip


def test_a_whole_esketamine_session_runs_from_the_bed_page(
    quick_monitor: MonitorProcess, panel: PanelProcess, page: Any, device: SyncDevice
) -> None:
    """docs/protocols.md: admit, checklist, pre-dose BP, first device, the 40-minute BP from
    the cuff, an overdue MOAA/S alarm, a refused then granted discharge, from the panel alone,
    each refusal in words on screen; docs/panel.md: plain words and no serious axe finding."""
    srv, bed = quick_monitor, device.bed  # type: ignore[attr-defined]
    panel_login(page, panel.url)
    page.goto(f"{panel.url}/bed/{bed}")
    wait_feed_up(page)

    # Admission with the protocol chosen.
    page.wait_for_selector("#admit-form", state="visible")
    page.wait_for_selector("#admit-protocol input")
    assert not plain_words_problems(page), plain_words_problems(page)
    page.fill("#admit-label", "EK-0001")
    page.fill("#admit-baseline-hr", "68")
    page.fill("#admit-baseline-sbp", "118")
    page.get_by_label("Intranasal esketamine (REMS)").check()
    page.click("#admit-submit")
    page.wait_for_selector("#checklist-section", state="visible")
    session = srv.get("/api/sessions", bed=bed, open="true")["sessions"][0]
    sid = session["id"]
    assert session["protocol"] == "esketamine"
    info = page.inner_text("#session-info")
    assert "Baseline: Heart rate 68 /min, Systolic BP 118 mmHg" in info
    assert re.search(r"Admitted \d{2}:\d{2}\b", info), info
    assert wait_text(page, "#protocol-title", "Intranasal esketamine")

    # Dosing refused until the checklist is done, then until a cuff BP is taken.
    wait_text(page, "#ev-infusion_start", "Start dosing")
    page.click("#ev-infusion_start")
    msg = wait_text(page, "#session-message", "checklist is not complete")
    assert "8 items still to do" in msg
    page.check("#check-consent input[type=checkbox]")
    page.check("#check-escort input[type=checkbox]")
    page.fill("#check-last_food input", "07:30")
    page.fill("#check-last_liquids input", "09:15")
    for item in ("benzodiazepines", "sedative_hypnotics", "psychostimulants", "maois"):
        page.fill(f"#check-{item} input", "no")
    page.click("#checklist-save")
    wait_text(page, "#protocol-message", "Checklist saved.")
    wait_attr(page, "#check-maois", "data-done", "true")
    checklist = {i["id"]: i for i in srv.get(f"/api/sessions/{sid}")["checklist"]}
    assert all(i["done"] for i in checklist.values()), checklist
    assert checklist["consent"]["value"] is True and checklist["maois"]["value"] == "no"
    assert re.match(r"\d{4}-\d{2}-\d{2}T", checklist["last_food"]["value"])
    assert wait_text(page, "#check-last_food", "done")
    page.click("#ev-infusion_start")
    wait_text(page, "#session-message", "take a cuff blood pressure first")
    assert srv.get(f"/api/sessions/{sid}")["phase"] == "baseline"

    # The pre-dose BP from the cuff, then the first device.
    assert device.send({"sbp": 128, "dbp": 82, "map": 97}, source="nibp")["type"] == "ack"
    page.click("#ev-infusion_start")
    page.wait_for_selector("#ev-infusion_stop", state="visible")
    page.wait_for_selector("#dose-section", state="visible")
    assert not page.is_visible("#dose-override-fields"), "a nurse is offered no override"
    page.fill("#dose-lot", "LOT-77")
    page.click("#dose-submit")
    wait_text(page, "#protocol-message", "Dose recorded.")
    first = wait_text(page, "#dose-list", "device 1")
    assert "esketamine, intranasal, device 1 (28 mg), 28 mg in all, lot LOT-77" in first
    assert re.search(r"Next device not before \d{2}:\d{2}", first), first
    page.click("#dose-submit")
    refused = wait_text(page, "#protocol-message", "Too soon for the next device")
    assert re.search(r"wait until \d{2}:\d{2}\.", refused), refused
    doses = [e for e in srv.get(f"/api/sessions/{sid}")["events"] if e["type"] == "dose"]
    assert [(d["data"]["device"], d["data"]["lot"]) for d in doses] == [(1, "LOT-77")]
    page.click("#ev-infusion_stop")
    page.wait_for_selector("#discharge-section", state="visible")

    # The MOAA/S check goes overdue: the monitor alarms and the page says so.
    wait_attr(page, "#checkpoint-moaas-40", "data-status", "overdue")
    assert "alarm raised" in page.inner_text("#checkpoint-moaas-40")
    alarm = poll(lambda: _checkpoint_alarms(srv, bed))[0]
    assert alarm["priority"] == "low" and alarm["kind"] == "technical"
    wait_text(page, "#alarm-list", bed)
    assert not plain_words_problems(page), plain_words_problems(page)
    problems = axe_serious(page)
    assert not problems, "\n".join(problems)

    # Discharge refused, with what blocks it in words.
    page.click("#discharge-submit")
    why = wait_text(page, "#protocol-message", "cannot be discharged yet")
    assert "no MOAA/S score since dosing" in why and "too soon after dosing" in why
    assert srv.get(f"/api/sessions/{sid}")["phase"] == "recovery"

    # The 40-minute BP is taken by the cuff itself once its window opens.
    wait_attr(page, "#checkpoint-bp-40", "data-status", "due", timeout_ms=40_000)
    assert device.send({"sbp": 122, "dbp": 78, "map": 93}, source="nibp")["type"] == "ack"
    wait_attr(page, "#checkpoint-bp-40", "data-status", "done", timeout_ms=15_000)
    assert re.search(r"cuff 122/78 mmHg at \d{2}:\d{2}", page.inner_text("#checkpoint-bp-40"))
    bp40 = next(c for c in srv.get(f"/api/sessions/{sid}")["checkpoints"] if c["id"] == "bp-40")
    assert bp40["satisfied_by"]["values"]["sbp"] == 122

    # MOAA/S 5 ends the alarm; HR and SpO2 in range; the nurse asks to discharge.
    page.click("#obs-moaas")
    page.get_by_text("5 \u2013 responds readily to name").last.click()
    page.click("#obs-submit")
    wait_text(page, "#session-message", "Observation recorded.")
    wait_attr(page, "#checkpoint-moaas-40", "data-status", "done", timeout_ms=15_000)
    poll(lambda: not _checkpoint_alarms(srv, bed))
    for _ in range(3):
        assert device.send({"hr": 72, "spo2": 98})["type"] == "ack"
    page.click("#discharge-request")
    wait_text(page, "#protocol-message", "Discharge asked for")
    wait_attr(page, "#discharge-status > div", "data-eligible", "true", timeout_ms=60_000)
    assert not plain_words_problems(page), plain_words_problems(page)
    page.click("#discharge-submit")
    page.wait_for_selector("#admit-form", state="visible")
    ended = srv.get(f"/api/sessions/{sid}")
    assert ended["phase"] == "ended"
    end = next(e for e in ended["events"] if e["type"] == "end")
    assert not (end.get("data") or {}).get("override_reason")
    assert [e["type"] for e in ended["events"] if e["type"] != "observation"] == [
        "checklist",
        "infusion_start",
        "dose",
        "infusion_stop",
        "discharge_request",
        "end",
    ]


def test_a_charge_nurse_discharges_over_the_criteria_with_a_reason(
    quick_monitor: MonitorProcess, panel: PanelProcess, page: Any, device: SyncDevice
) -> None:
    """docs/protocols.md: a blocked discharge ends only by a charge nurse's override with a
    reason, which the audit log keeps."""
    srv, bed = quick_monitor, device.bed  # type: ignore[attr-defined]
    sid = srv.post(
        "/api/sessions", {"bed": bed, "patient_label": "EK-0002", "protocol": "esketamine"}
    ).json()["id"]
    answers = {i["id"]: True if i["kind"] == "confirm" else "no" for i in srv.get(f"/api/sessions/{sid}")["checklist"]}  # fmt: skip
    answers.update(last_food="2026-01-01T06:00:00Z", last_liquids="2026-01-01T07:00:00Z")
    assert srv.post(
        f"/api/sessions/{sid}/events", {"type": "checklist", "data": answers}
    ).is_success
    device.send({"sbp": 120, "dbp": 75, "map": 90}, source="nibp")
    assert srv.post(f"/api/sessions/{sid}/events", {"type": "infusion_start"}).is_success
    assert srv.post(f"/api/sessions/{sid}/events", {"type": "infusion_stop"}).is_success

    panel_login(page, panel.url, *CHARGE)
    page.goto(f"{panel.url}/bed/{bed}")
    page.wait_for_selector("#discharge-override-fields", state="visible")
    page.click("#discharge-submit")
    wait_text(page, "#protocol-message", "cannot be discharged yet")
    page.fill("#discharge-reason", "transferred to the emergency department")
    page.click("#discharge-submit")
    page.wait_for_selector("#admit-form", state="visible")
    assert srv.get(f"/api/sessions/{sid}")["phase"] == "ended"
    entries = srv.get("/api/audit", session=sid)["entries"]
    override = [e for e in entries if e["action"] == "discharge_override"]
    assert override and override[0]["detail"]["reason"] == "transferred to the emergency department"
    assert override[0]["actor"] == CHARGE[0]


def test_dosing_over_a_high_predose_bp_takes_the_prescribers_decision_then_an_iv_dose(
    quick_monitor: MonitorProcess, panel: PanelProcess, page: Any, device: SyncDevice
) -> None:
    """docs/protocols.md: a pre-dose BP at or above the threshold refuses dosing, in words,
    until a prescriber and a reason are given (audited); the IV dose in mg/kg gets its total
    from the checklist's weight."""
    srv, bed = quick_monitor, device.bed  # type: ignore[attr-defined]
    sid = srv.post(
        "/api/sessions", {"bed": bed, "patient_label": "IV-0003", "protocol": "iv-ketamine"}
    ).json()["id"]
    answers = {"consent": True, "escort": True, "weight_kg": 70, "medications": "none"}
    answers.update(last_solids="2026-01-01T06:00:00Z", last_liquids="2026-01-01T07:00:00Z")
    assert srv.post(
        f"/api/sessions/{sid}/events", {"type": "checklist", "data": answers}
    ).is_success
    device.send({"sbp": 152, "dbp": 96, "map": 115}, source="nibp")

    panel_login(page, panel.url)
    page.goto(f"{panel.url}/bed/{bed}")
    page.wait_for_selector("#predose-section", state="visible")
    page.click("#ev-infusion_start")
    wait_text(page, "#session-message", "at or above the protocol's threshold")
    page.click("#predose-submit")
    wait_text(page, "#protocol-message", "Give the prescriber's name and the reason.")
    page.fill("#predose-prescriber", "Dr Rivera")
    page.fill("#predose-reason", "chronic hypertension, treated; benefit outweighs risk")
    page.click("#predose-submit")
    page.wait_for_selector("#dose-iv-fields", state="visible")
    assert srv.get(f"/api/sessions/{sid}")["phase"] == "infusion"
    page.fill("#dose-mgkg", "0.5")
    page.fill("#dose-lot", "K-2231")
    page.click("#dose-submit")
    wait_text(page, "#dose-list", "0.5 mg/kg, 35 mg")
    dose = next(e for e in srv.get(f"/api/sessions/{sid}")["events"] if e["type"] == "dose")
    assert (dose["data"]["mg_per_kg"], dose["data"]["total_mg"]) == (0.5, 35)
    entries = srv.get("/api/audit", session=sid)["entries"]
    decided = [e for e in entries if e["action"] == "predose_bp_override"]
    assert decided and decided[0]["detail"]["prescriber"] == "Dr Rivera"
