"""check_tool_entry and config loading: located errors for the ``tools:`` of a bot YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from opencell.config import ToolEntry
from opencell.errors import ConfigErrors
from opencell.loading import load_bot
from opencell.tools import check_tool_entry


def _check(**fields: Any) -> list[tuple[tuple[str | int, ...], str]]:
    return check_tool_entry(ToolEntry.model_validate(fields))


def test_valid_entries_have_no_errors() -> None:
    assert _check(name="current_time") == []
    assert _check(name="http_get", allow_hosts=["status.example.com"], max_bytes=500) == []
    assert _check(name="yell", python="tests.tools.sample_tools:shout") == []
    assert _check(name="whisper", python="tests.tools.sample_tools:whisper") == []
    assert _check(name="greet", python="tests.tools.sample_tools:greet", greeting="hi") == []


def test_unknown_tool_name_suggests_a_builtin() -> None:
    [(loc, message)] = _check(name="calculater")
    assert loc == ("name",)
    assert "unknown tool 'calculater' (did you mean 'calculator'?)" in message
    assert "python: package.module:function" in message


@pytest.mark.parametrize(("path", "expected"), [
    ("tests.tools.no_such_module:shout", "cannot import module 'tests.tools.no_such_module'"),
    ("tests.tools.sample_tools:shuot", "has no attribute 'shuot' (did you mean 'shout'?)"),
    ("tests.tools.sample_tools:NOT_A_TOOL", "is a int, not a function or @tool"),
    ("tests.tools.sample_tools:GreetOptions", "not a function or @tool"),
    ("tests.tools.sample_tools.shout", "is not an import path"),
])
def test_bad_python_paths(path: str, expected: str) -> None:
    [(loc, message)] = _check(name="mine", python=path)
    assert loc == ("python",)
    assert expected in message


def test_unknown_option_names_the_key() -> None:
    errors = _check(name="http_get", allow_hosts=["a.example.com"], max_byte=10)
    assert errors == [(("max_byte",), "unknown option 'max_byte' for tool 'http_get' (did you "
                                      "mean 'max_bytes'?); its options: allow_hosts, "
                                      "max_bytes, timeout")]


def test_options_for_a_tool_without_options() -> None:
    assert _check(name="calculator", precision=3) == [
        (("precision",), "unknown option 'precision': tool 'calculator' takes no options")]


def test_http_get_needs_allow_hosts() -> None:
    [(loc, message)] = _check(name="http_get")
    assert loc == ("allow_hosts",)
    assert "tool 'http_get' needs this option" in message
    [(loc, message)] = _check(name="http_get", allow_hosts=[])
    assert loc == ("allow_hosts",)


def test_each_pydantic_error_is_located() -> None:
    errors = dict(_check(name="http_get", allow_hosts=["ok.example.com", "https://x"],
                         max_bytes=-1))
    assert set(errors) == {("allow_hosts",), ("max_bytes",)}
    assert "'https://x' is not a host" in errors[("allow_hosts",)]
    assert "greater than 0 (got -1)" in errors[("max_bytes",)]


def test_bad_tool_name_for_the_model() -> None:
    [(loc, message)] = _check(name="my tool", python="tests.tools.sample_tools:shout")
    assert loc == ("name",)
    assert "not a valid tool name" in message


BOT = """\
name: fetcher
type: agent
llm:
  provider: offline
tools: {tools}
"""


def test_load_bot_locates_a_misspelt_option_in_a_flow_list(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(BOT.format(tools="[{name: http_get, allow_host: [x]}]"), encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_bot(path, env={})
    text = str(info.value)
    assert f"{path}:5: tools[0].allow_host: unknown option 'allow_host'" in text
    assert "(did you mean 'allow_hosts'?)" in text
    assert f"{path}:5: tools[0].allow_hosts: tool 'http_get' needs this option" in text


def test_load_bot_locates_the_line_of_the_option(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(BOT.format(tools="""
  - current_time
  - name: http_get
    allow_hosts: [status.example.com]
    max_bytes: lots
  - name: mine
    python: tests.tools.nowhere:thing
"""), encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_bot(path, env={})
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:9: tools[1].max_bytes: Input should be a valid integer")
    assert lines[1].startswith(f"{path}:11: tools[2].python: cannot import module")


def test_load_bot_accepts_good_tools(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text(BOT.format(tools="[current_time, {name: http_get, allow_hosts: [a.b]}]"),
                    encoding="utf-8")
    assert [t.name for t in load_bot(path, env={}).tools] == ["current_time", "http_get"]
