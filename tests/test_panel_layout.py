"""Pure tests of the panel's tiles and pages: functions of the monitor's data, no browser."""

from __future__ import annotations

from typing import Any

from dash import html

from dashboard import bedpage, layout, words
from dashboard.settings import PanelSettings, parse_settings
from monitor.core.model import to_rfc3339
from tests.factories import T0


def find(component: Any, ident: Any) -> Any:
    """Depth-first search of a Dash component tree by id."""
    if getattr(component, "id", None) == ident:
        return component
    children = getattr(component, "children", None)
    if children is None:
        return None
    if not isinstance(children, list | tuple):
        children = [children]
    for child in children:
        if hasattr(child, "to_plotly_json"):
            hit = find(child, ident)
            if hit is not None:
                return hit
    return None


def attr(component: Any, name: str) -> Any:
    return component.to_plotly_json()["props"].get(name)


def make_bed(**over: Any) -> dict[str, Any]:
    bed: dict[str, Any] = {
        "id": "bed-1",
        "label": "Chair 1",
        "devices": ["dev-1"],
        "session": None,
        "latest": {},
        "alarms": [],
        "devices_status": {},
    }
    bed.update(over)
    return bed


def make_alarm(**over: Any) -> dict[str, Any]:
    alarm: dict[str, Any] = {
        "id": "a1",
        "bed": "bed-1",
        "signal": "spo2",
        "kind": "physiological",
        "priority": "medium",
        "condition": "spo2 < 90",
        "started_at": to_rfc3339(T0),
        "ended_at": None,
        "acknowledged_at": None,
        "acknowledged_by": None,
        "state": "active",
        "escalated": False,
        "audio_paused_until": None,
        "session_id": None,
        "device_id": "dev-1",
        "value": 88.0,
    }
    alarm.update(over)
    return alarm


def test_tile_is_an_empty_container_with_the_outside_hooks_the_browser_fills() -> None:
    """docs/panel.md: Python draws only the tile's container (class tile, data-bed, a link to
    the bed page); values, alarms and the mini-trend are drawn by the browser alone."""
    bed = make_bed(latest={"hr": {"value": 72.0, "ts": to_rfc3339(T0)}}, alarms=[make_alarm()])
    t = layout.tile(bed)
    assert t.id == "tile-bed-1" and t.className == "tile"
    assert attr(t, "data-bed") == "bed-1"
    assert attr(t, "data-feed") == "down"
    link = find(t, "tile-bed-1-name")
    assert link.href == "/bed/bed-1" and link.children == "Chair 1"
    body = find(t, "tile-bed-1-body")
    assert body is not None and not body.children
    for ident in ("tile-bed-1-hr-value", "tile-bed-1-status", "tile-bed-1-phase"):
        assert find(t, ident) is None, f"{ident} is the browser's to draw"
    assert layout.tile(bed, big=True).className == "tile tile-big"


def test_page_constants_come_from_the_clinic_config() -> None:
    """docs/panel.md: stale ages, priority ranks, tone intervals, trace order and the faint
    limit lines reach the browser from one source, the clinic config and monitor.core.model."""
    from dashboard import constants, figures
    from monitor.alarms.config import load_config, parse_config

    base = load_config()
    c = constants.page_constants(base)
    assert c["stale_s"]["hr"] == base.continuous_max_gap_s
    assert c["stale_s"]["sbp"] == base.technical.stale_cuff.after_s
    assert c["rank"] == {"low": 1, "medium": 2, "high": 3}
    assert c["trace"] == dict(figures.TRACE_INDEX)
    assert c["limits"]["spo2"] == {"low": {"medium": 90, "high": 85}}
    assert c["limits"]["rr"]["high"] == {"medium": 30}
    assert c["tone_interval_s"]["high"]["escalated"] < c["tone_interval_s"]["high"]["normal"]
    data = base.model_dump(mode="json")
    data["continuous_max_gap_s"] = 20
    data["technical"]["stale_cuff"]["after_s"] = 600
    data["limits"]["spo2"] = {"low": {"low": 92, "medium": 90, "high": 85}}
    changed = constants.page_constants(parse_config(data))
    assert changed["stale_s"]["spo2"] == 20 and changed["stale_s"]["map"] == 600
    assert changed["limits"]["spo2"] == {"low": {"low": 92, "medium": 90, "high": 85}}


def test_infusion_timer_text() -> None:
    """'Infusion 23:41 / 40:00' from infusion_elapsed_s and the planned duration."""
    session = {
        "phase": "infusion",
        "infusion_elapsed_s": 1421.4,
        "infusion_planned_s": 2400,
        "infusion_running": True,
    }
    assert words.infusion_text(session) == "Infusion 23:41 / 40:00"
    assert words.infusion_text({**session, "infusion_running": False}).endswith("(paused)")
    assert words.infusion_text({"phase": "baseline"}) == "Baseline"
    assert words.infusion_text(None) == "No patient"


