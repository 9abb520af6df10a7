"""Budget test helpers: a manual wall clock, bots on a priced model, turns through a runtime."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opencell.config import BotConfig, BudgetsConfig, LLMConfig, OpenCellConfig, StoreConfig
from opencell.messages import ConversationKey, IncomingMessage
from opencell.observability.observer import Observability
from tests.conftest import STORES, on_both_stores
from tests.fakes.llm_server import FakeLLMServer

SONNET = "claude-sonnet-4-20250514"
CALL_USAGE = {"input_tokens": 1500, "output_tokens": 800}
"""$0.0165 on Sonnet 4 ($3 / $15 per million tokens)."""
CALL_COST = 0.0165


class Wall:
    """A manual epoch clock for the ledger."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def noon_zone(now: float | None = None) -> str:
    """A fixed-offset zone where it is about noon now: the day boundary is hours away, so
    tests that mix the store's real timestamps with the ledger's clock cannot straddle it."""
    hour = datetime.fromtimestamp(time.time() if now is None else now, UTC).hour
    offset = (12 - hour + 12) % 24 - 12  # -12 … +11 hours from UTC
    return f"Etc/GMT{-offset:+d}"  # POSIX sign: Etc/GMT-3 is UTC+3


def bot(name: str = "support", **fields: Any) -> BotConfig:
    base: dict[str, Any] = {"name": name, "llm": LLMConfig(provider="claude", model=SONNET,
                                                          max_tokens=1024, max_retries=0)}
    return BotConfig(**(base | fields))


def budgets(**fields: Any) -> BudgetsConfig:
    return BudgetsConfig.model_validate(fields)


def message(text: str, user: str = "alice", *, bot_name: str = "support",
            platform: str = "discord", channel: str = "c1") -> IncomingMessage:
    key = ConversationKey(bot=bot_name, platform=platform, channel=channel, user=user)
    return IncomingMessage(key=key, text=text, user_id=user)


def observability(url: str) -> Observability:
    return Observability.from_config(OpenCellConfig(store=StoreConfig(url=url)))


@pytest.fixture
def obs(isolated_store: str) -> Iterator[Observability]:
    o = observability(isolated_store)
    yield o
    o.close(timeout=2.0)


@pytest.fixture
async def fake_llm() -> AsyncIterator[FakeLLMServer]:
    """The loopback Anthropic API; every call uses 1,500 in / 800 out tokens ($0.0165)."""
    from tests.fakes.llm_server import Step

    async with FakeLLMServer(model=lambda req: Step(text=f"ok: {req.last_user_text}",
                                                    usage=CALL_USAGE)) as server:
        yield server


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def days(n: float) -> float:
    return timedelta(days=n).total_seconds()


isolated_store = pytest.fixture(params=STORES, autouse=True, name="isolated_store")(on_both_stores)
"""Every test of this suite runs on SQLite and on PostgreSQL."""
