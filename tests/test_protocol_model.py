"""The pure protocol model (docs/protocols.md): checklist, gates, checkpoints, discharge.

Over 500 lines, one unit: one section per rule family of monitor/clinical/rules/, in the
order docs/protocols.md gives them, sharing the shipped protocols loaded once above.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alarms.config import load_config
from monitor.clinical import rules as pm
from monitor.core.model import AlarmState, Reading
from tests.factories import (
    FULL_CHECKLIST,
    IN_DOSING,
    T0,
    make_cuff,
    make_event,
    make_protocol,
    make_reading,
)
from tests.strategies import session_readings

MIN = 60.0
P = make_protocol()


def _dosed(at: float = T0 + 10 * MIN, *extra: pm.SessionEvent) -> list[pm.SessionEvent]:
    return [
        make_event("checklist", T0 + MIN, dict(FULL_CHECKLIST)),
        make_event("infusion_start", at),
        *extra,
    ]


def _cp(statuses: tuple[pm.CheckpointStatus, ...], occ: str) -> pm.CheckpointStatus:
    return next(c for c in statuses if c.id == occ)


# --- checklist ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "value", "ok"),
    [
        ("consent", True, True),
        ("consent", False, False),
        ("consent", "yes", False),
        ("consent", 1, False),
        ("medications", "none", True),
        ("medications", "   ", False),
        ("medications", 3, False),
        ("weight_kg", 72, True),
        ("weight_kg", 72.5, True),
        ("weight_kg", True, False),
        ("weight_kg", "72", False),
        ("weight_kg", float("inf"), False),
        ("last_food", "2026-09-21T06:00:00Z", True),
        ("last_food", "06:00", False),
        ("last_food", 1790000000, False),
        ("unknown", True, False),
    ],
)
def test_checklist_values_are_checked_by_kind(item: str, value: Any, ok: bool) -> None:
    """docs/protocols.md: confirm takes true, text a non-empty string, number a number, time
    an RFC 3339 time; anything else is refused."""
    if ok:
        assert pm.parse_checklist(P, {item: value}) == {item: value}
    else:
        with pytest.raises(pm.ChecklistError):
            pm.parse_checklist(P, {item: value})


def test_an_empty_checklist_event_is_refused() -> None:
    """docs/protocols.md: a checklist event names at least one item."""
    with pytest.raises(pm.ChecklistError):
        pm.parse_checklist(P, {})


def test_the_latest_checklist_value_of_an_item_wins_and_marks_it_done() -> None:
    """docs/protocols.md: an item's value is the latest given for it."""
    events = [
        make_event("checklist", T0, {"medications": "lorazepam"}),
        make_event("checklist", T0 + 5, {"medications": "none", "consent": True}),
    ]
    items = {i.id: i for i in pm.checklist(P, events)}
    assert items["medications"].value == "none" and items["medications"].done
    assert items["consent"].done and not items["escort"].done
    assert items["weight_kg"].value is None and not items["weight_kg"].done


# --- the pre-dose gate -------------------------------------------------------------------


def _gate(
    events: list[pm.SessionEvent], readings: list[Reading], data: dict[str, Any] | None = None
) -> pm.Refusal | None:
    return pm.infusion_start_refusal(P, events, readings, T0 + 10 * MIN, data)


FILLED = [make_event("checklist", T0, dict(FULL_CHECKLIST))]


def test_dosing_waits_for_every_checklist_item_first() -> None:
    """docs/protocols.md: checklist_incomplete names the missing items, before any BP check."""
    refusal = _gate([make_event("checklist", T0, {"consent": True})], [])
    assert refusal is not None and refusal.code is pm.Gate.CHECKLIST_INCOMPLETE
    assert refusal.detail["missing"] == ["escort", "weight_kg", "last_food", "medications"]


