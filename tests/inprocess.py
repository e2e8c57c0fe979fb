"""The module's ``server``, built in the test process (conftest.InProcessMonitor).

For modules whose subject is the API's semantics, not the process: import the fixture by
name (``from tests.inprocess import in_process_server  # noqa: F401``) and the module's tests
get, under the usual name ``server``, the same app on the same uvicorn options, once on
SQLite and once on PostgreSQL, without starting a Python process per server. Tests that kill,
restart or signal the monitor keep the subprocess fixtures of tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import InProcessMonitor, start_in_process


@pytest.fixture(scope="module", name="server")
def in_process_server(
    db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessMonitor]:
    """The monitor app in this process, on SQLite and on PostgreSQL (``backend``); shared by
    the module's tests: give each test its own device and bed ids."""
    srv = start_in_process(db_url, tmp_path_factory.mktemp("monitor"))
    try:
        yield srv
    finally:
        srv.stop()
