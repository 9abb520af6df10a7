"""Schemathesis over the OpenAPI schema: generated (also invalid) parameters never cause a 500.

The same check by hand, against a running dashboard:
``schemathesis run http://127.0.0.1:8321/api/openapi.json --checks not_a_server_error
--exclude-path /api/stream``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from benchmarks.seed import seed
from opencell.dashboard.app import create_app
from opencell.store.store import Store


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "seeded.db"
    store = Store.open(f"sqlite:///{path}")
    seed(store, sessions=200, events=2_000, days=7)
    # The FastAPI app itself: the access gate (tested in test_security.py) only serves
    # loopback Host names, and the test client calls itself "testserver".
    app = create_app(store).app
    yield schemathesis.openapi.from_asgi("/api/openapi.json", app)
    store.close()


# The live stream never ends on its own: it is tested in test_live.py.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/api/stream")


@schema.parametrize()
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_no_generated_request_is_a_server_error(case: Any) -> None:
    case.call_and_validate(checks=[not_a_server_error])