@pytest.mark.parametrize(
    ("readings", "code"),
    [
        ([], pm.Gate.PREDOSE_BP_MISSING),
        # a cuff BP measured after dosing is not a pre-dose BP
        ([make_cuff(120, 80, ts=T0 + 11 * MIN)], pm.Gate.PREDOSE_BP_MISSING),
        # values without the cuff's source are not a cuff BP
        (
            [make_reading({"sbp": 120, "dbp": 80}, ts=T0 + MIN, source="manual")],
            pm.Gate.PREDOSE_BP_MISSING,
        ),
        ([make_cuff(120, 80, ts=T0 + 5 * MIN)], None),
        ([make_cuff(140, 80, ts=T0 + 5 * MIN)], pm.Gate.PREDOSE_BP_HIGH),  # at the threshold
        ([make_cuff(130, 90, ts=T0 + 5 * MIN)], pm.Gate.PREDOSE_BP_HIGH),
        ([make_cuff(139, 89, ts=T0 + 5 * MIN)], None),
        # the last pre-dose BP decides, whatever order they arrived in
        ([make_cuff(120, 80, ts=T0 + 6 * MIN, seq=2), make_cuff(150, 95, ts=T0 + 5 * MIN)], None),
        (
            [make_cuff(120, 80, ts=T0 + 5 * MIN, seq=2), make_cuff(150, 95, ts=T0 + 6 * MIN)],
            pm.Gate.PREDOSE_BP_HIGH,
        ),
    ],
)
def test_the_pre_dose_bp_gate(readings: list[Reading], code: pm.Gate | None) -> None:
    """docs/protocols.md: a cuff BP at or before dosing is needed, and the last one must lie
    below both thresholds."""
    refusal = _gate(FILLED, readings)
    assert (refusal.code if refusal else None) is code


@pytest.mark.parametrize(
    ("data", "passes"),
    [
        ({"prescriber": "Dr Okafor", "reason": "chronic hypertension, treated"}, True),
        ({"prescriber": "Dr Okafor"}, False),
        ({"prescriber": "Dr Okafor", "reason": "  "}, False),
        ({"reason": "ok"}, False),
        (None, False),
    ],
)
def test_a_high_pre_dose_bp_passes_only_with_a_prescriber_and_a_reason(
    data: dict[str, Any] | None, passes: bool
) -> None:
    """docs/protocols.md: the prescriber weighs the risk; the decision needs a name and reason."""
    high = [make_cuff(150, 95, ts=T0 + 5 * MIN)]
    assert (_gate(FILLED, high, data) is None) is passes
    assert pm.predose_bp_overridden(P, high, T0 + 10 * MIN, data) is passes


def test_a_protocol_without_a_bp_gate_doses_once_the_checklist_is_done() -> None:
    """docs/protocols.md: the basic protocol gates nothing."""
    basic = load_config(None).protocols["basic"]
    assert pm.infusion_start_refusal(basic, [], [], T0, None) is None


# --- checkpoints -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now_min", "status"),
    [
        (15, pm.Status.UPCOMING),
        (18, pm.Status.DUE),
        (20, pm.Status.DUE),
        (22, pm.Status.DUE),
        (22.1, pm.Status.OVERDUE),
    ],
)
def test_a_checkpoint_is_upcoming_due_then_overdue_by_its_window(
    now_min: float, status: pm.Status
) -> None:
    """docs/protocols.md: due offset after its anchor, on time window either side."""
    # infusion_start at 10 min; bp-10 is due at 20 min, window 18..22
    cps = pm.checkpoints(P, T0, _dosed(), [], T0 + now_min * MIN)
    cp = _cp(cps, "bp-10")
    assert cp.status is status and cp.due_at == T0 + 20 * MIN


def test_a_checkpoint_waits_for_its_anchor() -> None:
    """docs/protocols.md: due_at is null until its anchor event happens."""
    cp = _cp(pm.checkpoints(P, T0, [], [], T0 + 600 * MIN), "bp-10")
    assert cp.status is pm.Status.UPCOMING and cp.due_at is None


