"""A client generated from the running monitor's /openapi.json with openapi-python-client
(pinned in requirements.lock) admits a patient, records events and an observation, changes a
limit and fetches the reports, against the real server (docs/api.md): the document is
usable, not only valid.

The client is generated at test time into a temporary directory, not committed: the test
then always exercises the document as it is now, and no generated code (thousands of lines
that change with every route) has to be kept in step or reviewed.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from monitor.records.report.csv_export import CSV_COLUMNS
from tests import http_client
from tests.conftest import ADMIN_PASSWORD, MonitorProcess

CSV_FIRST_COLUMN = CSV_COLUMNS[0]

PACKAGE = "vigil_client"


@pytest.fixture(scope="module")
def client_package(
    sqlite_server: MonitorProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    out = tmp_path_factory.mktemp("client")
    doc = out / "openapi.json"
    doc.write_text(http_client.get(f"{sqlite_server.base_url}/openapi.json", timeout=10).text)
    config = out / "config.json"
    config.write_text(json.dumps({"post_hooks": []}))  # no formatter needed to use it
    generator = Path(sys.executable).with_name("openapi-python-client")
    run = subprocess.run(
        [str(generator), "generate", "--path", str(doc), "--meta", "none"]
        + ["--output-path", str(out / PACKAGE), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    # Everything the document describes became code: no skipped operation or model.
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _mod(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_a_generated_client_runs_admit_observe_report(
    client_package: ModuleType, sqlite_server: MonitorProcess
) -> None:
    """Generated from /openapi.json: login, admit, events, observation, limits, reports."""
    server = sqlite_server
    server.add_device("gc-dev", "gc-bed")
    models = _mod("models")
    anonymous = client_package.Client(base_url=server.base_url)
    login = _mod("api.auth.login").sync_detailed(
        client=anonymous, body=models.LoginForm(username="admin", password=ADMIN_PASSWORD)
    )
    assert login.status_code == 200, login.content
    token = login.parsed.additional_properties["access_token"]
    client = client_package.AuthenticatedClient(base_url=server.base_url, token=token)

    admitted = _mod("api.sessions.create_session").sync_detailed(
        client=client, body=models.SessionCreate(bed="gc-bed", patient_label="GC-1", age=54)
    )
    assert admitted.status_code == 201, admitted.content
    session_id = admitted.parsed.additional_properties["id"]

    add_event = _mod("api.sessions.add_event")
    started = add_event.sync_detailed(
        session_id, client=client, body=models.InfusionStart(type_="infusion_start")
    )
    assert started.status_code == 200, started.content
    observed = add_event.sync_detailed(
        session_id,
        client=client,
        body=models.ObservationEvent(
            type_="observation", data=models.Observation(moaas=4, note="calm")
        ),
    )
    assert observed.status_code == 200, observed.content
    events = observed.parsed.additional_properties["events"]
    assert [e["type"] for e in events] == ["infusion_start", "observation"]
    assert events[1]["data"] == {"moaas": 4, "note": "calm"}

    # A refusal arrives in the declared shape, parsed into its model.
    wrong = add_event.sync_detailed(
        session_id, client=client, body=models.InfusionResume(type_="infusion_resume")
    )
    assert wrong.status_code == 409
    assert isinstance(wrong.parsed, models.ErrorBody)
    assert wrong.parsed.detail.code == "event_not_allowed"

    # A limit within the clinic's bounds (monitor/clinic.default.yaml), through the typed model.
    limits = _mod("api.sessions.put_limits").sync_detailed(
        session_id,
        client=client,
        body=models.LimitsUpdate(
            overrides=models.LimitOverrides(
                spo2=models.Spo2Override(low=models.Spo2Thresholds(medium=88.0))
            )
        ),
    )
    assert limits.status_code == 200, limits.content
    assert limits.parsed.additional_properties["limits"]["spo2"]["low"]["medium"] == 88

    stopped = add_event.sync_detailed(
        session_id, client=client, body=models.InfusionStop(type_="infusion_stop")
    )
    assert stopped.parsed.additional_properties["phase"] == "recovery"

    csv = _mod("api.reports.report_as_csv").sync_detailed(session_id, client=client)
    assert csv.status_code == 200
    assert csv.content.decode("utf-8-sig").splitlines()[0].split(",")[0] == CSV_FIRST_COLUMN
    fhir = _mod("api.reports.report_as_fhir").sync_detailed(session_id, client=client)
    assert fhir.status_code == 200
    assert json.loads(fhir.content)["resourceType"] == "Bundle"
    html = _mod("api.reports.report").sync_detailed(session_id, client=client)
    assert html.status_code == 200 and b"GC-1" in html.content
