"""Session reports from the real server (contract: report, report.csv, report.fhir.json)."""

from __future__ import annotations

import csv
import io

from fhir.resources.R4B.bundle import Bundle

from monitor.core.model import parse_rfc3339
from tests import http_client
from tests.conftest import MonitorProcess
from tests.inprocess import in_process_server  # noqa: F401  (the module's `server`)
from tests.wsclient import Device, measure_after


async def test_a_finished_session_reports_in_html_csv_and_valid_fhir(
    server: MonitorProcess,
) -> None:
    """Every reading in the CSV; a FHIR R4 Bundle that validates; printable HTML with events."""
    token = server.add_device("rep-mon", "rep-bed")
    s = server.post(
        "/api/sessions", {"bed": "rep-bed", "patient_label": "K-<b>17</b>", "age": 41}
    ).json()
    sid = s["id"]
    opened = parse_rfc3339(s["opened_at"])
    async with Device(server.ws_url, "rep-mon", token) as dev:
        for i in range(10):
            # Measured in the session's span (after admission), as the report holds its span.
            ts = measure_after(opened)
            assert (await dev.reading(i + 1, {"hr": 70 + i, "spo2": 97, "rr": 14}, ts=ts))[
                "type"
            ] == "ack"
        cuff = {"sbp": 130, "dbp": 85, "map": 100}
        assert (await dev.reading(50, cuff, ts=measure_after(opened), source="nibp"))[
            "type"
        ] == "ack"
    for ev in [
        {"type": "infusion_start"},
        {"type": "observation", "data": {"moaas": 4}},
        {"type": "infusion_stop"},
        {"type": "end"},
    ]:
        assert server.post(f"/api/sessions/{sid}/events", ev).status_code == 200
    h = server.headers
    html = http_client.get(f"{server.base_url}/api/sessions/{sid}/report", headers=h)
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert "K-&lt;b&gt;17&lt;/b&gt;" in html.text and "<b>17</b>" not in html.text
    assert "not a certified medical device" in html.text.lower()
    rows = list(
        csv.DictReader(
            io.StringIO(
                http_client.get(f"{server.base_url}/api/sessions/{sid}/report.csv", headers=h).text
            )
        )
    )
    assert len(rows) == 11
    fhir = http_client.get(
        f"{server.base_url}/api/sessions/{sid}/report.fhir.json", headers=h
    ).json()
    bundle = Bundle.model_validate(fhir)
    codes = {
        c.code
        for e in bundle.entry or []
        if e.resource.__resource_type__ == "Observation"
        for c in e.resource.code.coding
    }
    assert {"8867-4", "2708-6", "9279-1", "85354-9"} <= codes
    assert (
        http_client.get(f"{server.base_url}/api/sessions/999999/report", headers=h).status_code
        == 404
    )
