"""Panel flows in headless Chromium against the real monitor and panel processes: sound,
audio pause, session reports, HL7 values, the real simulator, and the empty trend's axis.

Over 500 lines, one unit: the flows share one Chromium, panel and monitor, which cost more to
start than most of these tests take (tests/browser_support.py).
"""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from monitor.core.model import parse_rfc3339
from tests.browser_support import (  # noqa: F401  (fixtures used by name)
    CHROMIUM,
    CHROMIUM_ARGS,
    NURSE,
    PanelProcess,
    SyncDevice,
    browser_fixture,
    device_factory_fixture,
    login,
    page_fixture,
    page_state,
    panel_fixture,
    unique,
    wait_feed_up,
)
from tests.conftest import ROOT, MonitorProcess, free_port, terminate
from tests.wsclient import measure_after

pytestmark = pytest.mark.browser

HL7_DATA = ROOT / "tests" / "data" / "hl7"
MLLP_SEND = Path(sys.executable).parent / "mllp_send"
HL7_DEVICE = "080019FFFE3ED02D172.16.172.135"  # OBX-18 of the shipped IHE PCD-01 message
HIGH_OFFSETS = [0, 0.2, 0.4, 0.75, 0.95, 1.9, 2.1, 2.3, 2.65, 2.85]  # 10 pulses, 3+2 3+2


def quiet_ward(server: MonitorProcess) -> None:
    """Acknowledge every alarm left by earlier tests: the panel sounds only the most urgent
    unacknowledged alarm of the whole ward, so leftovers would drown this test's own."""
    for a in server.get("/api/alarms", active="true")["alarms"]:
        if not a["acknowledged_at"]:
            server.post(f"/api/alarms/{a['id']}/ack", {})


def sustain(device: SyncDevice, values: dict[str, float], seconds: int, ago: float = 0) -> None:
    """`seconds` of 1 Hz readings ending `ago` s before now (the engine judges delays on
    device time, so a sustained condition takes no wall time)."""
    end = time.time() - ago
    for i in range(seconds + 1):
        assert device.send(values, ts=end - seconds + i)["type"] == "ack"


def enable_sound(page: Any) -> None:
    page.click("#sound-toggle")
    page.wait_for_function("document.getElementById('sound-toggle')?.dataset.sound === 'on'")
    assert page.text_content("#sound-toggle") == "Sound ON"
    assert page.evaluate("window.vigil.state.sound.ctx.state") == "running"


def scheduled(page: Any, bed: str | None = None) -> list[dict[str, Any]]:
    """Tone patterns the panel scheduled on its AudioContext (window.vigil.audio)."""
    log = page.evaluate("window.vigil.audio")
    return [e for e in log if bed is None or e["bed"] == bed]


def wait_scheduled(page: Any, bed: str, kind: str, timeout_ms: int = 8000) -> dict[str, Any]:
    page.wait_for_function(
        f"window.vigil?.audio?.some(e => e.bed === {json.dumps(bed)} && e.kind === '{kind}')",
        timeout=timeout_ms,
    )
    return next(e for e in scheduled(page, bed) if e["kind"] == kind)


def open_ward(page: Any, panel_url: str, *beds: str) -> None:
    login(page, panel_url)
    for bed in beds:
        page.wait_for_selector(f"[id='tile-{bed}']")
    wait_feed_up(page)


# --- 1. hear ----------------------------------------------------------------------------------


