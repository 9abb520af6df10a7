"""The `opencell` command end to end, as a user runs it: chat piped, validate, missing keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, clean_env, opencell
from tests.fakes.llm_server import FakeLLMServer, delayed, error, reply


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer()
    server.start_in_thread()
    yield server
    server.stop_thread()


def write_bot(tmp_path: Path, body: str, name: str = "bot.yaml") -> Path:
    path = tmp_path / name
    path.write_text(body)
    return path


def test_demo_answers_two_piped_lines_without_any_key() -> None:
    result = opencell("chat", "bots/demo.yaml", stdin="hello\nwhat time is it?\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 2, result.stdout
    assert all(line.startswith("[offline]") for line in lines)
    assert "current_time" in lines[1] and "UTC" in lines[1]
    assert "Traceback" not in result.stderr


def test_demo_does_arithmetic_through_the_calculator_tool() -> None:
    result = opencell("chat", "bots/demo.yaml", stdin="what is 12*(3+4)?\n")
    assert result.returncode == 0, result.stderr
    assert "84" in result.stdout


def test_validate_accepts_every_shipped_file() -> None:
    bots = sorted(str(p.relative_to(REPO)) for p in (REPO / "bots").glob("*.yaml"))
    result = opencell("validate", *bots, "config/opencell.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok ") == len(bots) + 1


def test_validate_locates_a_bad_field_without_a_traceback(tmp_path: Path) -> None:
    bot = write_bot(tmp_path, "# comment\nname: lots\ntype: conversational\nllm:\n"
                              "  provider: claude\n  max_tokens: lots\n")
    result = opencell("validate", str(bot))
    assert result.returncode == 2
    assert f"{bot}:6: llm.max_tokens:" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_validate_reports_duplicate_names_across_files(tmp_path: Path) -> None:
    a = write_bot(tmp_path, "name: same\nllm: {provider: offline}\n", "a.yaml")
    b = write_bot(tmp_path, "llm: {provider: offline}\nname: same\n", "b.yaml")
    result = opencell("validate", str(a), str(b))
    assert result.returncode == 2
    assert f"{b}:2: name: bot name 'same' is already used by {a}" in result.stderr


def test_missing_api_key_names_the_variable_and_the_bot() -> None:
    result = opencell("chat", "bots/support.yaml", stdin="hi\n")
    assert result.returncode == 2
    assert "ANTHROPIC_API_KEY" in result.stderr and "'support'" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_platform_is_a_located_error(tmp_path: Path) -> None:
    bot = write_bot(tmp_path, "name: d\nllm: {provider: offline}\nplatforms:\n"
                              "  telegram: {token: abc}\n")
    result = opencell("run", str(bot))
    assert result.returncode == 2
    assert f"{bot}:4: platforms.telegram: unknown field 'telegram'" in result.stderr
    assert "Traceback" not in result.stderr


def test_claude_bot_shows_the_fake_models_text(tmp_path: Path,
                                              fake_llm: FakeLLMServer) -> None:
    fake_llm.push(reply("Hello from the fake Claude"))
    bot = write_bot(tmp_path, "name: c\nllm: {provider: claude, max_retries: 0}\n")
    env = clean_env(ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=fake_llm.url)
    result = opencell("chat", str(bot), stdin="hi\n", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Hello from the fake Claude"
    (request,) = fake_llm.requests
    assert request.json["messages"][-1]["content"] in ("hi", [{"type": "text", "text": "hi"}])


@pytest.mark.parametrize("failure", ["500", "429", "timeout"])
def test_a_failing_model_gets_a_polite_reply_and_the_next_line_is_served(
        tmp_path: Path, fake_llm: FakeLLMServer, failure: str) -> None:
    step = {"500": error(500, "boom"), "429": error(429, "slow down", headers={"retry-after": "0"}),
            "timeout": delayed(3.0)}[failure]
    fake_llm.push(step, reply("second answer"))
    bot = write_bot(tmp_path, "name: c\nllm: {provider: claude, max_retries: 0, "
                              "timeout: 1s}\n")
    env = clean_env(ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=fake_llm.url)
    result = opencell("chat", str(bot), stdin="first\nsecond\n", env=env)
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.strip().splitlines()
    assert "try again" in first.lower()
    assert second == "second answer"
    assert "Traceback" not in result.stderr
