"""Session membership by measurement time, through the real server on SQLite and PostgreSQL
(docs/reliability.md, "A reading belongs to the session of its measurement time").

Every time below is the real clock: a device "measures" by reading it and may send the
reading much later (store-and-forward), the way a buffered backlog reaches the monitor.
"""

from __future__ import annotations

import csv
import io
import re
import time
from typing import Any

from monitor.core.model import parse_rfc3339, to_rfc3339
from tests import http_client
from tests.conftest import MonitorProcess
from tests.inprocess import in_process_server  # noqa: F401  (the module's `server`)
from tests.wsclient import Device, measure_after

HR = {"hr": 72.0, "spo2": 97.0, "rr": 14.0}


def admit(server: MonitorProcess, bed: str, label: str) -> tuple[int, float]:
    r = server.post("/api/sessions", {"bed": bed, "patient_label": label})
    assert r.status_code == 201, r.text
    body = r.json()
    return int(body["id"]), parse_rfc3339(body["opened_at"])


def event(server: MonitorProcess, sid: int, kind: str, at: float | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": kind}
    if at is not None:
        body["at"] = to_rfc3339(at)
    r = server.post(f"/api/sessions/{sid}/events", body)
    assert r.status_code == 200, r.text
    return dict(r.json())


def session_seqs(server: MonitorProcess, sid: int) -> list[int]:
    return [r["seq"] for r in server.get("/api/readings", session=sid)["readings"]]


def bed_seqs(server: MonitorProcess, bed: str) -> list[int]:
    return [r["seq"] for r in server.get("/api/readings", bed=bed)["readings"]]


def csv_seqs(server: MonitorProcess, sid: int) -> list[int]:
    r = http_client.get(f"{server.base_url}/api/sessions/{sid}/report.csv", headers=server.headers)
    assert r.status_code == 200
    return [int(row["seq"]) for row in csv.DictReader(io.StringIO(r.text))]


def fhir_seqs(server: MonitorProcess, sid: int) -> set[int]:
    bundle = server.get(f"/api/sessions/{sid}/report.fhir.json")
    return {
        int(ident["value"].split("/")[1])
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "Observation"
        for ident in e["resource"]["identifier"]
    }


def html_reading_count(server: MonitorProcess, sid: int) -> int:
    r = http_client.get(f"{server.base_url}/api/sessions/{sid}/report", headers=server.headers)
    assert r.status_code == 200
    found = re.search(r"<b>Readings</b></td><td>(\d+)", r.text)
    assert found is not None
    return int(found.group(1))


async def test_a_backlog_measured_in_one_session_lands_in_it_after_the_next_admission(
    server: MonitorProcess,
) -> None:
    """Readings measured during A's session and sent after A ended and B began are A's: in
    A's readings, report, CSV and FHIR bundle, not B's (docs/reliability.md)."""
    bed, dev_id = "mem-bed-1", "mem-mon-1"
    token = server.add_device(dev_id, bed)
    a, a_opened = admit(server, bed, "Patient A")
    async with Device(server.ws_url, dev_id, token) as dev:
        # Two readings reach the monitor live; the next four are buffered on the device.
        for seq in (1, 2):
            assert (await dev.reading(seq, HR, ts=measure_after(a_opened)))["type"] == "ack"
        backlog = [(seq, measure_after(a_opened)) for seq in (3, 4, 5, 6)]
        event(server, a, "end")
        b, b_opened = admit(server, bed, "Patient B")
        assert (await dev.reading(7, HR, ts=measure_after(b_opened)))["type"] == "ack"
        # Now the backlog arrives, all of it measured before A's end.
        for seq, ts in backlog:
            assert (await dev.reading(seq, {**HR, "hr": 60.0 + seq}, ts=ts))["type"] == "ack"

    assert session_seqs(server, a) == [1, 2, 3, 4, 5, 6]
    assert session_seqs(server, b) == [7]
    assert csv_seqs(server, a) == [1, 2, 3, 4, 5, 6]
    assert csv_seqs(server, b) == [7]
    assert fhir_seqs(server, a) == {1, 2, 3, 4, 5, 6}
    assert fhir_seqs(server, b) == {7}
    assert html_reading_count(server, a) == 6
    assert html_reading_count(server, b) == 1
    # B's session page and its paging stay B's: asking for B's readings from A's start on
    # gives nothing of A's.
    page = server.get("/api/readings", session=b, since=to_rfc3339(a_opened))["readings"]
    assert [r["seq"] for r in page] == [7]


async def test_a_reading_between_two_sessions_belongs_to_neither(server: MonitorProcess) -> None:
    """A reading measured after A's end and before B's admission is the bed's only: in the
    bed's readings, in neither session's readings nor reports (docs/reliability.md)."""
    bed, dev_id = "mem-bed-2", "mem-mon-2"
    token = server.add_device(dev_id, bed)
    a, a_opened = admit(server, bed, "Patient A")
    async with Device(server.ws_url, dev_id, token) as dev:
        assert (await dev.reading(1, HR, ts=measure_after(a_opened)))["type"] == "ack"
        a_ended = parse_rfc3339(event(server, a, "end")["ended_at"])
        between = measure_after(a_ended)
        b, b_opened = admit(server, bed, "Patient B")
        assert (await dev.reading(3, HR, ts=measure_after(b_opened)))["type"] == "ack"
        assert (await dev.reading(2, HR, ts=between))["type"] == "ack"

    assert bed_seqs(server, bed) == [1, 2, 3]
    assert session_seqs(server, a) == [1]
    assert session_seqs(server, b) == [3]
    assert csv_seqs(server, a) == [1] and csv_seqs(server, b) == [3]
    assert fhir_seqs(server, a) == {1} and fhir_seqs(server, b) == {3}


async def test_a_backdated_end_moves_the_session_boundary(server: MonitorProcess) -> None:
    """An end recorded late with an earlier ``at`` ends the span at that ``at``: a reading
    measured after it leaves the session, though it was the session's while it was open
    (docs/reliability.md)."""
    bed, dev_id = "mem-bed-3", "mem-mon-3"
    token = server.add_device(dev_id, bed)
    a, a_opened = admit(server, bed, "Patient A")
    async with Device(server.ws_url, dev_id, token) as dev:
        before = measure_after(a_opened)
        assert (await dev.reading(1, HR, ts=before))["type"] == "ack"
        left_at = measure_after(before)  # the patient left here; the nurse records it later
        after = measure_after(left_at)
        assert (await dev.reading(2, HR, ts=after))["type"] == "ack"
        assert session_seqs(server, a) == [1, 2]  # open: both are in its span
        ended = event(server, a, "end", at=left_at)
    assert ended["ended_at"] == to_rfc3339(left_at)
    assert session_seqs(server, a) == [1]
    assert csv_seqs(server, a) == [1] and fhir_seqs(server, a) == {1}
    assert bed_seqs(server, bed) == [1, 2]
    # The next patient admitted afterwards does not inherit it either.
    b, _ = admit(server, bed, "Patient B")
    assert session_seqs(server, b) == []


async def test_the_baseline_is_the_median_of_this_sessions_baseline_phase_only(
    server: MonitorProcess,
) -> None:
    """infusion_start sets the baseline from the readings measured in this session's baseline
    phase: not the previous patient's backlog arriving late, not readings from before
    admission, not readings after a backdated infusion_start (docs/reliability.md)."""
    bed, dev_id = "mem-bed-4", "mem-mon-4"
    token = server.add_device(dev_id, bed)
    prev, prev_opened = admit(server, bed, "Patient P")
    async with Device(server.ws_url, dev_id, token) as dev:
        prev_backlog = [(seq, measure_after(prev_opened)) for seq in (1, 2, 3)]
        prev_ended = parse_rfc3339(event(server, prev, "end")["ended_at"])
        before_admission = measure_after(prev_ended)
        a, a_opened = admit(server, bed, "Patient A")
        seq = 10
        for hr in (70.0, 72.0, 74.0):
            seq += 1
            reading = {"hr": hr, "spo2": 97.0}
            assert (await dev.reading(seq, reading, ts=measure_after(a_opened)))["type"] == "ack"
        started = measure_after(time.time())  # infusion started here, recorded later
        for hr in (150.0, 152.0, 154.0, 156.0):
            seq += 1
            assert (await dev.reading(seq, {"hr": hr}, ts=measure_after(started)))["type"] == "ack"
        # The previous patient's backlog and a reading from the empty chair arrive late.
        for s, ts in prev_backlog:
            assert (await dev.reading(s, {"hr": 120.0, "spo2": 88.0}, ts=ts))["type"] == "ack"
        assert (await dev.reading(4, {"hr": 130.0}, ts=before_admission))["type"] == "ack"
        session = event(server, a, "infusion_start", at=started)
    assert session["baseline"] == {"hr": 72.0, "spo2": 97.0}
    assert session_seqs(server, prev) == [1, 2, 3]


async def test_an_end_dated_after_the_next_admission_yields_to_it(server: MonitorProcess) -> None:
    """An end dated ahead (within the clock tolerance) does not make two patients share a
    moment: from the next admission on, the bed's readings are the new session's
    (docs/reliability.md)."""
    bed, dev_id = "mem-bed-5", "mem-mon-5"
    token = server.add_device(dev_id, bed)
    a, a_opened = admit(server, bed, "Patient A")
    async with Device(server.ws_url, dev_id, token) as dev:
        assert (await dev.reading(1, HR, ts=measure_after(a_opened)))["type"] == "ack"
        ended = event(server, a, "end", at=time.time() + 120)
        b, b_opened = admit(server, bed, "Patient B")
        assert parse_rfc3339(ended["ended_at"]) > b_opened
        assert (await dev.reading(2, HR, ts=measure_after(b_opened)))["type"] == "ack"
    assert session_seqs(server, a) == [1]
    assert session_seqs(server, b) == [2]
    assert csv_seqs(server, a) == [1] and csv_seqs(server, b) == [2]