def test_sustained_low_spo2_sounds_the_high_priority_burst(
    sqlite_server: MonitorProcess, panel: PanelProcess, page: Any, device_factory: Any
) -> None:
    """With sound on, SpO2 < 85 held past its delay schedules IEC's high burst: 10 pulses
    (3+2, 3+2) at 880 Hz with harmonics (clinical §4)."""
    bed = unique("hear")
    dev = device_factory(bed)
    quiet_ward(sqlite_server)
    open_ward(page, panel.url, bed)
    assert page.get_attribute("#sound-toggle", "data-sound") == "off"
    enable_sound(page)
    sustain(dev, {"hr": 90, "spo2": 82, "rr": 12}, 15)
    burst = wait_scheduled(page, bed, "high")
    assert burst["state"] == "running"
    assert [p["offset"] for p in burst["pulses"]] == HIGH_OFFSETS
    assert {p["freq"] for p in burst["pulses"]} == {880}
    tone = next(t for t in page.evaluate("window.vigil.tones") if t["bed"] == bed)
    alarm = next(a for a in sqlite_server.get("/api/alarms", bed=bed)["alarms"])
    assert (tone["kind"], tone["alarm"]) == ("high", alarm["id"])
    assert alarm["priority"] == "high" and alarm["signal"] == "spo2"


def test_medium_alarm_sounds_the_three_pulse_medium_pattern(
    sqlite_server: MonitorProcess, panel: PanelProcess, page: Any, device_factory: Any
) -> None:
    """SpO2 between 85 and 90 for 15 s is a medium alarm: 3 pulses at 660 Hz, never the high
    burst (clinical §3-4)."""
    bed = unique("hear")
    dev = device_factory(bed)
    quiet_ward(sqlite_server)
    open_ward(page, panel.url, bed)
    enable_sound(page)
    sustain(dev, {"hr": 90, "spo2": 88, "rr": 12}, 20)
    page.wait_for_function(
        f"document.getElementById('tile-{bed}')?.dataset.alarm === 'medium'", timeout=5000
    )
    # 12 s: a medium tone of another bed (a device of an earlier test falling silent) may
    # have just played, and medium repeats every 10 s.
    pattern = wait_scheduled(page, bed, "medium", timeout_ms=12_000)
    assert [(p["offset"], p["freq"]) for p in pattern["pulses"]] == [
        (0, 660),
        (0.3, 660),
        (0.6, 660),
    ]
    assert not [e for e in scheduled(page, bed) if e["kind"] == "high"]


def test_feed_going_down_schedules_the_technical_tone(panel: PanelProcess, page: Any) -> None:
    """A feed that drops sounds the technical pattern (two long falling tones), unlike any
    physiological one, and the panel recovers when the network does."""
    open_ward(page, panel.url)
    enable_sound(page)
    # The network between browser and panel fails: every feed connection is refused.
    network = {"up": False}

    def feed_route(ws: Any) -> None:
        if network["up"]:
            ws.connect_to_server()
        else:
            ws.close(code=1011)

    page.route_web_socket("**/panel/feed*", feed_route)
    page.evaluate("window.vigil.reconnect()")
    page.wait_for_function("document.body?.dataset?.feed === 'down'", timeout=3000)
    page.wait_for_function("window.vigil.audio.some(e => e.kind === 'technical')", timeout=3000)
    tech = next(e for e in scheduled(page) if e["kind"] == "technical")
    assert [(p["offset"], p["freq"]) for p in tech["pulses"]] == [(0, 440), (0.55, 330)]
    assert "CONNECTION TO MONITOR LOST" in (page.text_content("#feed-status") or "")
    network["up"] = True
    page.evaluate("window.vigil.reconnect()")
    wait_feed_up(page)


# --- 2. audio pause ---------------------------------------------------------------------------


