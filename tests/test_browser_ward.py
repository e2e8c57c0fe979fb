"""The ward as a nurse reads it across the room, in headless Chromium against the real monitor
and panel: sixteen chairs on one 1080p screen, plain words, a mini-trend per live tile, what
is due next, accessibility (axe-core), and the demo's alarm story."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulators.nurse import checklist_data
from tests.browser_support import (  # noqa: F401  (fixtures used by name)
    NURSE,
    PanelProcess,
    SyncDevice,
    axe_serious,
    browser_fixture,
    login,
    page_fixture,
    panel_fixture,
    unique,
    wait_feed_up,
)
from tests.conftest import MonitorProcess, clinic_config, terminate

pytestmark = pytest.mark.browser

BEDS = 16
ALARMING = 5  # the chair whose SpO2 falls
RECOVERY = 2  # the chair in recovery after an IV ketamine infusion
NASAL = 6  # the chair in baseline before intranasal esketamine
PATIENT = unique("MRN")  # the recovery chair's patient, in the second infusion of the course
# What must never reach a nurse's eye: ISO stamps, config keys, raw signal keys with an
# operator, protocol codes, floats where integers are meant.
RAW = [
    re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}"),
    re.compile(r"\b(hr|spo2|sbp|dbp|map|rr)\.(low|high)\b"),
    re.compile(r"\b(hr|spo2|sbp|dbp|map|rr)\s*(<|>|<=|>=)\s*\d"),
    re.compile(r"\b[a-z]+_[a-z_]+\b"),
    re.compile(r"\b\d+\.\d+\b"),
]


def bed_of(i: int) -> str:
    return f"chair-{i:02d}"


@pytest.fixture(scope="module", name="ward")
def ward_fixture(sqlite_server: MonitorProcess) -> Iterator[dict[str, Any]]:
    """Sixteen chairs on the module's own monitor, each with 15 minutes of history and a
    cuff reading; one desaturating, one in recovery, one in baseline, one infusing."""
    now = time.time()
    devices: dict[str, SyncDevice] = {}
    for i in range(1, BEDS + 1):
        dev = f"mon-{i:02d}"
        devices[bed_of(i)] = SyncDevice(
            sqlite_server.ws_url, dev, sqlite_server.add_device(dev, bed_of(i))
        )
    # The recovery chair's patient had one infusion before: this one is the second of six.
    earlier = sqlite_server.post(
        "/api/sessions",
        {"bed": bed_of(RECOVERY), "patient_label": "AB-12", "patient_id": PATIENT},
    ).json()
    for kind in ("infusion_start", "infusion_stop", "end"):
        r = sqlite_server.post(f"/api/sessions/{earlier['id']}/events", {"type": kind})
        assert r.status_code == 200, r.text
    recovery = sqlite_server.post(
        "/api/sessions",
        {
            "bed": bed_of(RECOVERY),
            "patient_label": "AB-12",
            "patient_id": PATIENT,
            "protocol": "iv-ketamine",
        },
    ).json()
    sqlite_server.post(
        "/api/sessions",
        {"bed": bed_of(NASAL), "patient_label": "GH-90", "patient_id": unique("MRN"),
         "protocol": "esketamine"},
    )  # fmt: skip
    baseline = sqlite_server.post(
        "/api/sessions", {"bed": bed_of(3), "patient_label": "CD-34"}
    ).json()
    infusing = sqlite_server.post(
        "/api/sessions", {"bed": bed_of(4), "patient_label": "EF-56"}
    ).json()
    for i, bed in enumerate(sorted(devices), start=1):
        d = devices[bed]
        # Every 30 s over the last 14 minutes, sent back to back (one round trip a chair).
        history = [
            ({"hr": 64.0 + i, "spo2": 97.0, "rr": 14.0}, now - 840 + 30 * k) for k in range(28)
        ]
        assert all(a["type"] == "ack" for a in d.send_all(history))
        cuff = {"sbp": 118 + i, "dbp": 76, "map": 90}
        assert d.send(cuff, ts=time.time(), source="nibp")["type"] == "ack"
    sid = recovery["id"]
    protocol = next(p for p in sqlite_server.get("/api/protocols") if p["id"] == "iv-ketamine")
    events = [
        {"type": "checklist", "data": checklist_data(protocol, now, 70.0)},
        {"type": "infusion_start"},
        {"type": "infusion_stop"},
    ]
    for body in events:
        r = sqlite_server.post(f"/api/sessions/{sid}/events", body)
        assert r.status_code == 200, r.text
    assert (
        sqlite_server.post(
            f"/api/sessions/{infusing['id']}/events", {"type": "infusion_start"}
        ).status_code
        == 200
    )
    # Judged on device time: 16 s below 85 % ending now is a sustained desaturation.
    end = time.time()
    devices[bed_of(ALARMING)].send_all(
        [({"hr": 92.0, "spo2": 82.0, "rr": 9.0}, end - 16 + k) for k in range(17)]
    )
    stop = threading.Event()

    def stream() -> None:
        # The chairs stay live (a device silent for 10 s is a technical alarm): 1 Hz each.
        while not stop.wait(1.0):
            for i, bed in enumerate(sorted(devices), start=1):
                values = {"hr": 92, "spo2": 82, "rr": 9} if i == ALARMING else {}
                devices[bed].send(values or {"hr": 64 + i, "spo2": 97, "rr": 14})

    streamer = threading.Thread(target=stream, daemon=True)
    streamer.start()
    try:
        yield {"devices": devices, "recovery": sid, "baseline": baseline["id"]}
    finally:
        stop.set()
        streamer.join(10)
        for d in devices.values():
            d.close()


def open_ward(page: Any, panel: PanelProcess) -> None:
    login(page, panel.url)
    page.wait_for_selector(f"[id='tile-{bed_of(BEDS)}']")
    wait_feed_up(page)
    page.wait_for_function(
        f"document.getElementById('tile-{bed_of(ALARMING)}')?.dataset.alarm === 'high'"
    )


def test_sixteen_chairs_fit_one_1080p_screen_without_scrolling(
    ward: dict[str, Any], panel: PanelProcess, page: Any
) -> None:
    """docs/panel.md: 16 tiles lie wholly inside a 1920x1080 viewport; the page does not
    scroll; numerals are at least 40 px (legible at 3 m)."""
    open_ward(page, panel)
    boxes = page.evaluate(
        """[...document.querySelectorAll('.tile')].map(t => {
             const r = t.getBoundingClientRect();
             return [t.dataset.bed, r.left, r.top, r.right, r.bottom];
           })"""
    )
    assert len(boxes) == BEDS
    for bed, left, top, right, bottom in boxes:
        assert left >= 0 and top >= 0 and right <= 1920 and bottom <= 1080, (bed, top, bottom)
    assert page.evaluate("document.scrollingElement.scrollHeight") <= 1080
    size = page.locator(f"[id='tile-{bed_of(1)}-hr-value']").evaluate(
        "el => parseFloat(getComputedStyle(el).fontSize)"
    )
    assert size >= 40


def test_ward_text_is_plain_words_never_keys_iso_times_or_floats(
    ward: dict[str, Any], panel: PanelProcess, page: Any
) -> None:
    """docs/panel.md: the visible ward says "SpO₂ below 85 %", "Recovery 00:12", "BP due in
    14 min", "3 min ago"; no raw key, ISO time or float anywhere in it."""
    open_ward(page, panel)
    page.wait_for_function(
        f"document.getElementById('tile-{bed_of(RECOVERY)}-due')?.textContent.includes('Discharge')"
    )
    text = page.inner_text("body")
    for pattern in RAW:
        assert not pattern.search(text), (pattern.pattern, pattern.search(text))
    status = page.inner_text(f"[id='tile-{bed_of(ALARMING)}-status']")
    assert re.fullmatch(r"!!! HIGH SpO₂ below 85 % \(now 82\): high", status), status
    phase = page.inner_text(f"[id='tile-{bed_of(RECOVERY)}-phase']")
    assert re.fullmatch(r"Recovery \d\d:\d\d", phase), phase
    assert re.fullmatch(r"Baseline \d\d:\d\d", page.inner_text(f"[id='tile-{bed_of(3)}-phase']"))
    due = page.inner_text(f"[id='tile-{bed_of(RECOVERY)}-due']")
    # The monitor's protocol status, in words: the recovery BP check 15 min after the stop,
    # and discharge not before 30 min after it (docs/protocols.md).
    assert re.search(r"BP due in 1[45] min", due), due
    assert re.search(r"Discharge blocked: .*\(not before \d\d:\d\d\)", due), due
    assert re.fullmatch(r"\d+ (s|min) ago", page.inner_text(f"[id='tile-{bed_of(1)}-bp-age']"))


