"""Toolbox: default deny, allowed_users, worker threads, timeouts and error results."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from opencell.config import ToolEntry
from opencell.errors import (
    ConfigErrors,
    ToolArgumentsError,
    ToolExecutionError,
    ToolNotAllowedError,
    ToolTimeoutError,
)
from opencell.llm.base import ToolCall, ToolSpec
from opencell.tools import Toolbox, ToolInvoker, ToolResult
from tests.tools import sample_tools


def _box(*entries: str | dict[str, Any], bot: str = "agent") -> Toolbox:
    parsed = [ToolEntry.model_validate({"name": e} if isinstance(e, str) else e)
              for e in entries]
    return Toolbox.from_entries(parsed, bot=bot)


def _own(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "python": f"tests.tools.sample_tools:{name}", **extra}


def _call(tool_name: str, /, **arguments: Any) -> ToolCall:
    return ToolCall(id="call-1", name=tool_name, arguments=arguments)


async def test_specs_list_only_the_tools_in_the_yaml() -> None:
    box = _box("current_time", _own("shout"))
    specs = box.specs()
    assert [s.name for s in specs] == ["current_time", "shout"]
    assert all(isinstance(s, ToolSpec) for s in specs)
    assert specs[1].parameters["required"] == ["text"]


async def test_an_unlisted_tool_is_refused_even_a_builtin() -> None:
    result = await _box("current_time").invoke(_call("calculator", expression="1+1"),
                                               user_id="u")
    assert result.is_error
    assert isinstance(result.error, ToolNotAllowedError)
    assert result.content.startswith("tool 'calculator' is not enabled for this bot")
    assert "current_time" in result.content
    assert (result.call_id, result.name) == ("call-1", "calculator")


async def test_an_unknown_tool_is_refused() -> None:
    result = await _box().invoke(_call("rm_rf"), user_id="u")
    assert isinstance(result.error, ToolNotAllowedError)
    assert "tool 'rm_rf' is not enabled for this bot" in result.content


async def test_allowed_users() -> None:
    box = _box("current_time", {"name": "calculator", "allowed_users": ["alice"]})
    ok = await box.invoke(_call("calculator", expression="2+3"), user_id="alice")
    assert (ok.is_error, ok.content) == (False, "5")
    refused = await box.invoke(_call("calculator", expression="2+3"), user_id="bob")
    assert isinstance(refused.error, ToolNotAllowedError)
    assert "user 'bob' may not use tool 'calculator'" in refused.content
    assert [s.name for s in box.specs(user_id="bob")] == ["current_time"]
    assert [s.name for s in box.specs(user_id="alice")] == ["current_time", "calculator"]


async def test_sync_tools_run_in_a_worker_thread_async_tools_in_the_loop() -> None:
    box = _box(_own("thread_id"), _own("loop_thread_id"))
    sync = await box.invoke(_call("thread_id"), user_id="u")
    in_loop = await box.invoke(_call("loop_thread_id"), user_id="u")
    assert int(sync.content) != threading.get_ident()
    assert int(in_loop.content) == threading.get_ident()


async def test_bad_arguments_are_an_error_result_and_the_tool_does_not_run() -> None:
    result = await _box(_own("whisper")).invoke(_call("whisper", text="Hi", times="x"),
                                                user_id="u")
    assert isinstance(result.error, ToolArgumentsError)
    assert "times: Input should be a valid integer" in result.content


async def test_a_raising_tool_gives_an_execution_error_with_its_cause() -> None:
    result = await _box(_own("explode")).invoke(_call("explode", reason="disk full"),
                                                user_id="u")
    assert result.is_error
    assert isinstance(result.error, ToolExecutionError)
    assert result.content == "ValueError: disk full"
    cause = result.error.__cause__
    assert isinstance(cause, ValueError) and cause.__traceback__ is not None


async def test_a_tool_raising_timeout_itself_is_not_our_timeout() -> None:
    result = await _box(_own("own_timeout")).invoke(_call("own_timeout"), user_id="u")
    assert isinstance(result.error, ToolExecutionError)
    assert result.content == "TimeoutError: upstream took too long"


async def test_timeout_gives_a_timeout_result_quickly() -> None:
    cancelled = sample_tools.seen["naps_cancelled"]
    result = await _box(_own("nap", timeout=0.05)).invoke(_call("nap"), user_id="u")
    assert isinstance(result.error, ToolTimeoutError)
    assert "did not finish within 0.05s" in result.content
    assert sample_tools.seen["naps_cancelled"] == cancelled + 1  # stopped, not awaited 10 s
    assert result.duration_ms >= 45  # the time until the timeout, not zero


async def test_a_blocked_sync_tool_is_abandoned_on_timeout() -> None:
    sample_tools.release.clear()
    returned = sample_tools.seen["blocks_returned"]
    try:
        result = await _box(_own("block", timeout=0.05)).invoke(_call("block"), user_id="u")
        # The turn has its result while the tool's thread is still blocked: abandoned.
        assert sample_tools.seen["blocks_returned"] == returned
    finally:
        sample_tools.release.set()
    assert isinstance(result.error, ToolTimeoutError)


async def test_the_tools_default_timeout_applies_unless_the_yaml_sets_one() -> None:
    quick = await _box(_own("hurried")).invoke(_call("hurried"), user_id="u")
    assert isinstance(quick.error, ToolTimeoutError)
    assert "0.05s" in quick.content
    box = _box(_own("hurried", timeout=0.1))
    assert box._tools["hurried"].timeout == 0.1


async def test_results_that_are_not_text_are_json() -> None:
    result = await _box(_own("structured")).invoke(_call("structured"), user_id="u")
    assert json.loads(result.content) == {"n": 1, "ok": True, "when": "2024-05-01"}


async def test_context_and_options_reach_the_tool() -> None:
    box = _box(_own("greet", greeting="ahoy"), bot="pirate")
    result = await box.invoke(_call("greet", name="Ann"), user_id="u7")
    assert result.content == "ahoy, Ann (pirate/u7/call-1/greet)"
    assert "ctx" not in box.specs()[0].parameters["properties"]


async def test_the_yaml_name_is_the_name_the_model_sees() -> None:
    box = _box({"name": "yell", "python": "tests.tools.sample_tools:shout"})
    assert [s.name for s in box.specs()] == ["yell"]
    assert box.specs()[0].description == "Say it louder."
    result = await box.invoke(_call("yell", text="hi"), user_id="u")
    assert result.content == "HI!"
    refused = await box.invoke(_call("shout", text="hi"), user_id="u")
    assert isinstance(refused.error, ToolNotAllowedError)


def test_from_entries_refuses_unusable_entries() -> None:
    with pytest.raises(ConfigErrors) as info:
        _box("current_time", "curent_time")
    assert "tools[1].name: bot 'agent': unknown tool 'curent_time'" in str(info.value)


class Recording:
    """What an observability wrapper looks like: wraps any ToolInvoker, changes nothing."""

    def __init__(self, inner: ToolInvoker) -> None:
        self.inner = inner
        self.seen: list[ToolResult] = []

    def specs(self, *, user_id: str | None = None) -> list[ToolSpec]:
        return self.inner.specs(user_id=user_id)

    async def invoke(self, call: ToolCall, *, user_id: str) -> ToolResult:
        result = await self.inner.invoke(call, user_id=user_id)
        self.seen.append(result)
        return result


async def test_a_wrapper_is_a_tool_invoker_too() -> None:
    box = _box("calculator")
    wrapped = Recording(box)
    assert isinstance(box, ToolInvoker) and isinstance(wrapped, ToolInvoker)
    result = await wrapped.invoke(_call("calculator", expression="6*7"), user_id="u")
    assert wrapped.seen == [result] and result.content == "42"
