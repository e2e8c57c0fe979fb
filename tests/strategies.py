"""Hypothesis strategies shared by the property tests. Append, never rewrite."""

from __future__ import annotations

from hypothesis import strategies as st

from monitor.core.model import SIGNAL_RANGES, Reading

signal_values = st.dictionaries(
    st.sampled_from(sorted(SIGNAL_RANGES)),
    st.floats(min_value=0, max_value=350, allow_nan=False, allow_infinity=False),
    min_size=1,
)


@st.composite
def session_readings(draw: st.DrawFn, start: float, span_s: float) -> list[Reading]:
    """Readings of one session between ``start`` and ``start + span_s``: cuff readings
    (``source: nibp``) and continuous ones, each with its own (device, seq)."""
    from tests.factories import make_reading

    n = draw(st.integers(min_value=0, max_value=25))
    out: list[Reading] = []
    for seq in range(1, n + 1):
        ts = start + draw(st.floats(min_value=0, max_value=span_s, allow_nan=False))
        late = draw(st.floats(min_value=0, max_value=600, allow_nan=False))
        if draw(st.booleans()):
            sbp = draw(st.integers(min_value=80, max_value=200))
            dbp = draw(st.integers(min_value=40, max_value=sbp - 10))
            values = {"sbp": float(sbp), "dbp": float(dbp)}
            source: str | None = "nibp"
        else:
            values = {
                "hr": float(draw(st.integers(min_value=40, max_value=130))),
                "spo2": float(draw(st.integers(min_value=85, max_value=100))),
            }
            source = None
        out.append(make_reading(values, ts=ts, seq=seq, source=source, received_at=ts + late))
    return out


@st.composite
def stored_histories(draw: st.DrawFn) -> list[tuple[int | None, str, float]]:
    """A session's stored (id, type, at) events as a store may hold them, possible or not:
    any type (an unknown one too), any order of times; ids ascending as the store's are."""
    from monitor.clinical.session import EVENT_TYPES

    kinds = st.sampled_from([*sorted(EVENT_TYPES), "infusion_restart"])
    events = draw(st.lists(st.tuples(kinds, st.floats(0, 1e5, allow_nan=False)), max_size=20))
    return [(i + 1, kind, at) for i, (kind, at) in enumerate(events)]


@st.composite
def possible_histories(draw: st.DrawFn) -> list[tuple[int | None, str, float]]:
    """A stored history the API could have written: each phase event fits the one before."""
    from monitor.clinical.session import EVENT_TYPES, SessionState, TransitionError, apply

    state = SessionState()
    at = draw(st.floats(0, 1e4, allow_nan=False))
    out: list[tuple[int | None, str, float]] = []
    for _ in range(draw(st.integers(0, 15))):
        kind = draw(st.sampled_from(sorted(EVENT_TYPES)))
        at += draw(st.floats(0, 3600, allow_nan=False))
        try:
            state = apply(state, kind, at)
        except TransitionError:
            continue
        out.append((len(out) + 1, kind, at))
    return out


# --- session commands (tests/test_atomic_sessions_e2e.py) --------------------------------
# A command to one session: ("event", body of POST .../events) or ("limits", body of PUT
# .../limits), each valid for the shipped `basic` protocol and the clinic's default bounds.
PHASE_COMMANDS = ("infusion_start", "infusion_pause", "infusion_resume", "infusion_stop", "end")

session_command = st.one_of(
    st.sampled_from(PHASE_COMMANDS).map(lambda t: ("event", {"type": t})),
    st.integers(min_value=0, max_value=5).map(
        lambda m: ("event", {"type": "observation", "data": {"moaas": m}})
    ),
    st.just(("event", {"type": "discharge_request"})),
    st.integers(min_value=86, max_value=92).map(
        lambda v: ("limits", {"overrides": {"spo2": {"low": {"medium": v}}}, "reason": "race"})
    ),
)

# What 2 to 5 people (or clicks) send to one session at once.
concurrent_session_commands = st.lists(session_command, min_size=2, max_size=5)