@pytest.mark.parametrize(
    ("reading", "done", "late"),
    [
        (make_cuff(120, 80, ts=T0 + 19 * MIN), True, False),
        (make_cuff(120, 80, ts=T0 + 18 * MIN), True, False),  # the window's first instant
        (make_cuff(120, 80, ts=T0 + 17.9 * MIN), False, False),  # before the window
        (make_cuff(120, 80, ts=T0 + 25 * MIN), True, True),  # after it: done, late
        (make_reading({"hr": 80, "spo2": 97}, ts=T0 + 19 * MIN), False, False),
        (make_reading({"sbp": 120, "dbp": 80}, ts=T0 + 19 * MIN, source="manual"), False, False),
    ],
)
def test_a_bp_checkpoint_is_done_by_a_cuff_reading_in_its_window(
    reading: Reading, done: bool, late: bool
) -> None:
    """docs/protocols.md: a bp checkpoint is done by a cuff reading (source nibp) whose device
    ts falls in its window; one after the window does it late."""
    cp = _cp(pm.checkpoints(P, T0, _dosed(), [reading], T0 + 30 * MIN), "bp-10")
    assert (cp.status is pm.Status.DONE) is done
    assert cp.late is late
    if done:
        assert cp.done_at == reading.ts and cp.satisfied_by is not None
        assert (cp.satisfied_by.device_id, cp.satisfied_by.seq) == (reading.device_id, reading.seq)
    else:
        assert cp.status is pm.Status.OVERDUE and cp.satisfied_by is None


def test_a_moaas_checkpoint_is_done_by_the_observation() -> None:
    """docs/protocols.md: moaas and cadss checkpoints are done by the observation."""
    events = _dosed(
        T0 + 10 * MIN,
        make_event("infusion_stop", T0 + 40 * MIN),
        make_event("observation", T0 + 46 * MIN, {"moaas": 4}, event_id=9),
    )
    cp = _cp(pm.checkpoints(P, T0, events, [], T0 + 50 * MIN), "moaas-stop")
    assert cp.status is pm.Status.DONE and cp.done_at == T0 + 46 * MIN
    assert cp.satisfied_by is not None and cp.satisfied_by.event_id == 9
    assert dict(cp.satisfied_by.values) == {"moaas": 4}


def test_a_repeating_checkpoint_lists_the_occurrences_so_far_and_the_next() -> None:
    """docs/protocols.md: with every_min it repeats while its phase lasts."""
    events = _dosed(T0 + 10 * MIN)
    cps = [
        c for c in pm.checkpoints(P, T0, events, [], T0 + 20.5 * MIN) if c.checkpoint == "bp-rep"
    ]
    assert [(c.id, c.due_at) for c in cps] == [
        ("bp-rep.1", T0 + 15 * MIN),
        ("bp-rep.2", T0 + 20 * MIN),
        ("bp-rep.3", T0 + 25 * MIN),
    ]
    assert [c.status for c in cps] == [pm.Status.OVERDUE, pm.Status.DUE, pm.Status.UPCOMING]
    stopped = [*events, make_event("infusion_stop", T0 + 21 * MIN)]
    cps = [c for c in pm.checkpoints(P, T0, stopped, [], T0 + 60 * MIN) if c.checkpoint == "bp-rep"]
    assert [c.id for c in cps] == ["bp-rep.1", "bp-rep.2"]


# --- discharge ---------------------------------------------------------------------------

GOOD = [
    make_cuff(120, 80, ts=T0 + 45 * MIN, seq=1),
    make_reading({"hr": 72, "spo2": 97}, ts=T0 + 45 * MIN, seq=2),
]
RECOVERED = _dosed(
    T0 + 10 * MIN,
    make_event("infusion_stop", T0 + 30 * MIN),
    make_event("observation", T0 + 44 * MIN, {"moaas": 5}),
)


def test_a_session_never_dosed_may_end_at_any_time() -> None:
    """docs/protocols.md: nothing was given, so nothing blocks the end."""
    d = pm.discharge(P, T0, [], [], None, T0 + MIN)
    assert d.eligible and d.blocked_by == () and d.eligible_at is None


def test_discharge_is_eligible_once_every_criterion_holds() -> None:
    """docs/protocols.md: time after the anchor, BP, SpO2, HR, MOAA/S 5 and the escort."""
    d = pm.discharge(P, T0, RECOVERED, GOOD, None, T0 + 39 * MIN)
    assert not d.eligible and d.blocked_by == (pm.Blocked.TOO_SOON,)
    assert d.eligible_at == T0 + 40 * MIN  # 30 min after dosing started at 10 min
    d = pm.discharge(P, T0, RECOVERED, GOOD, None, T0 + 50 * MIN)
    assert d.eligible and d.blocked_by == () and d.eligible_at == T0 + 40 * MIN


