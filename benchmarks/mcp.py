"""Benchmark: OpenCell's overhead per MCP tool call over stdio, against the bare mcp client.

Run: python -m benchmarks.mcp [--quick]

Two processes of the same MCP server (tests/fakes/mcp_server.py, written with the mcp SDK) are
started: one behind the bare SDK ``Client`` (the baseline, same run), one behind an agent
bot's tool path — the recording wrapper (a ``tool_call`` into a real SQLite store), the toolbox
(allow list, per-user list, timeout), the supervised connection, the result conversion and the
redaction of the result before the model reads it. Calls alternate between the two so machine
noise hits both alike. Target: the p50 difference is at most 1 ms.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import Figure, percentile, run_main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET_MS = 1.0


async def _measure(calls: int) -> dict[str, list[float]]:
    from mcp import Client, StdioServerParameters

    from opencell.config import OpenCellConfig, StoreConfig
    from opencell.context import TurnContext, current_turn
    from opencell.llm.base import ToolCall
    from opencell.loading import load_bot
    from opencell.messages import ConversationKey, IncomingMessage
    from opencell.observability.observer import Observability
    from opencell.runtime import BotRuntime
    from tests.fakes.function_llm import FunctionLLM

    params = StdioServerParameters(command=sys.executable, args=["-m", "tests.fakes.mcp_server"],
                                   cwd=str(REPO))
    with tempfile.TemporaryDirectory() as tmp:
        bot_file = Path(tmp) / "bench.yaml"
        bot_file.write_text(
            "name: bench\ntype: agent\nllm: {provider: offline}\ntools:\n"
            f"  - mcp: {{command: {json.dumps(sys.executable)}, "
            f"args: [-m, tests.fakes.mcp_server], cwd: {json.dumps(str(REPO))}}}\n"
            "    name: acme\n    allow: [echo]\n    allowed_users: [u]\n")
        bot = load_bot(bot_file, {})
        obs = Observability.from_config(
            OpenCellConfig(store=StoreConfig(url=f"sqlite:///{tmp}/bench.db")), [bot], {})
        runtime = BotRuntime(bot, llm=FunctionLLM(lambda request: "ok"), observability=obs)
        await runtime.start()
        key = ConversationKey(bot="bench", platform="bench", channel="c", user="u")
        session = runtime.sessions.open(key, user_name="u")
        turn = TurnContext(message=IncomingMessage(key=key, text="go", user_id="u"), bot=bot,
                           session=session)
        token = current_turn.set(turn)
        bare_ms: list[float] = []
        ours_ms: list[float] = []
        own_us = await _own_cost(runtime, calls)
        try:
            async with Client(params, cache=None) as client:
                arguments = {"text": "hello, tools"}
                async def bare() -> float:
                    start = time.perf_counter()
                    await client.call_tool("echo", arguments)
                    return (time.perf_counter() - start) * 1000

                async def ours(i: int) -> float:
                    start = time.perf_counter()
                    result = await runtime.tools.invoke(
                        ToolCall(id=f"c{i}", name="echo", arguments=arguments), user_id="u")
                    obs.redactor.redact(result.content)  # as the runtime does for the model
                    elapsed = (time.perf_counter() - start) * 1000
                    assert not result.is_error, result.content
                    return elapsed

                for i in range(calls + 20):  # the first 20 of each warm up
                    if i % 2:  # ABBA: neither side always goes first
                        b, o = await bare(), await ours(i)
                    else:
                        o, b = await ours(i), await bare()
                    if i >= 20:
                        bare_ms.append(b)
                        ours_ms.append(o)
        finally:
            current_turn.reset(token)
            await runtime.aclose()
            obs.close()
    return {"bare": bare_ms, "opencell": ours_ms, "own": own_us}


class _Answered:
    """Stands for the connection with the server's answer ready: OpenCell's own work only."""

    name = "acme"

    def __init__(self, result: object) -> None:
        self.result = result

    async def call(self, tool: str, arguments: object, timeout: float) -> object:
        return self.result


async def _own_cost(runtime: object, calls: int) -> list[float]:
    """µs per call of the same path with the server's answer ready (no process, no pipe)."""
    import dataclasses

    import mcp_types as types

    from opencell.llm.base import ToolCall
    from opencell.observability.instrument import RecordingTools
    from opencell.tools import Toolbox

    source = runtime.toolbox.sources[0]  # type: ignore[attr-defined]
    enabled = source.enabled()["echo"]
    answered = _Answered(types.CallToolResult(content=[types.TextContent(text="hello, tools")]))
    tool = dataclasses.replace(enabled.tool, connection=answered)
    toolbox = Toolbox([dataclasses.replace(enabled, tool=tool)], bot="bench")
    tools = RecordingTools(toolbox, runtime.observability)  # type: ignore[attr-defined]
    redact = runtime.observability.redactor.redact  # type: ignore[attr-defined]
    out = []
    for i in range(calls * 5):
        start = time.perf_counter()
        result = await tools.invoke(ToolCall(id=f"o{i}", name="echo",
                                             arguments={"text": "hello, tools"}), user_id="u")
        redact(result.content)
        out.append((time.perf_counter() - start) * 1e6)
    return out[calls:]


def run(quick: bool) -> list[Figure]:
    calls = 200 if quick else 1000
    times = asyncio.run(_measure(calls))
    bare50, ours50 = percentile(times["bare"], 50), percentile(times["opencell"], 50)
    bare90, ours90 = percentile(times["bare"], 90), percentile(times["opencell"], 90)
    overhead = ours50 - bare50
    paired = percentile([o - b for o, b in zip(times["opencell"], times["bare"], strict=True)],
                        50)
    own50 = percentile(times["own"], 50)
    return [
        Figure("mcp", "overhead per tool call over stdio, p50", overhead, "ms",
               f"<= {TARGET_MS:g}", overhead <= TARGET_MS,
               f"bare mcp Client p50 {bare50:.3f} ms", f"{calls} alternating calls each; "
               f"OpenCell p50 {ours50:.3f} ms; p50 of the paired differences "
               f"{paired:.3f} ms"),
        Figure("mcp", "tool call over stdio, p90", ours90, "ms", "", None,
               f"bare mcp Client p90 {bare90:.3f} ms", "recorded into SQLite, redacted"),
        Figure("mcp", "OpenCell's own work per call, p50", own50, "µs", "", None, "",
               "the same path with the server's answer ready: record, policy, convert, "
               "redact"),
    ]


def main(argv: Sequence[str] | None = None) -> list[Figure]:
    return run_main(argv, __doc__ or "", run, "MCP tool calls")


if __name__ == "__main__":
    main()