def test_audio_pause_from_the_panel_silences_that_bed_only_and_keeps_the_visual_alarm(
    sqlite_server: MonitorProcess, panel: PanelProcess, page: Any, device_factory: Any
) -> None:
    """#pause-{bed} asks the monitor to pause that bed's audio (2 min); the panel counts down,
    the tile keeps flashing red, that bed goes quiet while another bed's alarm still sounds
    (clinical §4: pausing audio never hides the visual signal, never silences another)."""
    bed_a, bed_b = unique("pause"), unique("pause")
    dev_a, dev_b = device_factory(bed_a), device_factory(bed_b)
    quiet_ward(sqlite_server)
    open_ward(page, panel.url, bed_a, bed_b)
    enable_sound(page)
    sustain(dev_a, {"hr": 90, "spo2": 82, "rr": 12}, 15)
    sustain(dev_b, {"hr": 90, "spo2": 81, "rr": 12}, 15)
    wait_scheduled(page, bed_a, "high")
    page.wait_for_selector(f"[id='pause-{bed_a}']")
    assert page.get_attribute(f"[id='pause-{bed_a}']", "data-paused") == "false"

    page.click(f"[id='pause-{bed_a}']")
    page.wait_for_function(
        f"document.getElementById('pause-{bed_a}')?.dataset.paused === 'true'", timeout=3000
    )
    clicked = time.time()
    (alarm_a,) = sqlite_server.get("/api/alarms", bed=bed_a, active="true")["alarms"]
    until = parse_rfc3339(alarm_a["audio_paused_until"])
    assert 115 < until - clicked < 121
    (alarm_b,) = sqlite_server.get("/api/alarms", bed=bed_b, active="true")["alarms"]
    assert alarm_b["audio_paused_until"] is None

    button = page.text_content(f"[id='pause-{bed_a}']") or ""
    assert re.fullmatch(r"Audio paused (01:5\d|02:00)", button), button
    status = page.text_content(f"[id='tile-{bed_a}-status']") or ""
    assert re.search(r"audio paused (01:5\d|02:00)$", status), status
    tile = page.locator(f"[id='tile-{bed_a}']")
    assert tile.get_attribute("data-alarm") == "high"
    assert tile.evaluate("el => getComputedStyle(el).animationName") == "flash-high"
    assert page.get_attribute(f"[id='tile-{bed_a}-spo2']", "data-alarm") == "high"
    assert page.is_visible(f"[id='alarm-{alarm_a['id']}']")

    # Tones due from now on: bed B's high burst comes round (every 5 s); bed A's never.
    mark = page.evaluate("Date.now()")
    page.wait_for_function(
        f"window.vigil.tones.some(t => t.at > {mark} && t.bed === {json.dumps(bed_b)})",
        timeout=7000,
    )
    later = [t for t in page.evaluate("window.vigil.tones") if t["at"] > mark]
    assert [t["bed"] for t in later if t["bed"] == bed_a] == []
    assert [e for e in scheduled(page, bed_b) if e["kind"] == "high"]
    # The countdown ticks: the button's text moves on from what it said.
    page.wait_for_function(
        "([sel, before]) => (document.querySelector(sel)?.textContent ?? before) !== before",
        arg=[f"[id='pause-{bed_a}']", button],
        timeout=5000,
    )


def test_audio_pause_does_not_silence_an_alarm_that_starts_later_on_the_same_bed(
    sqlite_server: MonitorProcess, panel: PanelProcess, page: Any, device_factory: Any
) -> None:
    """The pause covers the alarms that existed when it was asked for (the monitor's rule);
    a new alarm on the paused bed sounds at once (clinical §4)."""
    bed = unique("pause")
    dev = device_factory(bed)
    quiet_ward(sqlite_server)
    open_ward(page, panel.url, bed)
    enable_sound(page)
    # Device time leaves room for the second episode: readings must come in order.
    sustain(dev, {"hr": 90, "spo2": 88, "rr": 12}, 20, ago=14)
    wait_scheduled(page, bed, "medium", timeout_ms=12_000)
    page.click(f"[id='pause-{bed}']")
    page.wait_for_function(
        f"document.getElementById('pause-{bed}')?.dataset.paused === 'true'", timeout=3000
    )
    mark = page.evaluate("Date.now()")
    # A heart rate over 140 for 10 s: a new, high alarm on the same bed.
    sustain(dev, {"hr": 150, "spo2": 88, "rr": 12}, 12)
    page.wait_for_function(
        f"window.vigil.tones.some(t => t.at > {mark} && t.bed === {json.dumps(bed)}"
        " && t.kind === 'high')",
        timeout=5000,
    )
    hr = next(
        a
        for a in sqlite_server.get("/api/alarms", bed=bed, active="true")["alarms"]
        if a["signal"] == "hr"
    )
    assert hr["priority"] == "high" and hr["audio_paused_until"] is None
    later = [t for t in page.evaluate("window.vigil.tones") if t["at"] > mark and t["bed"] == bed]
    assert later and {t["alarm"] for t in later} == {hr["id"]}