def test_every_live_tile_draws_its_mini_trend_with_the_history(
    ward: dict[str, Any], panel: PanelProcess, page: Any
) -> None:
    """docs/panel.md: each tile draws the last 15 minutes of HR and SpO₂ (and cuff BP as
    points), fetched at load: every tile's canvas holds the points and visible pixels."""
    open_ward(page, panel)
    page.wait_for_function(
        "[...document.querySelectorAll('.tile-trend')].length === 16 && "
        "[...document.querySelectorAll('.tile-trend')].every(c => +c.dataset.points > 40)",
        timeout=15_000,
    )
    painted = page.evaluate(
        """[...document.querySelectorAll('.tile-trend')].map(c => {
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let lit = 0;
             for (let i = 3; i < d.length; i += 4) if (d[i] > 0) lit++;
             return lit;
           })"""
    )
    assert len(painted) == BEDS and all(n > 200 for n in painted), painted


def test_an_alarming_bed_is_marked_and_can_be_put_first(
    ward: dict[str, Any], panel: PanelProcess, page: Any
) -> None:
    """docs/panel.md: a bed with an active alarm is marked (colour, "!!!" and the word) and the
    "Alarms first" toggle, reachable by keyboard, moves it to the top-left."""
    open_ward(page, panel)
    tile = f"[id='tile-{bed_of(ALARMING)}']"
    assert page.get_attribute(tile, "data-attention") == "true"
    assert page.get_attribute(f"[id='tile-{bed_of(1)}']", "data-attention") == "false"
    page.focus("#order-toggle")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('order-toggle').dataset.order === 'attention'")
    first = page.evaluate(
        """[...document.querySelectorAll('.tile')]
             .map(t => [t.dataset.bed, t.getBoundingClientRect().top, t.getBoundingClientRect().left])
             .sort((a, b) => a[1] - b[1] || a[2] - b[2])[0][0]"""
    )
    assert first == bed_of(ALARMING)
    assert "first" in page.inner_text("#announce")


