"""The REST API's one error shape and its configuration-bounded bodies, against the real
monitor (docs/api.md): every refusal is {"detail": {"code", "message", ...}} with a stable
code, 422s name the fields at fault, every operation declares what it can answer, and the
bounds of limits and audio pause are the clinic configuration's."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy.exc import IntegrityError

from monitor.edges.api.errors import ErrorBody, ValidationErrorBody, is_unique_violation
from tests import http_client
from tests.conftest import PG_ADMIN_DSN, MonitorProcess, clinic_config
from tests.inprocess import in_process_server  # noqa: F401  (the module's `server`)


def _refusal(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    model = ValidationErrorBody if status == 422 else ErrorBody
    model.model_validate(body)
    assert body["detail"]["code"] == code and body["detail"]["message"], body
    return dict(body["detail"])


def test_every_kind_of_refusal_has_the_one_error_shape(server: MonitorProcess) -> None:
    """401, 403, 404, 405, 409 and 422 all answer {"detail": {"code", "message"}}."""
    url = server.base_url
    server.add_device("e-dev", "e-bed")
    server.add_user("e-nurse", "nurse", "nurse-password")
    nurse = {"Authorization": f"Bearer {server.login('e-nurse', 'nurse-password')}"}
    s = server.post("/api/sessions", {"bed": "e-bed", "patient_label": "E"}).json()

    no_token = http_client.get(f"{url}/api/beds")
    _refusal(no_token, 401, "unauthenticated")
    assert no_token.headers["www-authenticate"] == "Bearer"
    _refusal(http_client.get(f"{url}/api/audit", headers=nurse), 403, "forbidden")
    _refusal(
        http_client.get(f"{url}/api/sessions/999999", headers=server.headers), 404, "not_found"
    )
    _refusal(http_client.get(f"{url}/api/nothing-here", headers=server.headers), 404, "not_found")
    _refusal(
        http_client.delete(f"{url}/api/beds", headers=server.headers), 405, "method_not_allowed"
    )
    again = server.post("/api/sessions", {"bed": "e-bed", "patient_label": "E2"})
    _refusal(again, 409, "bed_occupied")
    pause = server.post(f"/api/sessions/{s['id']}/events", {"type": "infusion_pause"})
    assert "baseline" in _refusal(pause, 409, "event_not_allowed")["message"]
    assert server.post(f"/api/sessions/{s['id']}/events", {"type": "end"}).status_code == 200
    ended = server.post(f"/api/sessions/{s['id']}/events", {"type": "observation"})
    _refusal(ended, 409, "session_ended")


@pytest.mark.parametrize(
    ("method", "path", "kw", "loc"),
    [
        (
            "post",
            "/api/sessions",
            {"json": {"bed": "e bed", "patient_label": "P"}},
            ["body", "bed"],
        ),
        ("get", "/api/readings", {"params": {"since": "yesterday"}}, ["query", "since"]),
        ("get", "/api/alarms", {"params": {"bed": "a/b"}}, ["query", "bed"]),
        ("get", "/api/sessions/0", {}, ["path", "session_id"]),
        ("get", "/api/beds", {"params": {"x": "\x00"}}, ["query"]),
        ("post", "/api/sessions", {"content": b'{"bed": NaN}'}, ["body"]),
        ("post", "/api/sessions/1/events", {"json": {"type": "dance"}}, ["body"]),
        (
            "post",
            "/api/sessions/1/events",
            {"json": {"type": "observation", "data": {"moaas": 6}}},
            ["body", "observation", "data", "moaas"],
        ),
        (
            "post",
            "/api/sessions/1/events",
            {"json": {"type": "observation", "data": {"mood": "ok"}}},
            ["body", "observation", "data", "mood"],
        ),
    ],
)
def test_a_bad_field_is_a_422_that_names_it(
    server: MonitorProcess, method: str, path: str, kw: dict[str, Any], loc: list[Any]
) -> None:
    """Request validation uses the one shape too, with the fields at fault."""
    headers = {**server.headers}
    if "content" in kw:
        headers["Content-Type"] = "application/json"
    r = http_client.request(method, f"{server.base_url}{path}", headers=headers, timeout=10, **kw)
    detail = _refusal(r, 422, "invalid_request")
    assert any(f["loc"][: len(loc)] == loc for f in detail["fields"]), detail


def test_each_observation_kind_is_accepted_as_today(server: MonitorProcess) -> None:
    """MOAA/S 0-5, CADSS-6 0-24, side effect, medication and note, alone or together."""
    server.add_device("o-dev", "o-bed")
    sid = server.post("/api/sessions", {"bed": "o-bed", "patient_label": "O"}).json()["id"]
    for data in (
        {"moaas": 0},
        {"moaas": 5},
        {"cadss6": 24, "note": "calm, talking"},
        {"side_effect": "nausea", "medication": "ondansetron 4 mg IV"},
        {},
    ):
        r = server.post(f"/api/sessions/{sid}/events", {"type": "observation", "data": data})
        assert r.status_code == 200, (data, r.text)
        assert r.json()["events"][-1]["data"] == data
    started = {"type": "infusion_start", "data": {"dose_mg_per_kg": 0.5}}
    assert server.post(f"/api/sessions/{sid}/events", started).status_code == 200


def test_an_event_dated_long_ago_leaves_the_session_and_its_reports_readable(
    server: MonitorProcess,
) -> None:
    """Times before year 1000 are written with four-digit years (RFC 3339) and read back;
    one that an offset carries out of years 1-9999 is a 422 (both used to end in a 500)."""
    server.add_device("y-dev", "y-bed")
    sid = server.post("/api/sessions", {"bed": "y-bed", "patient_label": "Y"}).json()["id"]
    year_zero = {"type": "observation", "at": "0001-01-01T00:00:00+01:00"}
    detail = _refusal(server.post(f"/api/sessions/{sid}/events", year_zero), 422, "invalid_request")
    assert detail["fields"][0]["loc"] == ["body", "at"]
    at = "0365-10-08T21:27:42.000Z"
    r = server.post(f"/api/sessions/{sid}/events", {"type": "end", "at": at})
    assert r.status_code == 200, r.text
    assert r.json()["events"][-1]["at"] == at
    for report in ("report", "report.csv", "report.fhir.json"):
        got = http_client.get(
            f"{server.base_url}/api/sessions/{sid}/{report}", headers=server.headers
        )
        assert got.status_code == 200, (report, got.text[:300])


def test_every_operation_declares_the_errors_it_can_answer(server: MonitorProcess) -> None:
    """/openapi.json: each /api operation declares 401, 422 and 503 with the error shape."""
    doc = http_client.get(f"{server.base_url}/openapi.json").json()
    for path, ops in doc["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method, op in ops.items():
            answers = op["responses"]
            for status in ("401", "422", "503"):
                schema = answers[status]["content"]["application/json"]["schema"]
                want = "ValidationErrorBody" if status == "422" else "ErrorBody"
                assert schema["$ref"].endswith(f"/{want}"), (method, path, status)
            if "{" in path:
                assert "404" in answers, (method, path)
    assert "409" in doc["paths"]["/api/sessions/{session_id}/events"]["post"]["responses"]
    assert "429" in doc["paths"]["/api/auth/token"]["post"]["responses"]
    links = doc["paths"]["/api/sessions"]["post"]["responses"]["201"]["links"]
    assert links["session_add_event"] == {
        "operationId": "add_event",
        "parameters": {"session_id": "$response.body#/id"},
    }


def test_a_422_logs_no_deprecation_warning(server_factory: Any) -> None:
    """Refusing bad requests, of each kind, leaves the monitor's log free of Starlette's
    deprecation warnings (its HTTP_422_UNPROCESSABLE_ENTITY name is deprecated)."""
    server = server_factory()  # a fresh process: Python warns once per place and process
    for path in ("/api/readings?since=soon", "/api/beds?x=%00", "/api/sessions/0"):
        r = http_client.get(f"{server.base_url}{path}", headers=server.headers)
        assert r.status_code == 422, (path, r.text)
    r = server.post("/api/sessions", {"bed": "no such bed!", "patient_label": "P"})
    assert r.status_code == 422
    assert "StarletteDeprecationWarning" not in server.log_text()


def test_limit_and_pause_bounds_are_the_clinic_configs(app_factory: Any, tmp_path: Path) -> None:
    """The clinic file's audio_pause_max_s and override_bounds are the API's and the
    document's bounds: just inside is accepted, just outside is a 422, never a 500."""
    bounds = {"spo2": [82, 93], "hr": [30, 180], "sbp": [70, 230], "dbp": [40, 140]}
    path = clinic_config(
        tmp_path, lambda config: config.update(audio_pause_max_s=200, override_bounds=bounds)
    )
    server = app_factory(clinic_config=path)
    doc = http_client.get(f"{server.base_url}/openapi.json").json()["components"]["schemas"]
    seconds = doc["AudioPause"]["properties"]["seconds"]["anyOf"][0]
    assert seconds["maximum"] == 200
    spo2 = doc["Spo2Thresholds"]["properties"]["medium"]
    assert (spo2["minimum"], spo2["maximum"]) == (82, 93)
    assert "map" not in doc["LimitOverrides"]["properties"]  # not overridable in this clinic

    server.add_device("b-dev", "b-bed")
    pause = "/api/beds/b-bed/audio-pause"
    assert server.post(pause, {"seconds": 200}).status_code == 200
    detail = _refusal(server.post(pause, {"seconds": 201}), 422, "invalid_request")
    assert detail["fields"][0]["loc"] == ["body", "seconds"]

    sid = server.post("/api/sessions", {"bed": "b-bed", "patient_label": "B"}).json()["id"]
    limits = f"{server.base_url}/api/sessions/{sid}/limits"
    ok = http_client.put(
        limits, json={"overrides": {"spo2": {"low": {"medium": 92}}}}, headers=server.headers
    )
    assert ok.status_code == 200, ok.text
    out = http_client.put(
        limits, json={"overrides": {"spo2": {"low": {"medium": 94}}}}, headers=server.headers
    )
    _refusal(out, 422, "invalid_request")
    unknown = http_client.put(
        limits, json={"overrides": {"map": {"low": {"medium": 60}}}}, headers=server.headers
    )
    _refusal(unknown, 422, "invalid_request")
    assert "Exception in ASGI application" not in server.log_text()


