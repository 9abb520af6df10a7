"""Dashboard fixtures: real conversations in the test's store, and a real server on port 0."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from opencell.config import BotConfig, LLMConfig, OpenCellConfig, StoreConfig
from opencell.dashboard.server import DashboardServer
from opencell.llm.base import LLMRequest, ToolCall, Usage
from opencell.observability.facade import AgentOpsFacade
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.store.store import Store
from opencell.tools import tool
from tests.conftest import STORES, on_both_stores
from tests.fakes.function_llm import FunctionLLM, answer
from tests.fakes.waiting import WAIT

XSS = "<img src=x onerror=alert(1)><script>alert(2)</script>"
TOOL_HTML = "<b>Order 42</b> shipped <img src=x onerror=alert(3)><script>alert(4)</script>"
SONNET = "claude-sonnet-4-20250514"


@tool
def lookup_order(order_id: int) -> str:
    """Look an order up in the shop.

    Args:
        order_id: The order number.
    """
    return TOOL_HTML.replace("42", str(order_id))


def observability(url: str) -> Observability:
    return Observability.from_config(OpenCellConfig(store=StoreConfig(url=url)))


async def record_conversations(url: str, latency: float = 0.0) -> dict[str, str]:
    """A few real conversations through ``BotRuntime`` with a fake model; their session ids.

    ``latency``: seconds each fake model call takes (screenshots look like real traffic).

    - ``agent``: helper (agent, Claude prices) asks the ``lookup_order`` tool, whose result is
      HTML, then answers; alice on console; 2 turns, ended explicitly.
    - ``xss``: support (conversational, Claude) with bob on discord, who sends an HTML/script
      message that the bot echoes; ended failed.
    - ``unpriced``: support with carol on slack on a model no price book knows.
    - ``failed``: support with dave on slack, whose turn fails (the model raises).
    - ``manual``: a session tracked by hand with a custom event whose name and data are HTML.
    """
    obs = observability(url)

    async def agent_play(request: LLMRequest) -> Any:
        await asyncio.sleep(latency)
        last = request.messages[-1]
        if last.role == "user":
            return answer(calls=[ToolCall(id="t1", name="lookup_order",
                                          arguments={"order_id": 42})],
                          usage=Usage(1500, 800), model=SONNET)
        return answer("Your order 42 has shipped.", usage=Usage(2500, 120), model=SONNET)

    helper = BotConfig(name="helper", type="agent", llm=LLMConfig(provider="claude",
                                                                  model=SONNET),
                       tools=[{"name": "lookup_order",
                               "python": "tests.dashboard.conftest:lookup_order"}],
                       tags=["shop", "production"])
    agent = BotRuntime(helper, llm=FunctionLLM(agent_play, provider="claude", model=SONNET),
                       observability=obs)
    ids = {"agent": await agent.start_session("alice", "console")}
    await agent.process_message("Where is my order 42?")
    await agent.process_message("Thanks!")
    await agent.end_session(success=True)

    support = BotConfig(name="support", llm=LLMConfig(provider="claude", model=SONNET),
                        tags=["support"])
    echo = BotRuntime(support, llm=FunctionLLM(
        lambda r: answer(f"You said: {r.messages[-1].content}", usage=Usage(300, 60),
                         model=SONNET), provider="claude", model=SONNET), observability=obs)
    ids["xss"] = await echo.start_session("bob", "discord")
    await echo.process_message(XSS)
    await echo.end_session(success=False)

    odd = BotRuntime(support, llm=FunctionLLM(
        lambda r: answer("hmm", usage=Usage(50, 5), model="claude-imaginary-9"),
        provider="claude", model="claude-imaginary-9"), observability=obs)
    ids["unpriced"] = await odd.start_session("carol", "slack")
    await odd.process_message("hello?")
    await odd.end_session()

    def explode(request: LLMRequest) -> Any:
        raise RuntimeError("provider exploded <script>alert(5)</script>")

    failing = BotRuntime(support, llm=FunctionLLM(explode, provider="claude", model=SONNET),
                         observability=obs)
    ids["failed"] = await failing.start_session("dave", "slack")
    await failing.process_message("are you there?")
    await failing.end_session(success=False)

    ops = AgentOpsFacade(obs)
    ids["manual"] = ops.start_session(bot_name="support", user_id="<b>mallory</b>",
                                      platform="api", tags=["<i>tag</i>"])
    ops.track_event(ids["manual"], "<i>vote</i>", {"html": "<script>alert(6)</script>"})
    ops.end_session(ids["manual"], success=True)
    for runtime in (agent, echo, odd, failing):
        await runtime.aclose()
    obs.close()
    return ids


@pytest.fixture
def conversations(isolated_store: str) -> dict[str, str]:
    """The conversations above, recorded into this test's store.

    In a thread of its own: Playwright's sync API keeps an event loop running in this one.
    """
    result: dict[str, dict[str, str]] = {}

    def record() -> None:
        result["ids"] = asyncio.run(record_conversations(isolated_store))

    worker = threading.Thread(target=record)
    worker.start()
    worker.join(60)
    return result["ids"]


class ServerThread:
    """A real dashboard (uvicorn) on 127.0.0.1, port 0, in its own thread and event loop."""

    def __init__(self, url: str, **options: Any) -> None:
        self.store_url = url
        self.options = {"port": 0, "poll_interval": 0.1, **options}
        self.loop = asyncio.new_event_loop()
        self.server: DashboardServer | None = None
        self.store: Store | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.store = Store.open(self.store_url)
            self.server = DashboardServer(self.store, **self.options)
            self.loop.run_until_complete(self.server.start())
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url.rstrip("/")

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(WAIT):  # returns as soon as the server is up
            raise AssertionError(f"the dashboard did not start within {WAIT:g}s")
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if self.store is not None:
            self.store.close()


def leave(page: Any) -> None:
    """Take ``page`` off the dashboard (to ``about:blank``) while its server still runs.

    The ``page`` fixture fails a test on any console error, and checks when it is torn down;
    by then a server the test used is stopped (fixtures end in reverse order), and the open
    page's next request was refused — seen under load as "Failed to load resource:
    net::ERR_CONNECTION_REFUSED" after a test that had passed. Leaving runs nothing more on
    the page, and the navigation delivers every console message logged before it first."""
    page.goto("about:blank")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After each test's body, before any fixture ends: a ``page`` leaves the dashboard."""
    yield
    page = getattr(item, "funcargs", {}).get("page")
    if page is not None and hasattr(page, "problems"):
        with contextlib.suppress(Exception):  # a broken page must not hide the test's result
            leave(page)


@pytest.fixture
def served(conversations: dict[str, str], isolated_store: str) -> Iterator[ServerThread]:
    """A real server over the recorded conversations."""
    with ServerThread(isolated_store) as running:
        yield running


isolated_store = pytest.fixture(params=STORES, autouse=True, name="isolated_store")(on_both_stores)
"""Every test of this suite runs on SQLite and on PostgreSQL."""