def test_a_tile_says_where_the_session_stands_in_its_course_and_links_to_it(
    ward: dict[str, Any], panel: PanelProcess, page: Any
) -> None:
    """docs/panel.md, docs/course.md: "Infusion 2 of 6" on the tile of a patient's second
    infusion ("Session 1 of 8" for esketamine), nothing without a patient; the tile's own
    "Course" link, the next tab stop after the bed link, opens the patient's course page."""
    open_ward(page, panel)
    course_n = f"document.getElementById('tile-{bed_of(RECOVERY)}-course-n')"
    page.wait_for_function(f"{course_n}?.textContent === 'Infusion 2 of 6'")
    assert page.inner_text(f"[id='tile-{bed_of(NASAL)}-course-n']") == "Session 1 of 8"
    for bare in (1, 4):  # no session; a session admitted without a patient ID
        assert page.inner_text(f"[id='tile-{bed_of(bare)}-course-n']") == ""
        assert not page.is_visible(f"[id='tile-{bed_of(bare)}-course-link']")
    assert page.evaluate(
        """[[{n: 3, planned: 6}, 'iv-ketamine'], [{n: 7, planned: 6}, 'iv-ketamine'],
            [{n: 3, planned: 8}, 'esketamine'], [null, 'iv-ketamine']]
             .map(([c, p]) => window.vigil.fmt.courseText(c, p))"""
    ) == ["Infusion 3 of 6", "Infusion 7 (series of 6)", "Session 3 of 8", ""]
    link = f"[id='tile-{bed_of(RECOVERY)}-course-link']"
    assert page.get_attribute(link, "aria-label") == "Course of patient AB-12"
    assert page.inner_text(link) == "Course"
    name = f"[id='tile-{bed_of(RECOVERY)}-name']"
    assert page.get_attribute(name, "href") == f"/bed/{bed_of(RECOVERY)}"
    page.focus(name)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == f"tile-{bed_of(RECOVERY)}-course-link"
    page.keyboard.press("Enter")
    page.wait_for_selector("#course-table")
    assert page.url.endswith(f"/patient/{PATIENT}")
    assert page.locator("#course-table tbody tr").count() == 2


