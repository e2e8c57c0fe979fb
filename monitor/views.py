"""The JSON views the API and the feed answer with (sessions, beds, limits). Translation only:
no rule is decided here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from monitor import session as session_model
from monitor.alarms.config import ClinicConfig
from monitor.caches import Caches
from monitor.db.store import Store
from monitor.model import PRIORITY_RANK, Alarm, to_rfc3339
from monitor.protocol import feed


class Views:
    def __init__(
        self,
        store: Store,
        caches: Caches,
        config: ClinicConfig,
        active_alarms: Callable[[], list[Alarm]],
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.caches = caches
        self.config = config
        self.active_alarms = active_alarms
        self.clock = clock

    async def session_json(self, row: dict[str, Any]) -> dict[str, Any]:
        events = await self.store.session_events(row["id"])
        state = session_model.replay(
            (e["type"], e["at"]) for e in events if e["type"] in session_model.PHASE_EVENTS
        )
        now = self.clock()
        return {
            "id": row["id"],
            "bed": row["bed_id"],
            "patient_label": row["patient_label"],
            "age": row["age"],
            "phase": row["phase"],
            "opened_at": to_rfc3339(row["opened_at"]),
            "ended_at": to_rfc3339(row["ended_at"]),
            "infusion_elapsed_s": round(session_model.infusion_elapsed(state, now), 1),
            "infusion_planned_s": row["infusion_planned_s"],
            "infusion_running": state.running,
            "infusion_started_at": to_rfc3339(state.infusion_started_at),
            "infusion_stopped_at": to_rfc3339(state.infusion_stopped_at),
            "baseline": row["baseline"],
            "limit_overrides": row["limit_overrides"],
            "events": [
                {
                    "id": e["id"],
                    "type": e["type"],
                    "at": to_rfc3339(e["at"]),
                    "recorded_at": to_rfc3339(e["recorded_at"]),
                    "by": e["by"],
                    "data": e["data"],
                }
                for e in events
            ],
        }

    def limits_json(self, row: dict[str, Any]) -> dict[str, Any]:
        config = self.config
        phase = row["phase"] if row["phase"] != "ended" else None
        in_force = config.limits_for(phase, row["limit_overrides"])
        return {
            "session_id": row["id"],
            "phase": row["phase"],
            "limits": {sig: sl.model_dump(exclude_none=True) for sig, sl in in_force.items()},
            "overrides": row["limit_overrides"] or {},
            "override_bounds": {k: list(v) for k, v in config.override_bounds.items()},
            "delays": config.delays,
            "hysteresis": config.hysteresis,
            "baseline": row["baseline"],
        }

    async def beds_json(self) -> list[dict[str, Any]]:
        now = self.clock()
        beds = await self.store.list_beds()
        by_bed: dict[str, list[Alarm]] = {}
        for a in self.active_alarms():
            by_bed.setdefault(a.bed_id, []).append(a)
        out = []
        caches = self.caches
        for bed in beds:
            bed_id = bed["id"]
            session = caches.open_sessions.get(bed_id)
            session_body = None
            if session is not None:
                row = await self.store.session_row(session.id)
                if row is not None:
                    session_body = await self.session_json(row)
            latest = {
                sig: {
                    "value": r.values[sig],
                    "ts": to_rfc3339(r.ts),
                    "age_s": round(now - r.ts, 1),
                    "device_id": r.device_id,
                    "source": r.source,
                }
                for sig, r in caches.latest.get(bed_id, {}).items()
            }
            alarms = sorted(
                by_bed.get(bed_id, []),
                key=lambda a: (-PRIORITY_RANK.get(a.priority, 0), a.started_at),
            )
            out.append(
                {
                    "id": bed_id,
                    "label": bed["label"],
                    "devices": bed["devices"],
                    "session": session_body,
                    "latest": latest,
                    "alarms": [feed.alarm_json(a) for a in alarms],
                    "devices_status": {
                        d: {
                            "last_seen": to_rfc3339(caches.last_seen.get(d)),
                            "age_s": (
                                round(now - caches.last_seen[d], 1)
                                if d in caches.last_seen
                                else None
                            ),
                        }
                        for d in bed["devices"]
                    },
                }
            )
        return out
