"""Schemathesis against the running monitor's own /openapi.json (issue 7: hostile input at
the REST door). Every operation gets schema-valid and schema-violating requests with the
admin token; none may answer 5xx. Runs on SQLite and on PostgreSQL, whose text and JSON
types refuse more than SQLite does (NUL, NaN)."""

from __future__ import annotations

from collections import Counter

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.conftest import ADMIN_PASSWORD, MonitorProcess

# Small on purpose: ~20 operations x 2 modes x this, twice (two engines), in seconds.
EXAMPLES_PER_OPERATION = 7


def _seed(server: MonitorProcess) -> None:
    """A bed with a device and an open session, so small ids like 1 lead somewhere."""
    server.add_device("st-dev", "st-bed")
    r = server.post("/api/sessions", {"bed": "st-bed", "patient_label": "ST"})
    assert r.status_code == 201, r.text


def _fuzz(
    server: MonitorProcess,
    op: schemathesis.APIOperation,
    mode: GenerationMode,
    seen: Counter[int],
    failures: list[str],
) -> None:
    headers = {"Authorization": f"Bearer {server.admin_token}"}

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=op.as_strategy(mode))
    def call(case: schemathesis.Case) -> None:
        token = headers
        if op.path == "/api/auth/logout":
            # Logging out revokes the token: spend a fresh one, keep the admin's for the rest.
            token = {"Authorization": f"Bearer {server.login('admin', ADMIN_PASSWORD)}"}
        response = case.call(base_url=server.base_url, headers=token, timeout=10)
        seen[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(f"{response.status_code} {case.as_curl_command()[:300]}")

    try:
        call()
    except Unsatisfiable:
        # An operation without parameters or body has no way to violate its schema.
        assert mode is GenerationMode.NEGATIVE


def test_no_operation_answers_5xx_to_generated_requests(server: MonitorProcess) -> None:
    """Schema-valid and schema-violating requests to every operation: 2xx or 4xx, never 5xx."""
    _seed(server)
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    operations = [res.ok() for res in schema.get_all_operations()]
    assert len(operations) >= 20, "the OpenAPI document lost its operations"
    failures: list[str] = []
    statuses: dict[str, Counter[int]] = {}
    for op in operations:
        seen = statuses.setdefault(op.label, Counter())
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(server, op, mode, seen, failures)
    assert failures == [], "\n".join(failures[:20])
    # The token was used: every operation answered something other than 401 at least once.
    assert [label for label, c in statuses.items() if set(c) <= {401}] == []
    assert "Exception in ASGI application" not in server.log_text()
