"""Schemathesis through ASGI against the monitor's own /openapi.json (docs/api.md): the app
is ``create_app(Settings(...))``, its lifespan (store, pipeline) started by schemathesis's
ASGI client, with no server and no socket between. Every operation gets schema-valid and
schema-violating requests with the admin token, then the stateful phase follows the
document's links (admit -> events -> limits -> reports, devices, alarms, users). No answer may
be a 5xx or contradict the declared responses, and an exception the app lets escape reaches
the test itself. Runs on SQLite and on PostgreSQL, whose text and JSON types refuse more than
SQLite does (NUL, NaN).

This is the quick run that fits `make test`; `make fuzz` runs the larger one (every phase
of schemathesis's own CLI against a real server, 80 examples an operation).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Flaky, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core.failures import FailureGroup
from schemathesis.python.asgi import ASGIClient, shutdown_lifespans
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from monitor.app import create_app
from monitor.settings import Settings
from tests.conftest import InProcessMonitor, start_in_process
from tests.polling import poll
from tests.wsclient import Device

# ~21 operations x 2 modes x this ...
EXAMPLES_PER_OPERATION = 6
# ... then this many stateful scenarios of up to STATEFUL_STEPS linked calls.
STATEFUL_SCENARIOS = 25
STATEFUL_STEPS = 6

# Given an app, schemathesis also draws the literals of its handlers' source by default; those
# crowd out the small ids that reach the seeded records (no positive event was accepted with
# them), so values come from the document alone, as they did over HTTP.
NO_CONSTANTS = SchemathesisConfig.from_dict({"analysis": {"constants": {"enabled": False}}})
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


def _settings(db_url: str) -> Settings:
    return Settings(host="127.0.0.1", port=0, db=db_url)


async def _raise_an_alarm(server: InProcessMonitor, token: str) -> None:
    async with Device(server.ws_url, "st-dev", token) as dev:
        reply = await dev.reading(1, {"sbp": 215, "dbp": 100, "map": 138}, source="nibp")
        assert reply["type"] == "ack", reply


@pytest.fixture(scope="module")
def admin_token(db_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The admin's token on a database seeded with a bed, a device, an open session and an
    alarm, so that small ids and the links lead somewhere. The seeding needs a device on the
    websocket, so it runs on the in-process server (tests/conftest.py), stopped once done."""
    server = start_in_process(db_url, tmp_path_factory.mktemp("seed"))
    try:
        token = server.add_device("st-dev", "st-bed")
        r = server.post("/api/sessions", {"bed": "st-bed", "patient_label": "ST"})
        assert r.status_code == 201, r.text
        asyncio.run(_raise_an_alarm(server, token))
        poll(lambda: server.get("/api/alarms", bed="st-bed")["alarms"], timeout=10)
    finally:
        server.stop()
    LOGOUT_TOKENS[:] = _mint_tokens(db_url, 200)
    return server.admin_token


@pytest.fixture
def client(db_url: str, admin_token: str) -> Iterator[ASGIClient]:
    """The admin's session to a fresh ``create_app`` on the module's database: entering the
    client starts the app's lifespan, which every call of the test then reuses."""
    app = create_app(_settings(db_url))
    try:
        with ASGIClient(app) as session:
            session.headers.update({"Authorization": f"Bearer {admin_token}"})
            yield session
    finally:
        # The lifespan ends with the test that started it: the store is closed, the pipeline
        # stopped, before the database may be dropped.
        shutdown_lifespans()


# Logging out revokes the token it presents: each generated logout spends a token of its own,
# minted in storage (a login per case would run into the login limit the fuzz itself hits).
LOGOUT_TOKENS: list[str] = []


def _mint_tokens(db_url: str, n: int) -> list[str]:
    from monitor.records.store import Store

    async def run() -> list[str]:
        store = await Store.open(db_url)
        try:
            admin = await store.user_by_name("admin")
            assert admin is not None
            return [await store.create_access_token(admin.id, time.time(), 3600) for _ in range(n)]
        finally:
            await store.close()

    return asyncio.run(run())


def _own_token(path: str) -> dict[str, str] | None:
    if path != "/api/auth/logout" or not LOGOUT_TOKENS:
        return None
    return {"Authorization": f"Bearer {LOGOUT_TOKENS.pop()}"}


