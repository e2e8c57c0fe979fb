"""A bed whose stored session history is impossible says so in plain words on its ward tile
and its bed page, in headless Chromium against the real monitor and panel, while the next
bed's tile reads as usual (docs/reliability.md, "An impossible session record is isolated";
docs/panel.md)."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.browser_support import (  # noqa: F401  (fixtures used by name)
    PanelProcess,
    browser_fixture,
    login,
    page_fixture,
    panel_fixture,
    unique,
    wait_attr,
    wait_feed_up,
    wait_text,
)
from tests.conftest import MonitorProcess
from tests.factories import store_impossible_events

pytestmark = pytest.mark.browser

# What must never reach a nurse's eye: event type keys, ISO stamps.
RAW = re.compile(r"\b[a-z]+_[a-z_]+\b|\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def _admit_infusing(srv: MonitorProcess, bed: str, label: str) -> int:
    srv.add_device(unique("mon"), bed)
    r = srv.post("/api/sessions", {"bed": bed, "patient_label": label})
    assert r.status_code in (200, 201), r.text
    sid = int(r.json()["id"])
    assert srv.post(f"/api/sessions/{sid}/events", {"type": "infusion_start"}).status_code == 200
    return sid


def test_the_tile_and_bed_page_of_a_bed_with_an_impossible_record_say_so_in_plain_words(
    sqlite_server: MonitorProcess, panel: PanelProcess, page: Any
) -> None:
    """The tile reads "Record needs attention: an infusion start that does not fit (event N).
    Ask an administrator."; the other bed's tile shows its infusion as usual."""
    bad_bed, good_bed = unique("chair-bad"), unique("chair-ok")
    bad = _admit_infusing(sqlite_server, bad_bed, "GH-78")
    _admit_infusing(sqlite_server, good_bed, "IJ-90")
    [event_id] = store_impossible_events(
        sqlite_server.db_url, bad, [("infusion_start", time.time())]
    )
    login(page, panel.url)
    wait_feed_up(page)
    want = (
        f"Record needs attention: an infusion start that does not fit (event {event_id}). "
        "Ask an administrator."
    )
    shown = wait_text(page, f"#tile-{bad_bed}-record", "Record needs attention")
    assert shown.strip() == want
    assert not RAW.search(shown)
    wait_attr(page, f"#tile-{bad_bed}", "data-record", "attention")
    assert page.get_attribute(f"#tile-{bad_bed}", "data-attention") == "true"
    # The rest of the ward as usual: the other tile infusing, no record line.
    wait_text(page, f"#tile-{good_bed}-phase", "Infusion")
    assert page.get_attribute(f"#tile-{good_bed}", "data-record") == "ok"
    assert page.inner_text(f"#tile-{good_bed}-record").strip() == ""
    assert not page.is_visible(f"#tile-{good_bed}-record")

    page.goto(f"{panel.url}/bed/{bad_bed}")
    assert wait_text(page, "#session-record", "Record needs attention").strip() == want
