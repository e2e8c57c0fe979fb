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
    session_id: int | None = None,
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
        session_id=session_id,
    )