# --- 3. reports -------------------------------------------------------------------------------


def test_finished_sessions_reports_open_from_the_earlier_sessions_list(
    sqlite_server: MonitorProcess, panel: PanelProcess, page: Any, device_factory: Any
) -> None:
    """A finished session is reached from the bed's session list; its HTML report opens in a
    new tab and its CSV and FHIR R4 exports download with the session's own data."""
    bed, label = unique("report"), unique("PT")
    dev = device_factory(bed)
    session = sqlite_server.post("/api/sessions", {"bed": bed, "patient_label": label}).json()
    sid, opened = session["id"], parse_rfc3339(session["opened_at"])
    for i in range(4):
        # Measured after admission: the session's exports hold the readings of its span.
        ts = measure_after(opened)
        assert dev.send({"hr": 70 + i, "spo2": 97, "rr": 14}, ts=ts)["type"] == "ack"
    for kind in ("infusion_start", "infusion_stop", "end"):
        assert sqlite_server.post(f"/api/sessions/{sid}/events", {"type": kind}).status_code == 200

    login(page, panel.url)
    page.goto(f"{panel.url}/bed/{bed}")
    page.wait_for_selector("#admit-form", state="visible")  # nobody in the chair now
    page.click(f"#session-link-{sid}")
    page.wait_for_url(re.compile(rf"/bed/{re.escape(bed)}\?session={sid}$"))
    try:
        # The page is drawn again for the session, within the page's default wait.
        page.wait_for_selector("#report-html", state="visible")
    except PlaywrightTimeout as exc:
        raise AssertionError(f"no report links for session {sid}: {page_state(page)}") from exc
    assert page.get_attribute("#report-html", "data-session") == str(sid)
    assert "ended" in (page.text_content(f"#session-link-{sid}") or "")

    with page.expect_popup() as popup_info:
        page.click("#report-html")
    report = popup_info.value
    report.wait_for_url("blob:**")
    assert label in report.content()

    with page.expect_download() as csv_info:
        page.click("#report-csv")
    rows = list(csv.DictReader(io.StringIO(Path(csv_info.value.path()).read_text())))
    assert csv_info.value.suggested_filename == f"session-{sid}.csv"
    assert [(r["device_id"], r["hr"], r["spo2"]) for r in rows] == [
        (dev.device_id, str(70 + i), "97") for i in range(4)
    ]

    with page.expect_download() as fhir_info:
        page.click("#report-fhir")
    doc = json.loads(Path(fhir_info.value.path()).read_text())
    bundle = Bundle.model_validate(doc)
    assert fhir_info.value.suggested_filename == f"session-{sid}.fhir.json"
    assert bundle.type == "collection"
    kinds = [e.resource.get_resource_type() for e in bundle.entry or []]
    patient = next(
        e.resource for e in bundle.entry or [] if e.resource.get_resource_type() == "Patient"
    )
    assert patient.name[0].text == label
    # 4 readings x (hr, spo2, rr): every stored value is an Observation.
    assert kinds.count("Observation") == 12