@pytest.mark.parametrize(
    ("readings", "events", "blocked"),
    [
        ([GOOD[1]], RECOVERED, [pm.Blocked.BP_MISSING]),
        ([make_cuff(120, 80, ts=T0 + 5 * MIN), GOOD[1]], RECOVERED, [pm.Blocked.BP_MISSING]),
        ([make_cuff(160, 80, ts=T0 + 45 * MIN), GOOD[1]], RECOVERED, [pm.Blocked.BP_OUT_OF_RANGE]),
        (
            [GOOD[0], make_reading({"hr": 72}, ts=T0 + 45 * MIN, seq=3)],
            RECOVERED,
            [pm.Blocked.SPO2_MISSING],
        ),
        (
            [GOOD[0], make_reading({"hr": 72, "spo2": 92}, ts=T0 + 45 * MIN, seq=3)],
            RECOVERED,
            [pm.Blocked.SPO2_LOW],
        ),
        (
            [GOOD[0], make_reading({"hr": 120, "spo2": 97}, ts=T0 + 45 * MIN, seq=3)],
            RECOVERED,
            [pm.Blocked.HR_OUT_OF_RANGE],
        ),
        (
            [GOOD[0], make_reading({"spo2": 97}, ts=T0 + 45 * MIN, seq=3)],
            RECOVERED,
            [pm.Blocked.HR_MISSING],
        ),
        (GOOD, RECOVERED[:-1], [pm.Blocked.MOAAS_MISSING]),
        (
            GOOD,
            [*RECOVERED, make_event("observation", T0 + 46 * MIN, {"moaas": 4})],
            [pm.Blocked.MOAAS_LOW],
        ),
        (
            GOOD,
            [
                make_event(
                    "checklist", T0, {k: v for k, v in FULL_CHECKLIST.items() if k != "escort"}
                ),
                *RECOVERED[1:],
            ],
            [pm.Blocked.ESCORT_UNCONFIRMED],
        ),
    ],
)
def test_each_unmet_discharge_criterion_blocks_with_its_code(
    readings: list[Reading], events: list[pm.SessionEvent], blocked: list[pm.Blocked]
) -> None:
    """docs/protocols.md: blocked_by names every criterion not met."""
    d = pm.discharge(P, T0, events, readings, None, T0 + 60 * MIN)
    assert not d.eligible and list(d.blocked_by) == blocked


def test_a_bp_near_the_baseline_meets_the_bp_criterion_outside_the_bounds() -> None:
    """docs/protocols.md: within the bounds or within the percentage of the baseline."""
    high = [make_cuff(150, 92, ts=T0 + 45 * MIN), GOOD[1]]
    assert pm.discharge(P, T0, RECOVERED, high, {"sbp": 145, "dbp": 90}, T0 + 60 * MIN).eligible
    assert not pm.discharge(P, T0, RECOVERED, high, {"sbp": 110, "dbp": 70}, T0 + 60 * MIN).eligible


@pytest.mark.parametrize(
    ("data", "role", "outcome"),
    [
        (None, "charge", "refused"),
        ({"override_reason": "  "}, "admin", "refused"),
        ({"override_reason": "patient insists, escort present"}, "charge", "allowed"),
        ({"override_reason": "patient insists, escort present"}, "admin", "allowed"),
        ({"override_reason": "patient insists, escort present"}, "nurse", "forbidden"),
    ],
)
def test_ending_a_blocked_session_needs_a_charge_nurse_override_with_a_reason(
    data: dict[str, Any] | None, role: str, outcome: str
) -> None:
    """docs/protocols.md: override_reason from charge or admin; a nurse's override is refused."""
    blocked = pm.DischargeStatus(False, None, (pm.Blocked.TOO_SOON,))
    if outcome == "forbidden":
        with pytest.raises(pm.Forbidden):
            pm.end_refusal(blocked, data, role)
        return
    refusal = pm.end_refusal(blocked, data, role)
    if outcome == "allowed":
        assert refusal is None
    else:
        assert refusal is not None and refusal.code is pm.Gate.DISCHARGE_BLOCKED
        assert refusal.detail == {"blocked_by": ["too_soon"]}
    assert pm.end_refusal(pm.DischargeStatus(True, None), None, "nurse") is None


# --- checkpoint alarms -------------------------------------------------------------------


