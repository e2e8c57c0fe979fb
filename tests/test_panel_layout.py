"""Pure tests of the panel's tiles and pages: functions of the monitor's data, no browser."""

from __future__ import annotations

from typing import Any

from dash import html

from dashboard import bedpage, layout
from dashboard.settings import PanelSettings, parse_settings
from monitor.model import to_rfc3339
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


def test_tile_ids_follow_the_documented_scheme() -> None:
    """Tests and vigil.js find a bed's elements by tile-{bed}[-signal] (docs/panel.md)."""
    t = layout.tile(make_bed(), T0)
    assert t.id == "tile-bed-1"
    for key in ("hr", "spo2", "rr", "bp"):
        assert find(t, f"tile-bed-1-{key}") is not None
        assert find(t, f"tile-bed-1-{key}-value") is not None
    assert find(t, "tile-bed-1-phase") is not None
    assert find(t, "tile-bed-1-status") is not None


def test_tile_starts_with_feed_down_until_the_browser_hears_hello() -> None:
    """A central display must never show values as live before its feed is up (clinical §4)."""
    assert attr(layout.tile(make_bed(), T0), "data-feed") == "down"
    assert attr(layout.tile(make_bed(), T0, feed_up=True), "data-feed") == "up"


def test_fresh_value_shown_plainly_and_old_value_greyed_with_its_age() -> None:
    """Continuous values older than ~10 s are stale: greyed, with their age."""
    fresh = make_bed(latest={"hr": {"value": 71.6, "ts": to_rfc3339(T0 - 2), "age_s": 2}})
    t = layout.tile(fresh, T0)
    assert find(t, "tile-bed-1-hr-value").children == "72"
    assert attr(find(t, "tile-bed-1-hr"), "data-stale") == "false"
    old = make_bed(latest={"hr": {"value": 70, "ts": to_rfc3339(T0 - 45), "age_s": 45}})
    t = layout.tile(old, T0)
    assert attr(find(t, "tile-bed-1-hr"), "data-stale") == "true"
    assert find(t, "tile-bed-1-hr-age").children == "45 s"


def test_cuff_pressure_stays_current_for_fifteen_minutes() -> None:
    """A cuff reading is intermittent: stale only beyond 15 min, and always shows its age."""
    latest = {
        "sbp": {"value": 128, "ts": to_rfc3339(T0 - 600)},
        "dbp": {"value": 82, "ts": to_rfc3339(T0 - 600)},
        "map": {"value": 97, "ts": to_rfc3339(T0 - 600)},
    }
    t = layout.tile(make_bed(latest=latest), T0)
    assert find(t, "tile-bed-1-bp-value").children == "128/82 (97)"
    assert attr(find(t, "tile-bed-1-bp"), "data-stale") == "false"
    assert find(t, "tile-bed-1-bp-age").children == "10 min"
    t = layout.tile(make_bed(latest=latest), T0 + 400)
    assert attr(find(t, "tile-bed-1-bp"), "data-stale") == "true"


def test_missing_signal_is_shown_as_not_measured_never_zero() -> None:
    """A missing key means not measured (contract): dashes, never 0."""
    t = layout.tile(make_bed(), T0)
    assert find(t, "tile-bed-1-spo2-value").children == "--"
    assert find(t, "tile-bed-1-bp-value").children == "--/--"


def test_tile_carries_the_most_urgent_alarm() -> None:
    """data-alarm is the highest active priority; ended alarms do not count."""
    alarms = [
        make_alarm(id="m", priority="medium"),
        make_alarm(id="h", priority="high", signal="hr", condition="hr > 140", value=150),
        make_alarm(id="e", priority="high", state="ended", ended_at=to_rfc3339(T0)),
    ]
    t = layout.tile(make_bed(alarms=alarms), T0)
    assert attr(t, "data-alarm") == "high"
    assert attr(t, "data-alarm-kind") == "physiological"
    assert attr(find(t, "tile-bed-1-hr"), "data-alarm") == "high"
    assert attr(find(t, "tile-bed-1-spo2"), "data-alarm") == "medium"
    assert find(t, "tile-bed-1-status").children == "hr > 140 (150)"