def test_axe_finds_nothing_serious_on_the_login_page_and_the_ward(
    ward: dict[str, Any], panel: PanelProcess, page: Any
) -> None:
    """docs/panel.md: axe-core finds no serious or critical violation on the login page and on
    the ward with an alarm showing."""
    page.goto(panel.url + "/")
    page.wait_for_selector("#login-submit")
    assert axe_serious(page) == []
    open_ward(page, panel)
    page.wait_for_selector(".alarm-row")
    assert axe_serious(page) == []


def test_every_ward_control_is_reachable_by_keyboard_and_sound_is_announced(
    ward: dict[str, Any], panel: PanelProcess, page: Any
) -> None:
    """docs/panel.md: Tab reaches the sound and order toggles, log out, every bed's link and
    the alarm's acknowledge button; switching sound on is announced (aria-live)."""
    open_ward(page, panel)
    page.wait_for_selector(".ack-btn")
    reached: set[str] = set()
    for _ in range(80):
        page.keyboard.press("Tab")
        ident = page.evaluate("document.activeElement?.id || ''")
        reached.add(ident)
    want = {"sound-toggle", "order-toggle", "logout"}
    want |= {f"tile-{bed_of(i)}-name" for i in range(1, BEDS + 1)}
    ack = page.get_attribute(".ack-btn", "id")
    want.add(str(ack))
    assert want <= reached, sorted(want - reached)
    assert page.get_attribute("#announce", "aria-live") == "polite"
    page.focus("#sound-toggle")
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('sound-toggle').dataset.sound === 'on'")
    assert page.get_attribute("#sound-toggle", "aria-pressed") == "true"
    assert "Sound on" in page.inner_text("#announce")


# --- the demo's alarm story -------------------------------------------------------------------

# At 5x the demo's 75 s device silence is 15 s of wall time, well past the 10 s no-data
# timeout judged on the monitor's own clock.
SPEED = 5.0
FAST_ENV = {"VIGIL_DEVICE_RATE_PER_S": "100000", "VIGIL_DEVICE_RATE_BURST": "100000"}