def test_an_overdue_checkpoint_raises_one_low_technical_alarm_that_ends_when_done() -> None:
    """docs/protocols.md: signal checkpoint, low priority, technical, deterministic id; it
    ends when the checkpoint is done."""
    overdue = pm.checkpoints(P, T0, _dosed(), [], T0 + 23 * MIN)
    raised = pm.checkpoint_alarms("bed-1", 7, overdue, {}, T0 + 23 * MIN)
    bp10 = next(a for a in raised if "bp-10" in a.id)
    assert bp10.id == f"bed-1.checkpoint.bp-10.{int((T0 + 20 * MIN) * 1000)}"
    assert (bp10.kind, bp10.signal, bp10.priority, bp10.state) == (
        "technical",
        "checkpoint",
        "low",
        "active",
    )
    assert bp10.started_at == T0 + 22 * MIN and bp10.session_id == 7
    live = {a.id: a for a in raised}
    assert pm.checkpoint_alarms("bed-1", 7, overdue, live, T0 + 24 * MIN) == []
    done = pm.checkpoints(P, T0, _dosed(), [make_cuff(120, 80, ts=T0 + 24 * MIN)], T0 + 25 * MIN)
    ended = pm.checkpoint_alarms("bed-1", 7, done, live, T0 + 25 * MIN)
    assert bp10.id in {
        a.id for a in ended if a.state is AlarmState.ENDED and a.ended_at == T0 + 25 * MIN
    }
    assert live[bp10.id].state is AlarmState.ACTIVE  # the caller's copy is left alone
    assert {a.state for a in pm.checkpoint_alarms("bed-1", 7, (), live, T0 + 26 * MIN)} == {"ended"}


# --- properties --------------------------------------------------------------------------

ESK = load_config(None).protocols["esketamine"]
IV = load_config(None).protocols["iv-ketamine"]


@settings(max_examples=60, deadline=None)
@given(
    readings=session_readings(T0, 180 * MIN),
    now=st.floats(min_value=T0, max_value=T0 + 200 * MIN),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
    protocol=st.sampled_from([P, ESK, IV]),
)
def test_the_status_depends_on_reading_times_never_on_arrival_order(
    readings: list[Reading], now: float, seed: int, protocol: Any
) -> None:
    """docs/protocols.md: only times decide; the order readings arrive in changes nothing."""
    events = [
        make_event("checklist", T0 + MIN, dict(FULL_CHECKLIST)),
        make_event("infusion_start", T0 + 10 * MIN),
        make_event("infusion_stop", T0 + 50 * MIN),
        make_event("observation", T0 + 55 * MIN, {"moaas": 5}),
    ]
    shuffled = list(readings)
    random.Random(seed).shuffle(shuffled)
    baseline = {"sbp": 125.0, "dbp": 80.0}
    a = pm.status(protocol, T0, events, readings, baseline, now)
    b = pm.status(protocol, T0, events, shuffled, baseline, now)
    assert a == b
    gate_a = pm.infusion_start_refusal(protocol, events[:1], readings, T0 + 10 * MIN, None)
    gate_b = pm.infusion_start_refusal(protocol, events[:1], shuffled, T0 + 10 * MIN, None)
    assert gate_a == gate_b


@settings(max_examples=60, deadline=None)
@given(
    readings=session_readings(T0, 120 * MIN),
    now=st.floats(min_value=T0, max_value=T0 + 130 * MIN),
)
def test_a_checkpoint_status_never_goes_back_from_done(readings: list[Reading], now: float) -> None:
    """docs/protocols.md: done once satisfied; more readings never undo it (an earlier one
    arriving late can only move ``done_at`` earlier: the earliest reading satisfies)."""
    events = _dosed(T0 + 10 * MIN, make_event("infusion_stop", T0 + 60 * MIN))
    before = {c.id: c for c in pm.checkpoints(P, T0, events, readings, now)}
    extra = [*readings, make_cuff(130, 85, ts=now, seq=10_000)]
    after = {c.id: c for c in pm.checkpoints(P, T0, events, extra, now + MIN)}
    for cid, c in before.items():
        if c.status is pm.Status.DONE:
            assert after[cid].status is pm.Status.DONE
            assert after[cid].done_at is not None and c.done_at is not None
            assert after[cid].done_at <= c.done_at


# --- doses -------------------------------------------------------------------------------

IV_DOSING = make_protocol(dosing={"drug": "ketamine", "route": "iv", "weight_item": "weight_kg"})


