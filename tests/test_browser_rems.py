"""The esketamine REMS record on the panel in headless Chromium (docs/panel.md "REMS record",
docs/course.md "REMS record"): the ward list shows a record to sign, the bed page says what it
is missing in words and prints the form, a nurse's signature is refused, a charge nurse signs
it with a reason and marks it filed, and the ward list drops it; the list has no serious
accessibility violations."""

from __future__ import annotations

import time
from typing import Any

import pytest

from monitor.core.model import to_rfc3339
from tests.browser_support import (  # noqa: F401  (fixtures used by name)
    ISO_TIME,
    axe_serious,
    browser_fixture,
    device_factory_fixture,
    login,
    page_fixture,
    panel_fixture,
    unique,
    wait_text,
)
from tests.conftest import MonitorProcess
from tests.factories import REMS_CUFFS, REMS_EVENTS

pytestmark = pytest.mark.browser

CHARGE_PASSWORD = "charge-password-1"
REASON = "cuff failed at 40 min; manual BP 136/86 in the paper chart"


def _record_without_40_min_bp(server: MonitorProcess, dev: Any, bed: str) -> int:
    """The factory's complete esketamine session without its 40-minute cuff BP, dated so
    that it ended just now: its record misses only that BP."""
    opened = time.time() - 7_850
    body = {
        "bed": bed,
        "patient_label": unique("EK"),
        "patient_id": unique("MRN"),
        "protocol": "esketamine",
        "at": to_rfc3339(opened),
    }
    r = server.post("/api/sessions", body)
    assert r.status_code == 201, r.text
    sid = int(r.json()["id"])
    frames: list[tuple[float, dict[str, float], str | None]] = [
        (offset, {"sbp": sbp, "dbp": dbp}, "nibp")
        for i, (offset, sbp, dbp) in enumerate(REMS_CUFFS)
        if i != 1
    ]
    frames.append((7_650, {"hr": 72, "spo2": 97}, None))
    frames.sort(key=lambda f: f[0])
    for kind, offset, data in sorted(REMS_EVENTS, key=lambda e: e[1]):
        while frames and frames[0][0] <= offset:  # the readings measured before this event
            at, values, source = frames.pop(0)
            assert dev.send(values, ts=opened + at, source=source)["type"] == "ack"
        event: dict[str, Any] = {"type": kind, "at": to_rfc3339(opened + offset)}
        if data is not None:
            event["data"] = data
        answer = server.post(f"/api/sessions/{sid}/events", event)
        assert answer.status_code == 200, (kind, answer.text)
    return sid


def _ward_drawn(page: Any, panel_url: str) -> None:
    page.goto(f"{panel_url}/rems")
    page.wait_for_selector("#rems-table, #rems-empty")


def test_a_record_is_listed_explained_refused_signed_by_charge_filed_and_dropped(
    sqlite_server: MonitorProcess, panel: Any, page: Any, browser: Any, device_factory: Any
) -> None:
    """docs/course.md "REMS record": missing the 40-minute BP, the record is on the ward list
    with its days left; the bed page names the BP in words and prints MISSING; the nurse's
    Sign is refused in a sentence; a charge nurse's Sign without a reason is refused, with one
    it signs (who, reason shown); Mark filed records who; the ward list then drops it."""
    bed = unique("rems")
    charge = unique("charge")
    sqlite_server.add_user(charge, "charge", CHARGE_PASSWORD)
    sid = _record_without_40_min_bp(sqlite_server, device_factory(bed), bed)

    login(page, panel.url)
    page.click("#nav-rems")
    page.wait_for_selector(f"#rems-row-{sid}")
    row = page.inner_text(f"#rems-row-{sid}")
    assert bed in row and "7 days left" in row and "40 minutes" in row, row
    assert page.get_attribute(f"#rems-row-{sid}", "data-overdue") == "false"
    assert not ISO_TIME.findall(page.inner_text("#rems-page")) and "bp.40min" not in row
    assert axe_serious(page) == []

    page.click(f"#rems-open-{sid}")
    page.wait_for_selector("#rems-status [data-state=incomplete]")
    assert "1 field still missing" in page.inner_text("#rems-status")
    assert "40 minutes" in page.inner_text("#rems-missing")
    assert "Not signed yet" in page.inner_text("#rems-signoff")
    assert not page.is_visible("#rems-reason-fields") and not page.is_visible("#rems-filed")
    with page.expect_popup() as popup_info:
        page.click("#rems-print")
    form = popup_info.value
    form.wait_for_url("blob:**")
    assert "MISSING" in form.content()
    form.close()

    page.click("#rems-sign")
    refused = wait_text(page, "#rems-message", "cannot be signed yet")
    assert "40 minutes" in refused and "charge nurse" in refused
    assert "rems_incomplete" not in refused

    context = browser.new_context(viewport={"width": 1920, "height": 1080}, bypass_csp=True)
    try:
        lead = context.new_page()
        login(lead, panel.url, charge, CHARGE_PASSWORD)
        lead.goto(f"{panel.url}/bed/{bed}?session={sid}")
        lead.wait_for_selector("#rems-reason-fields", state="visible")
        lead.click("#rems-sign")
        assert "cannot be signed yet" in wait_text(lead, "#rems-message", "cannot be signed")
        lead.fill("#rems-reason", REASON)
        lead.click("#rems-sign")
        lead.wait_for_selector("#rems-status [data-state=signed]")
        signed = lead.inner_text("#rems-signed")
        assert f"Signed by {charge}" in signed and REASON in signed
        assert not lead.is_visible("#rems-sign")
        lead.click("#rems-filed")
        lead.wait_for_selector("#rems-status [data-state=filed]")
        assert f"Marked filed by {charge}" in lead.inner_text("#rems-filed-by")
        assert not ISO_TIME.findall(lead.inner_text("#rems-section"))
    finally:
        context.close()

    record = sqlite_server.get(f"/api/sessions/{sid}/rems")
    assert record["signed"]["incomplete_reason"] == REASON and record["filed"]["by"] == charge
    _ward_drawn(page, panel.url)
    assert page.locator(f"#rems-row-{sid}").count() == 0