def test_slow_html_report_still_opens_with_the_popup_blocker_on(
    sqlite_server: MonitorProcess, panel: PanelProcess, browser: Any
) -> None:
    """A report that takes longer than the browser's 5 s of user activation still opens: the
    tab is opened in the click itself (a nurse's browser blocks later popups; Playwright's
    default Chromium flags turn that blocker off, so this browser turns it back on)."""
    bed, label = unique("report"), unique("PT")
    sqlite_server.add_device(unique("dev"), bed)
    sid = sqlite_server.post("/api/sessions", {"bed": bed, "patient_label": label}).json()["id"]
    strict = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        ignore_default_args=["--disable-popup-blocking"],
    )
    try:
        page = strict.new_page()
        page.set_default_timeout(10_000)
        login(page, panel.url)
        page.goto(f"{panel.url}/bed/{bed}")
        page.wait_for_selector("#report-html", state="visible")
        assert page.get_attribute("#report-html", "data-session") == str(sid)

        def slow_monitor(route: Any) -> None:
            time.sleep(5.5)
            route.continue_()

        page.route("**/panel/api/sessions/*/report/html", slow_monitor)
        with page.expect_popup() as popup_info:
            page.click("#report-html")
        report = popup_info.value
        report.wait_for_url("blob:**")
        assert label in report.content()
    finally:
        strict.close()


# --- 4. HL7 -----------------------------------------------------------------------------------


