"""Test factories: small builders for the model's plain values. Append, never rewrite."""

from __future__ import annotations

from monitor.model import Reading

T0 = 1_790_000_000.0  # a fixed epoch (2026-09-21) so tests never read the clock


def make_reading(
    values: dict[str, float] | None = None,
    *,
    ts: float = T0,
    seq: int = 1,
    device_id: str = "dev-1",
    bed_id: str | None = "bed-1",
    source: str | None = None,
    received_at: float | None = None,
) -> Reading:
    vals = values if values is not None else {"hr": 72.0, "spo2": 98.0, "rr": 14.0}
    if source is None and any(k in ("sbp", "dbp", "map") for k in vals):
        source = "nibp"
    return Reading(
        device_id=device_id,
        seq=seq,
        ts=ts,
        received_at=ts if received_at is None else received_at,
        values=vals,
        source=source,
        bed_id=bed_id,
    )


def make_session_json(
    *,
    session_id: int = 1,
    bed: str = "bed-1",
    patient_label: str = "Patient A",
    opened_at: float = T0,
    phase_events: list[tuple[str, float]] | None = None,
    observations: list[tuple[float, dict[str, object]]] | None = None,
    baseline: dict[str, float] | None = None,
    by: str = "nurse",
) -> dict[str, object]:
    """A session as GET /api/sessions/{id} shows it (RFC 3339 times), for report tests.

    ``phase_events`` are (type, seconds after opening); ``observations`` (seconds, data).
    """
    from monitor.model import to_rfc3339

    timed = [(at, kind, {}) for kind, at in (phase_events or [])]
    timed += [(at, "observation", data) for at, data in (observations or [])]
    timed.sort(key=lambda e: e[0])
    events = [
        {
            "id": i,
            "type": kind,
            "at": to_rfc3339(opened_at + at),
            "recorded_at": to_rfc3339(opened_at + at),
            "by": by,
            "data": data,
        }
        for i, (at, kind, data) in enumerate(timed, start=1)
    ]
    ended = next((opened_at + at for kind, at in (phase_events or []) if kind == "end"), None)
    return {
        "id": session_id,
        "bed": bed,
        "patient_label": patient_label,
        "age": None,
        "phase": "ended" if ended is not None else "baseline",
        "opened_at": to_rfc3339(opened_at),
        "ended_at": to_rfc3339(ended),
        "infusion_planned_s": None,
        "baseline": baseline,
        "events": events,
    }
