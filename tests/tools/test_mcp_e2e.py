"""Issue acceptance for MCP tools, end to end: an agent bot (on the function fake LLM) whose
YAML names a real MCP server (tests/fakes/mcp_server.py, written with the mcp SDK), over stdio
and over streamable HTTP on 127.0.0.1, recording into a real SQLite store."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opencell.app import App
from opencell.config import OpenCellConfig, StoreConfig
from opencell.errors import ToolNotAllowedError, ToolTimeoutError, ToolUnavailableError
from opencell.llm.base import LLMRequest, ToolCall
from opencell.loading import load_bot
from opencell.messages import ConversationKey, IncomingMessage
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.store.store import Store
from tests.conftest import REPO
from tests.fakes.adapter import RecordingAdapter
from tests.fakes.function_llm import FunctionLLM, answer
from tests.fakes.llm_server import FakeLLMServer, reply, tool_call
from tests.fakes.mcp_server import PNG, McpHttpServer
from tests.fakes.waiting import until

FAKE_KEY = "sk-ant-api03-" + "Qm7" * 30
MCP_TOKEN = "opaque-mcp-token-5c4b3a29"
"""Only the bot YAML (through ${ACME_TOKEN}) knows this is a secret."""


@pytest.fixture
def http_server() -> Iterator[McpHttpServer]:
    server = McpHttpServer(token=MCP_TOKEN).start()
    yield server
    server.stop()


@pytest.fixture(params=["stdio", "http"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def server_yaml(transport: str, http: McpHttpServer | None) -> str:
    if transport == "stdio":
        return (f"{{command: {json.dumps(sys.executable)}, args: [-m, tests.fakes.mcp_server], "
                f"cwd: {json.dumps(str(REPO))}, env: {{ACME_TOKEN: '${{ACME_TOKEN}}'}}}}")
    assert http is not None
    return f"{{url: '{http.url}', headers: {{Authorization: 'Bearer ${{ACME_TOKEN}}'}}}}"


class Harness:
    """A bot whose model plays ``calls`` in turn, then repeats the tool results it read."""

    def __init__(self, runtime: BotRuntime, llm: FunctionLLM, url: str,
                 http: McpHttpServer | None, obs: Observability) -> None:
        self.runtime, self.llm, self.url, self.http = runtime, llm, url, http
        self.obs = obs
        self.script: list[list[ToolCall]] = []

    async def turn(self, *calls: ToolCall, user: str = "alice") -> str:
        self.script = [list(calls)]
        key = ConversationKey(bot=self.runtime.name, platform="test", channel="c", user=user)
        reply = await self.runtime.dispatch(IncomingMessage(key=key, text="go", user_id=user))
        assert reply is not None
        return reply.text

    def tool_events(self) -> list[dict[str, Any]]:
        assert self.obs.recorder.flush(30)
        store = Store.open(self.url)
        try:
            rows, _ = store.list_sessions(limit=10)
            return [e for row in rows for e in store.timeline(row["id"])
                    if e["kind"] == "tool_call"]
        finally:
            store.close()


@pytest.fixture
async def make_bot(tmp_path: Path, isolated_store: str, transport: str,
                   request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[BotRuntime, Observability]] = []

    async def make(allow: str = "[echo, whoami, hang, login, env, picture, fail]",
                   extra: str = "timeout: 2s") -> Harness:
        http = request.getfixturevalue("http_server") if transport == "http" else None
        path = tmp_path / "agent.yaml"
        path.write_text(
            "name: agent\ntype: agent\nllm: {provider: offline}\ntools:\n"
            f"  - mcp: {server_yaml(transport, http)}\n    name: acme\n    allow: {allow}\n"
            f"    {extra}\n")
        bot = load_bot(path, {"ACME_TOKEN": MCP_TOKEN})
        obs = Observability.from_config(OpenCellConfig(store=StoreConfig(url=isolated_store)),
                                        [bot], {})
        harness: Harness

        def play(req: LLMRequest) -> Any:
            if req.messages[-1].role == "user" and harness.script:
                return answer(calls=harness.script.pop())
            turn = req.messages[max(i for i, m in enumerate(req.messages) if m.role == "user"):]
            return " | ".join(m.content for m in turn if m.role == "tool")

        llm = FunctionLLM(play)
        runtime = BotRuntime(bot, llm=llm, observability=obs)
        harness = Harness(runtime, llm, isolated_store, http, obs)
        started.append((runtime, obs))
        await runtime.start()
        return harness

    yield make
    for runtime, obs in started:
        await runtime.aclose()
        obs.close()


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(id=f"call-{name}", name=name, arguments=arguments)


async def test_an_allowed_tool_answers_and_the_model_reads_its_result(
        make_bot: Callable[..., Any]) -> None:
    bot = await make_bot()
    text = await bot.turn(call("echo", text="hello over mcp"))
    assert text == "hello over mcp"
    offered = {s.name: s for s in bot.llm.requests[0].tools}
    # The server's names, descriptions and schemas, unchanged; only what allow lists.
    assert set(offered) == {"echo", "whoami", "hang", "login", "env", "picture", "fail"}
    assert offered["echo"].description == "Say the text back."
    assert offered["echo"].parameters["properties"]["text"]["type"] == "string"
    assert offered["echo"].parameters["required"] == ["text"]
    (event,) = bot.tool_events()
    assert (event["tool"], event["server"], event["result"]) == (
        "echo", "acme", "hello over mcp")
    assert event["success"] is True


async def test_a_tool_not_in_allow_is_refused_and_recorded(make_bot: Callable[..., Any]) -> None:
    bot = await make_bot()
    text = await bot.turn(call("delete_everything"))
    # The server's tool would have raised "…the allow list failed"; it never ran.
    assert "not allowed" in text and "allow list failed" not in text
    result = bot.llm.requests[-1].messages[-1]
    assert result.is_error and "MCP server 'acme'" in result.content
    (event,) = bot.tool_events()
    assert event["success"] is False
    assert event["error_type"] == ToolNotAllowedError.__name__
    assert event["server"] == "acme"


async def test_a_killed_server_gives_an_error_result_and_is_restarted(
        make_bot: Callable[..., Any], transport: str, tmp_path: Path) -> None:
    bot = await make_bot(extra="timeout: 60s")
    assert bot.runtime.toolbox is not None
    connection = bot.runtime.toolbox.sources[0].connection
    first = await bot.turn(call("whoami"))
    marker = tmp_path / "hang-started"
    calling = asyncio.create_task(bot.turn(call("hang", seconds=120, started=str(marker))))
    await until(marker.exists, "the server to be inside the call")
    if bot.http is None:
        os.kill(int(first), signal.SIGKILL)  # the server dies mid-call
    else:
        await asyncio.to_thread(bot.http.stop)
    text = await calling
    assert "closed" in text or "error" in text
    result = bot.llm.requests[-1].messages[-1]
    assert result.is_error
    if bot.http is not None:
        await asyncio.to_thread(bot.http.start)
    await until(lambda: connection.connects >= 2, "the server to be restarted")
    again = await bot.turn(call("whoami"))
    assert again.isdigit() and (transport == "http" or again != first)
    events = bot.tool_events()
    failed = [e for e in events if e["tool"] == "hang"]
    assert failed and failed[0]["success"] is False
    if transport == "stdio":
        assert failed[0]["error_type"] == ToolUnavailableError.__name__


async def test_a_hanging_server_is_cut_off_at_the_timeout(make_bot: Callable[..., Any]) -> None:
    bot = await make_bot(extra="timeout: 500ms")
    text = await bot.turn(call("hang"))
    assert "did not finish within 0.5s" in text
    (event,) = bot.tool_events()
    assert event["error_type"] == ToolTimeoutError.__name__
    # The connection survived the abandoned call.
    assert await bot.turn(call("echo", text="still here")) == "still here"


async def test_secrets_in_arguments_and_results_are_redacted_in_the_store(
        make_bot: Callable[..., Any], isolated_store: str, tmp_path: Path,
        transport: str) -> None:
    bot = await make_bot()
    await bot.turn(call("login", api_key=FAKE_KEY))
    if transport == "stdio":  # the env the YAML gave the process reaches it
        text = await bot.turn(call("env", variable="ACME_TOKEN"))
        assert MCP_TOKEN not in text and "[REDACTED" in text
    await bot.runtime.aclose()
    events = bot.tool_events()
    login = next(e for e in events if e["tool"] == "login")
    assert "REDACTED" in json.dumps(login["args"])
    for path in tmp_path.glob("opencell.db*"):
        data = path.read_bytes()
        assert FAKE_KEY[:24].encode() not in data and MCP_TOKEN.encode() not in data


async def test_an_image_is_recorded_by_type_and_size_and_passed_to_the_model(
        make_bot: Callable[..., Any]) -> None:
    bot = await make_bot()
    await bot.turn(call("picture"))
    result = bot.llm.requests[-1].messages[-1]
    assert result.content.startswith("a red dot\n[image image/png, 70 bytes")
    (image,) = result.attachments
    assert (image.kind, image.mime_type) == ("image", "image/png")
    (event,) = bot.tool_events()
    parts = event["parts"]
    assert parts[1] == {"type": "image", "mime_type": "image/png", "bytes": 70, "passed": True}
    assert "iVBOR" not in json.dumps(event)  # the bytes themselves are not stored


async def test_an_error_the_tool_reports_reaches_the_model_without_failing_the_turn(
        make_bot: Callable[..., Any]) -> None:
    bot = await make_bot()
    assert await bot.turn(call("fail")) == "ticket 42 not found"
    await bot.runtime.aclose()  # the session closes, with its error count
    (event,) = bot.tool_events()
    assert event["success"] is False and event["error_type"] == "ToolResultError"
    store = Store.open(bot.url)
    try:
        rows, _ = store.list_sessions(limit=1)
        assert rows[0]["errors"] == 0
    finally:
        store.close()


async def test_the_tool_list_is_refreshed_when_the_server_announces_a_change(
        make_bot: Callable[..., Any]) -> None:
    bot = await make_bot(allow="['*']")
    assert bot.runtime.toolbox is not None
    source = bot.runtime.toolbox.sources[0]
    assert "late" not in source.enabled()
    assert await bot.turn(call("grow")) == "grown"
    await until(lambda: "late" in source.enabled(), "the new tool to be listed")
    assert await bot.turn(call("late")) == "late and here"
    assert "late" in {s.name for s in bot.llm.requests[-1].tools}


async def test_allowed_users_limit_who_may_call_the_servers_tools(
        make_bot: Callable[..., Any]) -> None:
    bot = await make_bot(extra="allowed_users: [alice]")
    assert await bot.turn(call("echo", text="hi")) == "hi"
    text = await bot.turn(call("echo", text="hi"), user="mallory")
    assert "may not use tool 'echo'" in text
    assert not bot.llm.requests[-1].tools  # nothing offered to mallory


async def test_the_app_starts_the_server_with_the_bot_and_stops_it_on_stop(
        tmp_path: Path, isolated_store: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("name: agent\ntype: agent\nllm: {provider: offline}\ntools:\n"
                    f"  - mcp: {server_yaml('stdio', None)}\n    name: acme\n"
                    "    allow: [whoami]\n")
    bot = load_bot(path, {"ACME_TOKEN": MCP_TOKEN})
    config = OpenCellConfig(store=StoreConfig(url=isolated_store))
    obs = Observability.from_config(config, [bot], {})

    def play(req: LLMRequest) -> Any:
        if req.messages[-1].role == "user":
            return answer(calls=[call("whoami")])
        return req.messages[-1].content

    runtime = BotRuntime(bot, llm=FunctionLLM(play), observability=obs)
    app = App([bot], config, runtimes={"agent": runtime}, observability=obs,
              adapter_factory=lambda b, _platform: RecordingAdapter(b))
    await app.start()
    key = ConversationKey(bot="agent", platform="test", channel="c", user="alice")
    reply = await app.dispatch(IncomingMessage(key=key, text="who?", user_id="alice"))
    assert reply is not None and reply.text.isdigit()
    pid = int(reply.text)
    os.kill(pid, 0)  # alive while the bot runs
    await app.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_a_server_down_at_start_makes_its_tools_answer_with_an_error(
        tmp_path: Path, isolated_store: str) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("name: agent\ntype: agent\nllm: {provider: offline}\ntools:\n"
                    "  - mcp: {command: /nonexistent/acme-mcp, connect_timeout: 5s}\n"
                    "    name: gone\n    allow: [echo]\n")
    bot = load_bot(path, {})

    def play(req: LLMRequest) -> Any:
        if req.messages[-1].role == "user":
            return answer(calls=[call("echo", text="anyone?")])
        return f"sorry: {req.messages[-1].content}"

    llm = FunctionLLM(play)
    runtime = BotRuntime(bot, llm=llm, observability=Observability.disabled())
    await runtime.start()  # the bot starts anyway
    try:
        key = ConversationKey(bot="agent", platform="test", channel="c", user="alice")
        reply = await runtime.dispatch(IncomingMessage(key=key, text="echo", user_id="alice"))
    finally:
        await runtime.aclose()
    (offered,) = llm.requests[0].tools  # the allowed name, marked unavailable
    assert offered.name == "echo" and "has not been reached yet" in offered.description
    assert reply is not None and reply.text.startswith(
        "sorry: MCP server 'gone' is not connected: cannot start the server")
    assert "/nonexistent/acme-mcp" in reply.text


async def test_claude_receives_an_mcp_image_in_the_tool_result(
        tmp_path: Path, isolated_store: str) -> None:
    async with FakeLLMServer([tool_call("picture", id="toolu_1"), reply("a red dot it is")]) \
            as fake:
        path = tmp_path / "agent.yaml"
        path.write_text(
            "name: agent\ntype: agent\n"
            f"llm: {{provider: claude, base_url: '{fake.anthropic_base_url}', api_key: k-1}}\n"
            f"tools:\n  - mcp: {server_yaml('stdio', None)}\n    name: acme\n"
            "    allow: [picture]\n")
        bot = load_bot(path, {"ACME_TOKEN": MCP_TOKEN})
        runtime = BotRuntime(bot, observability=Observability.disabled())
        await runtime.start()
        try:
            key = ConversationKey(bot="agent", platform="test", channel="c", user="alice")
            reply_ = await runtime.dispatch(IncomingMessage(key=key, text="draw",
                                                            user_id="alice"))
        finally:
            await runtime.aclose()
    assert reply_ is not None and reply_.text == "a red dot it is"
    (result,) = [b for b in fake.requests[1].messages[-1]["content"]
                 if b["type"] == "tool_result"]
    text, image = result["content"]
    assert text["text"].startswith("a red dot\n[image image/png, 70 bytes")
    assert image["type"] == "image" and image["source"]["media_type"] == "image/png"
    assert base64.b64decode(image["source"]["data"]) == PNG
