"""Shared helpers for the exporter tests: configs pointing at the loopback fakes, fast pacing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from opencell.config import (
    AgentOpsConfig,
    ObservabilityConfig,
    OpenCellConfig,
    OTLPConfig,
    StoreConfig,
)
from opencell.exporters import ExportTuning
from tests.conftest import STORES, on_both_stores
from tests.fakes.agentops_server import VALID_KEY, FakeAgentOps
from tests.fakes.otlp_receiver import OTLPReceiver
from tests.fakes.waiting import WAIT, until_sync

FAST = ExportTuning(poll_interval=0.02, backoff=lambda attempt: 0.02, request_timeout=2.0)


def agentops_config(url: str, fake: FakeAgentOps, **changes: Any) -> OpenCellConfig:
    settings = {"enabled": True, "api_key": VALID_KEY, "endpoint": fake.url,
                "exporter_endpoint": fake.traces_url, "tags": ["opencell", "team-x"],
                **changes}
    return OpenCellConfig(store=StoreConfig(url=url), observability=ObservabilityConfig(
        agentops=AgentOpsConfig(**settings)))


def otlp_config(url: str, receiver: OTLPReceiver, **changes: Any) -> OpenCellConfig:
    return OpenCellConfig(store=StoreConfig(url=url), observability=ObservabilityConfig(
        otlp=OTLPConfig(endpoint=receiver.url, **changes)))


def wait_for(predicate: Callable[[], bool], timeout: float = WAIT) -> None:
    until_sync(predicate, "the exporter test's condition", max(timeout, WAIT))


@pytest.fixture
def fake_agentops() -> Iterator[FakeAgentOps]:
    fake = FakeAgentOps()
    fake.start()
    yield fake
    fake.stop()


@pytest.fixture
def otlp_receiver() -> Iterator[OTLPReceiver]:
    receiver = OTLPReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


isolated_store = pytest.fixture(params=STORES, autouse=True, name="isolated_store")(on_both_stores)
"""Every test of this suite runs on SQLite and on PostgreSQL."""