def _failure_text(case: schemathesis.Case, exc: FailureGroup) -> str:
    titles = "; ".join(f"{f.title}: {f.message[:200]}" for f in exc.exceptions)
    return f"{titles}\n    {case.as_curl_command()[:400]}"


def _fuzz_operation(
    client: ASGIClient,
    op: schemathesis.APIOperation,
    mode: GenerationMode,
    seen: Counter[int],
    failures: list[str],
) -> None:
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
        response = case.call(session=client, headers=_own_token(op.path), timeout=10)
        seen[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as exc:
            failures.append(_failure_text(case, exc))

    try:
        call()
    except Unsatisfiable:
        # An operation without parameters or body has no way to violate its schema.
        assert mode is GenerationMode.NEGATIVE


def test_no_operation_answers_5xx_or_off_schema_to_generated_requests(
    client: ASGIClient,
) -> None:
    """Valid and invalid requests to every operation: no 5xx, every answer as declared."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app, config=NO_CONSTANTS)
    operations = [res.ok() for res in schema.get_all_operations()]
    assert len(operations) >= 20, "the OpenAPI document lost its operations"
    failures: list[str] = []
    statuses: dict[str, Counter[int]] = {}
    for op in operations:
        seen = statuses.setdefault(op.label, Counter())
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(client, op, mode, seen, failures)
    assert failures == [], "\n".join(failures[:10])
    # The token was used: every operation answered something other than 401 at least once.
    assert [label for label, c in statuses.items() if set(c) <= {401}] == []
    # The bodies are described as they are validated: schema-valid commands get through.
    for label in (
        "POST /api/sessions/{session_id}/events",
        "PUT /api/sessions/{session_id}/limits",
    ):
        assert any(200 <= s < 300 for s in statuses[label]), (label, statuses[label])


def test_linked_call_sequences_keep_every_answer_as_declared(client: ASGIClient) -> None:
    """The stateful phase: chains of calls along the document's links stay within it."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", client.app, config=NO_CONSTANTS)
    failures: list[str] = []
    escaped: list[str] = []  # exceptions out of the app, kept even if Hypothesis calls them flaky
    seen: Counter[str] = Counter()
    followed: Counter[str] = Counter()  # links whose call succeeded with the linked id

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            kwargs = {"session": client, "timeout": 10}
            own = _own_token(case.operation.path)
            return kwargs | {"headers": own} if own else kwargs

        def call(self, case: schemathesis.Case, **kwargs: Any) -> Any:
            try:
                return super().call(case, **kwargs)
            except Exception as exc:
                escaped.append(f"{case.operation.label}: {exc!r}")
                raise

        def step(self, input: Any) -> Any:
            output = super().step(input)
            if input.transition is not None and input.is_applied:
                if output.response.status_code < 300:
                    followed[input.transition.id] += 1
            return output

        def validate_response(self, response: Any, case: schemathesis.Case, **kwargs: Any) -> None:
            seen[f"{case.operation.label} {response.status_code}"] += 1
            try:
                case.validate_response(response, checks=CHECKS, transport_kwargs=kwargs)
            except FailureGroup as exc:
                failures.append(_failure_text(case, exc))

    scenarios = 0

    class Counted(Machine):  # type: ignore[misc, valid-type]
        def teardown(self) -> None:
            nonlocal scenarios
            scenarios += 1
            super().teardown()

    # The server keeps its state between scenarios, so the same choices can meet other
    # answers (a bed now occupied) and Hypothesis may call the strategy flaky, as
    # schemathesis's own runner expects; what ran stays checked, and the run goes on.
    for _ in range(5):
        try:
            Counted.run(
                settings=settings(
                    max_examples=STATEFUL_SCENARIOS - scenarios,
                    stateful_step_count=STATEFUL_STEPS,
                    deadline=None,
                    database=None,
                    # The same scenarios every run: drawn at random, one CI run followed
                    # only 4 distinct links and failed the check below.
                    derandomize=True,
                    suppress_health_check=list(HealthCheck),
                    phases=[Phase.generate],
                )
            )
        except Flaky:
            pass
        if scenarios >= STATEFUL_SCENARIOS:
            break
    assert scenarios >= STATEFUL_SCENARIOS // 2, scenarios
    assert escaped == [], "\n".join(escaped[:10])
    assert failures == [], "\n".join(failures[:10])
    # The links were followed: ids one call produced were taken, successfully, by the next.
    assert len(followed) >= 5, (followed, sorted(seen.items()))