def test_hl7_pcd01_cuff_reading_shows_on_its_tile_as_old_with_its_age(
    server_factory: Any, browser: Any, tmp_path: Path
) -> None:
    """A PCD-01 message sent over MLLP reaches its bed's tile (111/60 (80), PR 63); measured
    in 2011, it is shown stale with its age, never as a current value (clinical §4)."""
    hl7_port = free_port()
    monitor = server_factory(args=["--hl7-port", str(hl7_port)])
    monitor.add_user(NURSE[0], "nurse", NURSE[1])
    bed = unique("hl7")
    monitor.add_device(HL7_DEVICE, bed)
    panel = PanelProcess(monitor.base_url, tmp_path)
    panel.start()
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    try:
        page = context.new_page()
        page.set_default_timeout(10_000)
        open_ward(page, panel.url, bed)
        assert page.text_content(f"#tile-{bed}-bp-value") == "--/--"
        sent = subprocess.run(
            [str(MLLP_SEND), "--loose", "--file", str(HL7_DATA / "pcd01_episodic_nibp.hl7"),
             "--port", str(hl7_port), "127.0.0.1"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert sent.returncode == 0 and "MSA|AA" in sent.stdout, sent.stdout + sent.stderr
        page.wait_for_function(
            f"document.getElementById('tile-{bed}-bp-value')?.textContent === '111/60 (80)'",
            timeout=3000,
        )
        # The gateway's pulse rate (MDC 149546, from the cuff) is a pulse rate, not the ECG
        # heart rate: shown small beside HR, greyed as old (docs/panel.md).
        assert page.text_content(f"#tile-{bed}-hr-value") == "--"
        assert page.text_content(f"#tile-{bed}-pr-value") == "PR 63"
        assert page.get_attribute(f"#tile-{bed}-pr-value", "data-stale") == "true"
        years = time.gmtime().tm_year - 2011
        for vital in ("bp",):
            assert page.get_attribute(f"#tile-{bed}-{vital}", "data-stale") == "true"
            age = page.text_content(f"#tile-{bed}-{vital}-age") or ""
            assert age in (f"{years} y ago", f"{years - 1} y ago"), age
            assert page.is_visible(f"#tile-{bed}-{vital}-age")
        grey = page.locator(f"#tile-{bed}-bp-value").evaluate("el => getComputedStyle(el).color")
        assert grey == "rgb(111, 119, 130)"  # the stale grey, not a live colour
        # A fresh page draws the same from /api/beds, not only from the live message.
        page.reload()
        page.wait_for_selector(f"#tile-{bed}-bp-value")
        wait_feed_up(page)
        assert page.text_content(f"#tile-{bed}-bp-value") == "111/60 (80)"
        assert page.get_attribute(f"#tile-{bed}-bp", "data-stale") == "true"
    finally:
        context.close()
        panel.stop()


def test_tile_words_are_plain_ages_clocks_and_signal_names(panel: PanelProcess, page: Any) -> None:
    """docs/panel.md: the tiles' formatter says "3 min ago", "3 d ago", "15 y ago" (never
    "360 h"), clocks as 14:06, and an alarm as "SpO₂ below 90 %: medium" with integers."""
    page.goto(panel.url + "/")
    # The words come from the page's constants, which Dash renders after the scripts load:
    # wait for both, or a check's word is looked up before it exists.
    page.wait_for_function(
        "!!window.vigil?.fmt && !!document.querySelector('#vigil-config[data-constants]')"
    )
    ages = page.evaluate(
        "[59, 3599, 86399, 3 * 86400, 15.4 * 365.25 * 86400].map(a => window.vigil.fmt.ago(a))"
    )
    assert ages == ["59 s ago", "59 min ago", "23 h 59 min ago", "3 d ago", "15 y ago"]
    assert page.evaluate(
        "window.vigil.fmt.localClock(new Date(2026, 0, 2, 14, 6, 59).getTime())"
    ) == ("14:06")
    texts = page.evaluate(
        """[
          {kind: 'physiological', signal: 'spo2', priority: 'medium', condition: 'spo2 < 90',
           value: 88.4},
          {kind: 'physiological', signal: 'sbp', priority: 'high', condition: 'sbp >= 200.0'},
          {kind: 'technical', signal: 'spo2', priority: 'medium',
           condition: 'no SpO2 value from dev-1 for 30 s'},
          {kind: 'technical', signal: 'checkpoint', priority: 'low',
           condition: 'moaas check moaas-15 overdue'},
          {kind: 'technical', signal: 'device', priority: 'medium', device_id: 'dev-1',
           condition: 'no data from dev-1 for 10 s'},
        ].map(a => window.vigil.fmt.alarmText(a))"""
    )
    assert texts == [
        "SpO₂ below 90 % (now 88): medium",
        "Systolic BP at or above 200 mmHg: high",
        "No SpO₂ value from dev-1 for 30 s: medium",
        "MOAA/S check overdue: low",
        "No data from dev-1: medium",
    ]


# --- 5. the real simulator ----------------------------------------------------------------------


def test_simulated_bedside_monitor_values_appear_on_the_tile(
    sqlite_server: MonitorProcess, panel: PanelProcess, page: Any, tmp_path: Path
) -> None:
    """`python -m simulators demo --beds 1` streams through the real monitor to bed-1's tile:
    the tile shows, live, values the simulated device sent."""
    token = sqlite_server.add_device("sim-bed-1-mon", "bed-1")  # the demo's own ids
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(f"device_id,token\nsim-bed-1-mon,{token}\n")
    open_ward(page, panel.url, "bed-1")
    assert page.text_content("#tile-bed-1-hr-value") == "--"
    log = (tmp_path / "sim.log").open("wb")
    sim = subprocess.Popen(
        [sys.executable, "-m", "simulators", "demo", "--beds", "1", "--url", sqlite_server.ws_url,
         "--tokens", str(tokens), "--state-dir", str(tmp_path / "state"), "--seed", "7"],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        page.wait_for_function(
            "/^\\d+$/.test(document.getElementById('tile-bed-1-hr-value')?.textContent)",
            timeout=8000,
        )
        page.wait_for_function(
            "/^\\d+$/.test(document.getElementById('tile-bed-1-spo2-value')?.textContent)",
            timeout=3000,
        )
        # One read of the whole tile, so hr and spo2 come from the same repaint.
        shown = page.evaluate(
            "Object.fromEntries(['hr','spo2','rr','bp'].map(k => "
            "[k, document.getElementById('tile-bed-1-' + k + '-value').textContent]))"
        )
        sent = sqlite_server.get("/api/readings", bed="bed-1", limit=1000)["readings"]
        assert sent and {r["device_id"] for r in sent} == {"sim-bed-1-mon"}
        continuous = [r["values"] for r in sent if "hr" in r["values"]]
        assert any(
            str(round(v["hr"])) == shown["hr"] and str(round(v.get("spo2", -1))) == shown["spo2"]
            for v in continuous
        ), (shown, continuous[-3:])
        # Joining mid-session, the device first sends its last cuff reading.
        cuffs = [r["values"] for r in sent if "sbp" in r["values"]]
        assert cuffs and re.fullmatch(r"\d+/\d+ \(\d+\)", shown["bp"]), shown
        assert page.get_attribute("#tile-bed-1-hr", "data-stale") == "false"
        assert sim.poll() is None, "the simulator keeps streaming"
    finally:
        terminate(sim)
        log.close()


# --- 6. the empty trend -----------------------------------------------------------------------

# The trend's x range as epoch ms (Plotly draws naive local times; the browser parses them so).
TREND_RANGE = """() => {
  const gd = document.querySelector('#trend .js-plotly-plot');
  const r = gd?._fullLayout?.xaxis?.range;
  return r ? r.map(x => new Date(String(x).replace(' ', 'T')).getTime()) : null;
}"""


def test_open_session_without_readings_draws_its_trend_from_admission_to_now(
    sqlite_server: MonitorProcess, panel: PanelProcess, page: Any, device_factory: Any
) -> None:
    """Before the first reading of a session the trend's time axis spans the session's start
    to now (not Plotly's empty year 2000), and it follows the live points once they come."""
    bed = unique("trend")
    dev = device_factory(bed)
    session = sqlite_server.post("/api/sessions", {"bed": bed, "patient_label": "AX-1"}).json()
    opened = parse_rfc3339(session["opened_at"]) * 1000
    login(page, panel.url)
    page.goto(f"{panel.url}/bed/{bed}")
    page.wait_for_selector("#trend-wrap.live")
    wait_feed_up(page)
    shown = page.wait_for_function(TREND_RANGE).json_value()
    now = time.time() * 1000
    assert shown[0] <= opened + 1000 and opened - 60_000 <= shown[0], (shown, opened)
    assert now - 30_000 <= shown[1] <= now + 60_000, (shown, now)

    # The first live point lands inside the axis (it autoranges to the data from then on).
    later = time.time()
    assert dev.send({"hr": 72, "spo2": 97, "rr": 14}, ts=later)["type"] == "ack"
    page.wait_for_function(
        "document.querySelector('#trend .js-plotly-plot')?.data?.[0]?.y?.includes(72)"
    )
    page.wait_for_function(f"(({TREND_RANGE})() || [0, 0])[1] >= {later * 1000 - 1}")


def test_empty_trend_figure_spans_the_given_times_and_keeps_them_once_data_comes() -> None:
    """Pure: with no readings, trace 0 holds the span as two points without values (nothing is
    drawn, Plotly ranges on them); with readings, the span is an autorange include."""
    from dashboard import figures
    from monitor.core.model import to_rfc3339

    start, end = 1_795_600_000.0, 1_795_600_600.0
    empty = figures.trend_figure([], x_span=(start, end))
    hr = empty.data[0]
    assert list(hr.x) == [figures.local_x(start, 0), figures.local_x(end, 0)]
    assert list(hr.y) == [None, None]
    assert all(len(t.x) == 0 for t in empty.data[1:])
    row = {"ts": to_rfc3339(start + 60), "values": {"hr": 70}, "device_id": "d", "seq": 1}
    full = figures.trend_figure([row], x_span=(start, end))
    assert list(full.data[0].y) == [70]
    assert full.layout.xaxis.autorangeoptions.include == (
        figures.local_x(start, 0),
        figures.local_x(end, 0),
    )