def test_phase_buttons_offered_follow_the_phase() -> None:
    """Only events that fit the phase are offered (the monitor still answers 409)."""
    assert layout.allowed_events({"phase": "baseline"}) == {"infusion_start", "end"}
    assert layout.allowed_events({"phase": "infusion", "infusion_running": True}) == {
        "infusion_pause",
        "infusion_stop",
    }
    assert layout.allowed_events({"phase": "infusion", "infusion_running": False}) == {
        "infusion_resume",
        "infusion_stop",
    }
    assert layout.allowed_events({"phase": "recovery"}) == {"end"}
    assert layout.allowed_events({"phase": "ended"}) == set()


def test_observation_data_keeps_only_what_was_entered() -> None:
    """An observation event carries the contract's keys, and nothing for empty fields."""
    assert layout.observation_data(4, None, "", None, "  ") == {"moaas": 4}
    assert layout.observation_data(None, "7", "nausea", "ondansetron 4 mg", "calm") == {
        "cadss6": 7,
        "side_effect": "nausea",
        "medication": "ondansetron 4 mg",
        "note": "calm",
    }
    assert layout.observation_data(None, None, None, None, None) == {}


def test_timeline_lists_events_with_stable_ids() -> None:
    """Each nurse event appears in the bed's timeline as timeline-{event id}."""
    events = [
        {"id": 7, "type": "infusion_start", "at": to_rfc3339(T0), "by": "nurse1", "data": None},
        {
            "id": 8,
            "type": "observation",
            "at": to_rfc3339(T0 + 60),
            "by": "nurse1",
            "data": {"moaas": 3},
        },
    ]
    items = bedpage.timeline_items(events, 0)
    assert [i.id for i in items] == ["timeline-7", "timeline-8"]
    assert "MOAA/S: 3" in str(items[1].to_plotly_json())


def test_limits_edits_become_nested_overrides() -> None:
    """The limits form PUTs only changed thresholds, in the clinic config's shape."""
    doc = {
        "limits": {
            "spo2": {"low": {"medium": 90, "high": 85}},
            "sbp": {"high": {"medium": 180, "inclusive": True}},
        }
    }
    flat = dict(layout.flatten_limits(layout.limits_subtree(doc)))
    assert flat == {"spo2.low.medium": 90.0, "spo2.low.high": 85.0, "sbp.high.medium": 180.0}
    assert layout.nest_paths({"spo2.low.medium": 88.0}) == {"spo2": {"low": {"medium": 88.0}}}
    # A second edit keeps the overrides already in force (PUT replaces them).
    merged = layout.merge_nested({"hr": {"high": {"medium": 130}}}, {"hr": {"low": {"medium": 45}}})
    assert merged == {"hr": {"high": {"medium": 130}, "low": {"medium": 45}}}


def test_overview_sorts_beds_naturally_and_says_when_empty() -> None:
    """bed-2 comes before bed-10; an empty ward says how to add a device."""
    tiles = layout.ward_tiles([make_bed(id="bed-10"), make_bed(id="bed-2")])
    assert [t.id for t in tiles] == ["tile-bed-2", "tile-bed-10"]
    empty = layout.ward_tiles([])
    assert isinstance(empty[0], html.Div) and "add-device" in empty[0].children


def test_login_page_has_the_documented_fields() -> None:
    """Browser tests log in through #login-username, #login-password, #login-submit."""
    page = layout.login_layout("Wrong username or password.")
    for ident in ("login-username", "login-password", "login-submit"):
        assert find(page, ident) is not None
    assert find(page, "login-error").children == "Wrong username or password."


def test_settings_take_options_over_environment() -> None:
    """CLI options win over VIGIL_* variables; bad URLs are refused."""
    env = {"VIGIL_PANEL_PORT": "9000", "VIGIL_MONITOR_URL": "http://10.0.0.5:8000/"}
    s = parse_settings([], env)
    assert (s.port, s.monitor_url, s.monitor_port, s.feed_url) == (
        9000,
        "http://10.0.0.5:8000",
        8000,
        None,
    )
    s = parse_settings(["--port", "8051", "--feed-url", "wss://ward.example/ws/feed"], env)
    assert (s.port, s.feed_url) == (8051, "wss://ward.example/ws/feed")
    try:
        PanelSettings(monitor_url="ftp://x")
    except ValueError:
        pass
    else:
        raise AssertionError("ftp monitor URL accepted")


def test_first_visit_straight_to_a_bed_page_gets_the_feed_client() -> None:
    """Even the first request after a restart, to /bed/X, links vigil.js (live data)."""
    from fastapi.testclient import TestClient

    from dashboard.app import create_app

    app = create_app(PanelSettings(monitor_url="http://127.0.0.1:9"))
    config = find(app.layout, "vigil-config")
    assert attr(config, "data-feed-path") == "/panel/feed"
    with TestClient(app.server) as client:
        index = client.get("/bed/bed-1").text
        assert "vigil.js" in index and "vigil.css" in index
        assert "feed" in client.get("/assets/vigil.js").text
        painters = ("3a-dom", "3b-trend", "3c-tiles", "3d-alarms", "3e-paint")
        parts = ["1-fmt", "2-state", *painters, "4-sound"]
        for part in (f"vigil-{p}.js" for p in parts):
            assert part in index, f"{part} is not linked"
        for part in painters:
            assert "MutationObserver" not in client.get(f"/assets/vigil-{part}.js").text
        # Command endpoints refuse to forward without the user's token.
        assert client.post("/panel/api/alarms/a1/ack").status_code == 401