@pytest.mark.parametrize(
    ("data", "stored"),
    [
        ({"mg_per_kg": 0.5}, {"mg_per_kg": 0.5, "total_mg": 36.2}),
        ({"total_mg": 36.25}, {"mg_per_kg": 0.5, "total_mg": 36.25}),
        ({"mg_per_kg": 0.5, "total_mg": 36.0}, {"mg_per_kg": 0.5, "total_mg": 36.0}),
        ({"mg_per_kg": 0.5, "total_mg": 40.0}, None),  # 40 is not 0.5 x 72.5
        ({}, None),
        ({"mg_per_kg": 0.5, "drug": "propofol"}, None),
    ],
)
def test_an_iv_dose_is_completed_from_the_checklist_weight_or_refused(
    data: dict[str, Any], stored: dict[str, Any] | None
) -> None:
    """docs/protocols.md "Doses": mg/kg and total mg from the checklist weight; a pair that
    disagrees is refused."""
    events = _dosed(T0 + 10 * MIN)
    if stored is None:
        with pytest.raises(pm.DoseError):
            pm.dose(IV_DOSING, T0, events, data, T0 + 11 * MIN, "nurse")
        return
    d = pm.dose(IV_DOSING, T0, events, data, T0 + 11 * MIN, "nurse")
    assert d.refusal is None and {k: d.data[k] for k in stored} == stored
    assert d.data["drug"] == "ketamine" and d.data["weight_kg"] == 72.5


def test_a_dose_outside_the_infusion_is_refused() -> None:
    """docs/protocols.md "Doses": only while dosing runs."""
    before = [make_event("checklist", T0, dict(FULL_CHECKLIST))]
    d = pm.dose(IV_DOSING, T0, before, {"mg_per_kg": 0.5}, T0 + MIN, "nurse")
    assert d.refusal is not None and d.refusal.code is pm.Gate.DOSE_OUTSIDE_INFUSION
    stopped = _dosed(T0 + 10 * MIN, make_event("infusion_stop", T0 + 20 * MIN))
    d = pm.dose(IV_DOSING, T0, stopped, {"mg_per_kg": 0.5}, T0 + 21 * MIN, "nurse")
    assert d.refusal is not None and d.refusal.code is pm.Gate.DOSE_OUTSIDE_INFUSION


def test_intranasal_devices_keep_their_rest_and_count_unless_a_charge_nurse_overrides() -> None:
    """docs/protocols.md "Doses": one device per event, 5 min apart, at most 3; sooner or
    more needs an override_reason from charge or admin."""
    events = _dosed(T0 + 10 * MIN)
    first = pm.dose(IN_DOSING, T0, events, {"lot": "A1"}, T0 + 10 * MIN, "nurse")
    assert first.refusal is None
    assert (first.data["device"], first.data["total_mg"], first.data["cumulative_mg"]) == (
        1,
        28,
        28,
    )
    events.append(make_event("dose", T0 + 10 * MIN, dict(first.data)))
    soon = pm.dose(IN_DOSING, T0, events, {}, T0 + 13 * MIN, "nurse")
    assert soon.refusal is not None and soon.refusal.code is pm.Gate.DEVICE_INTERVAL
    assert soon.refusal.detail == {"next_at": T0 + 15 * MIN}
    with pytest.raises(pm.Forbidden):
        pm.dose(IN_DOSING, T0, events, {"override_reason": "x"}, T0 + 13 * MIN, "nurse")
    over = pm.dose(IN_DOSING, T0, events, {"override_reason": "x"}, T0 + 13 * MIN, "charge")
    assert over.refusal is None and over.overridden and over.data["device"] == 2
    on_time = pm.dose(IN_DOSING, T0, events, {}, T0 + 15 * MIN, "nurse")
    assert on_time.refusal is None and on_time.data["cumulative_mg"] == 56
    events += [make_event("dose", T0 + 15 * MIN), make_event("dose", T0 + 20 * MIN)]
    fourth = pm.dose(IN_DOSING, T0, events, {}, T0 + 30 * MIN, "nurse")
    assert fourth.refusal is not None and fourth.refusal.code is pm.Gate.DEVICES_EXCEEDED
    with pytest.raises(pm.DoseError):
        pm.dose(IN_DOSING, T0, events[:2], {"total_mg": 56}, T0 + 30 * MIN, "nurse")