def test_demo_ward_shows_its_alarm_story_within_three_minutes(
    server_factory: Any, browser: Any, tmp_path: Path
) -> None:
    """docs/simulators.md: within three minutes of demo time the six-bed demo has a
    physiological alarm on the ward, a bed in recovery, and a technical alarm that cleared."""
    srv = server_factory(env=FAST_ENV)
    lines = ["device_id,token"]
    for i in range(1, 7):
        lines.append(f"sim-bed-{i}-mon,{srv.add_device(f'sim-bed-{i}-mon', f'bed-{i}')}")
    (tmp_path / "tokens.csv").write_text("\n".join(lines) + "\n")
    driver = (unique("driver"), "driver-password-1")
    srv.add_user(driver[0], "charge", driver[1])
    srv.add_user(NURSE[0], "nurse", NURSE[1])
    panel = PanelProcess(srv.base_url, tmp_path)
    panel.start()
    log = (tmp_path / "sim.log").open("wb")
    started = time.monotonic()
    sim = subprocess.Popen(
        [sys.executable, "-m", "simulators", "demo", "--beds", "6", "--url", srv.ws_url,
         "--speed", str(SPEED), "--tokens", "tokens.csv", "--state-dir", "state",
         "--user", driver[0], "--password", driver[1],
         "--protocols", "iv-ketamine,esketamine"],
        cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, bypass_csp=True)
    try:
        page = context.new_page()
        login(page, panel.url)
        wait_feed_up(page, 20_000)
        # Three minutes of demo time, plus start-up of the simulator's processes.
        deadline = started + 180 / SPEED + 20
        story: dict[str, Any] = {}
        while time.monotonic() < deadline and len(story) < 3:
            alarms = srv.get("/api/alarms")["alarms"]
            physio = [a for a in alarms if a["kind"] == "physiological" and a["priority"] != "low"]
            if physio:
                story.setdefault("physiological", physio[0])
            cleared = [a for a in alarms if a["kind"] == "technical" and a["ended_at"]]
            if cleared:
                story.setdefault("technical cleared", cleared[0])
            phases = [s["phase"] for s in srv.get("/api/sessions", open="true")["sessions"]]
            if "recovery" in phases:
                story.setdefault("recovery", True)
            time.sleep(0.5)
        assert set(story) == {"physiological", "technical cleared", "recovery"}, (
            story,
            (tmp_path / "sim.log").read_text()[-2000:],
        )
        bed = story["physiological"]["bed"]
        page.wait_for_function(
            f"document.getElementById('tile-{bed}')?.dataset.alarmKind === 'physiological'",
            timeout=5000,
        )
        assert page.locator(".alarm-row[data-kind='physiological']").count() >= 1
        page.wait_for_function(
            "[...document.querySelectorAll('.tile')].some(t => t.dataset.phase === 'recovery')",
            timeout=5000,
        )
    finally:
        context.close()
        terminate(sim)
        log.close()
        panel.stop()


def test_an_overdue_protocol_check_shows_on_its_tile_and_marks_the_bed(
    server_factory: Any, browser: Any, tmp_path: Path
) -> None:
    """docs/panel.md, docs/protocols.md: the monitor's checkpoint status reaches the tile in
    words ("MOAA/S due in 5 s", then "MOAA/S overdue 4 s") and an overdue check marks the bed,
    as the monitor judges it (the panel only shows)."""
    quick = {
        "label": "A sedation score due 6 s after admission",
        "checkpoints": [
            {"id": "moaas-soon", "kind": "moaas", "anchor": "admission", "offset_min": 0.1,
             "window_min": 0.05},
        ],
    }  # fmt: skip
    path = clinic_config(
        tmp_path, lambda config: config["protocols"].update({"quick-check": quick})
    )
    srv = server_factory(env={"VIGIL_CLINIC_CONFIG": str(path)})
    srv.add_user(NURSE[0], "nurse", NURSE[1])
    bed = unique("chk")
    srv.add_device(unique("dev"), bed)
    panel = PanelProcess(srv.base_url, tmp_path)
    panel.start()
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, bypass_csp=True)
    try:
        page = context.new_page()
        login(page, panel.url)
        page.wait_for_selector(f"[id='tile-{bed}']")
        wait_feed_up(page)
        r = srv.post(
            "/api/sessions", {"bed": bed, "patient_label": "GH-78", "protocol": "quick-check"}
        )
        assert r.status_code in (200, 201), r.text
        due = f"document.getElementById('tile-{bed}-due')"
        page.wait_for_function(f"/^MOAA\\/S due (in \\d+ s|now)$/.test({due}?.textContent)")
        page.wait_for_function(f"{due}?.dataset.due === 'overdue'", timeout=30_000)
        assert re.fullmatch(r"MOAA/S overdue \d+ s", page.inner_text(f"[id='tile-{bed}-due']"))
        assert page.get_attribute(f"[id='tile-{bed}']", "data-attention") == "true"
        session = srv.get("/api/sessions", bed=bed, open="true")["sessions"][0]
        full = srv.get(f"/api/sessions/{session['id']}")
        assert [c["status"] for c in full["checkpoints"]] == ["overdue"]
    finally:
        context.close()
        panel.stop()