def test_the_default_pause_bound_is_the_engines(server: MonitorProcess) -> None:
    """599 s used to pass the API and crash in the engine (500); now 422, as the config says."""
    server.add_device("p-dev", "p-bed")
    detail = _refusal(
        server.post("/api/beds/p-bed/audio-pause", {"seconds": 599}), 422, "invalid_request"
    )
    assert "300" in detail["message"]
    assert server.post("/api/beds/p-bed/audio-pause", {"seconds": 300}).status_code == 200


def test_thresholds_out_of_order_are_refused_before_they_are_stored(server: MonitorProcess) -> None:
    """A more severe threshold must lie further out, in every phase; refused with 422 and
    the limits in force unchanged (they used to be stored: that PUT and every later read
    of the limits answered 500)."""
    server.add_device("q-dev", "q-bed")
    sid = server.post("/api/sessions", {"bed": "q-bed", "patient_label": "Q"}).json()["id"]
    url = f"{server.base_url}/api/sessions/{sid}/limits"
    before = server.get(f"/api/sessions/{sid}/limits")
    bad = {"overrides": {"spo2": {"low": {"medium": 84, "high": 88}}}}
    detail = _refusal(
        http_client.put(url, json=bad, headers=server.headers), 422, "invalid_request"
    )
    assert detail["fields"][0]["loc"] == ["body", "overrides"]
    assert server.get(f"/api/sessions/{sid}/limits") == before
    assert server.post(f"/api/sessions/{sid}/events", {"type": "infusion_start"}).status_code == 200