def test_technical_alarm_is_marked_apart_and_names_the_silent_device() -> None:
    """Technical alarms are shown differently from physiological ones (clinical §4)."""
    silent = make_alarm(
        id="t",
        kind="technical",
        signal="device",
        priority="medium",
        condition="no data from dev-1 for 10 s",
        value=None,
    )
    t = layout.tile(make_bed(alarms=[silent]), T0)
    assert attr(t, "data-alarm-kind") == "technical"
    assert attr(t, "data-technical") == "true"
    assert attr(t, "data-device") == "silent"
    assert "dev-1" in find(t, "tile-bed-1-status").children


def test_alarms_sort_most_urgent_first() -> None:
    """High before medium before low; unacknowledged before acknowledged; then oldest."""
    alarms = [
        make_alarm(id="low", priority="low"),
        make_alarm(id="med-old", priority="medium", started_at=to_rfc3339(T0 - 60)),
        make_alarm(id="high-ack", priority="high", acknowledged_at=to_rfc3339(T0)),
        make_alarm(id="high", priority="high"),
        make_alarm(id="med-new", priority="medium"),
        make_alarm(id="gone", priority="high", state="ended", ended_at=to_rfc3339(T0)),
    ]
    assert [a["id"] for a in layout.sort_alarms(alarms)] == [
        "high",
        "high-ack",
        "med-old",
        "med-new",
        "low",
    ]


def test_all_acknowledged_alarms_stop_the_flash() -> None:
    """data-ack is true only when every active alarm is acknowledged (CSS stops flashing)."""
    one = [make_alarm(acknowledged_at=to_rfc3339(T0), state="acknowledged")]
    assert layout.bed_alarm_state(one)["ack"] == "true"
    assert layout.bed_alarm_state([*one, make_alarm(id="b")])["ack"] == "false"


def test_infusion_timer_text() -> None:
    """'Infusion 23:41 / 40:00' from infusion_elapsed_s and the planned duration."""
    session = {
        "phase": "infusion",
        "infusion_elapsed_s": 1421.4,
        "infusion_planned_s": 2400,
        "infusion_running": True,
    }
    assert layout.infusion_text(session) == "Infusion 23:41 / 40:00"
    assert layout.infusion_text({**session, "infusion_running": False}).endswith("(paused)")
    assert layout.infusion_text({"phase": "baseline"}) == "Baseline"
    assert layout.infusion_text(None) == "No patient"


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
    tiles = layout.ward_tiles([make_bed(id="bed-10"), make_bed(id="bed-2")], T0)
    assert [t.id for t in tiles] == ["tile-bed-2", "tile-bed-10"]
    empty = layout.ward_tiles([], T0)
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
        # Command endpoints refuse to forward without the user's token.
        assert client.post("/panel/api/alarms/a1/ack").status_code == 401


def test_pulse_rate_is_shown_small_beside_hr_and_greyed_when_stale() -> None:
    """docs/panel.md: the pulse rate beside HR ("PR 62"), greyed after 10 s, or after 15 min
    when it came with a cuff reading; blank when none was measured."""
    bed = make_bed(
        latest={
            "hr": {"value": 80, "ts": to_rfc3339(T0 - 1), "age_s": 1},
            "pr": {"value": 62, "ts": to_rfc3339(T0 - 1), "age_s": 1},
        }
    )
    t = layout.tile(bed, T0)
    assert find(t, "tile-bed-1-hr-value").children == "80"
    pr = find(t, "tile-bed-1-pr-value")
    assert (pr.children, attr(pr, "data-stale")) == ("PR 62", "false")
    old = make_bed(latest={"pr": {"value": 62, "ts": to_rfc3339(T0 - 30), "age_s": 30}})
    pr = find(layout.tile(old, T0), "tile-bed-1-pr-value")
    assert (pr.children, attr(pr, "data-stale")) == ("PR 62", "true")
    cuff = {"value": 63, "ts": to_rfc3339(T0 - 300), "age_s": 300, "source": "nibp"}
    pr = find(layout.tile(make_bed(latest={"pr": cuff}), T0), "tile-bed-1-pr-value")
    assert (pr.children, attr(pr, "data-stale")) == ("PR 63", "false")
    assert find(layout.tile(make_bed(), T0), "tile-bed-1-pr-value").children == ""