def test_a_unique_violation_is_told_apart_from_other_integrity_errors_on_both_engines() -> None:
    """docs/api.md Repeats and races: a race lost on a unique constraint answers 409, a broken
    foreign key stays a fault (500)."""

    def caught(run: Any) -> IntegrityError:
        try:
            run()
        except Exception as e:  # the driver's own error, wrapped as SQLAlchemy does
            return IntegrityError("stmt", {}, e)
        raise AssertionError("the statement was not refused")

    lite = sqlite3.connect(":memory:")
    lite.execute("PRAGMA foreign_keys=ON")
    lite.execute("CREATE TABLE p (id INTEGER PRIMARY KEY)")
    lite.execute("CREATE TABLE c (id INTEGER PRIMARY KEY, p INTEGER REFERENCES p(id))")
    lite.execute("INSERT INTO p VALUES (1)")
    assert is_unique_violation(caught(lambda: lite.execute("INSERT INTO p VALUES (1)")))
    assert not is_unique_violation(caught(lambda: lite.execute("INSERT INTO c VALUES (1, 9)")))
    # A temporary table is the connection's own: no name to share with a parallel run.
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as pg:
        pg.execute("CREATE TEMP TABLE uq_probe (id int PRIMARY KEY, n int NOT NULL)")
        pg.execute("INSERT INTO uq_probe VALUES (1, 1)")
        assert is_unique_violation(caught(lambda: pg.execute("INSERT INTO uq_probe VALUES (1, 2)")))
        assert not is_unique_violation(
            caught(lambda: pg.execute("INSERT INTO uq_probe VALUES (2, NULL)"))
        )
