"""``opencell doctor``: one line per check, a clear line for a wrong AgentOps key, exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import clean_env, opencell
from tests.fakes.agentops_server import VALID_KEY, FakeAgentOps
from tests.fakes.discord_server import FakeDiscord
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.otlp_receiver import OTLPReceiver

WRONG_KEY = "11111111-2222-4333-8444-555555555555"


def agentops_env(fake: FakeAgentOps, key: str) -> dict[str, str]:
    return clean_env(AGENTOPS_ENABLED="true", AGENTOPS_API_KEY=key,
                     AGENTOPS_ENDPOINT=fake.url, AGENTOPS_EXPORTER_ENDPOINT=fake.traces_url)


def test_a_wrong_agentops_key_is_one_line_and_a_failure(fake_agentops: FakeAgentOps) -> None:
    result = opencell("doctor", "--timeout", "2", env=agentops_env(fake_agentops, WRONG_KEY))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "API_KEY" in line or "✗" in line]
    assert lines == [
        "✗ AgentOps: AGENTOPS_API_KEY was rejected by AgentOps (HTTP 403: unknown key); copy "
        "it from the AgentOps app (Settings → Projects → API key)"]
    assert WRONG_KEY not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_a_key_that_is_not_a_uuid_says_so(fake_agentops: FakeAgentOps) -> None:
    result = opencell("doctor", env=agentops_env(fake_agentops, "sk-not-a-uuid"))
    assert result.returncode == 1
    assert "is not an AgentOps API key (HTTP 400" in result.stdout


@pytest.fixture
def model_api() -> Iterator[FakeLLMServer]:
    fake = FakeLLMServer()
    fake.api_keys = {"sk-ant-good"}
    fake.start_in_thread()
    yield fake
    fake.stop_thread()


def test_everything_healthy_passes(tmp_path: Path, fake_agentops: FakeAgentOps,
                                   otlp_receiver: OTLPReceiver, model_api: FakeLLMServer) -> None:
    bot = tmp_path / "bot.yaml"
    bot.write_text("name: helper\nllm: {provider: claude}\n")
    env = agentops_env(fake_agentops, VALID_KEY)
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.url, ANTHROPIC_API_KEY="sk-ant-good",
               ANTHROPIC_BASE_URL=model_api.url)
    otlp_receiver.reject_empty = True  # like MLflow: an export without spans is a 400
    result = opencell("doctor", str(bot), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for name in ("config", "bot helper", "bot helper secrets", "bot helper model key", "store",
                 "AgentOps", "OTLP"):
        assert f"✓ {name}:" in out
    assert "… checking the credentials of bot helper" in result.stderr  # progress while waiting
    (listed,) = model_api.requests_to("/v1/models")  # the key, tried for real
    assert listed.headers["x-api-key"] == "sk-ant-good"
    assert "writable" in out and "project proj-fake-1" in out
    # the doctor's probe is an empty export: nothing counted as spans
    assert fake_agentops.spans == [] and len(fake_agentops.exports) == 1
    # the OTLP probe is a valid minimal export: one span, named so a user can tell it apart
    (probe,) = otlp_receiver.spans
    assert probe.name == "opencell doctor" and probe.attrs == {"opencell.probe": True}


def test_missing_secrets_and_an_unreachable_collector_are_named(tmp_path: Path) -> None:
    bot = tmp_path / "bot.yaml"
    bot.write_text("name: helper\nllm: {provider: claude}\n")
    env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    result = opencell("doctor", str(bot), "--timeout", "1", env=env)
    assert result.returncode == 1
    assert "✗ bot helper secrets: bot 'helper' needs ANTHROPIC_API_KEY" in result.stdout
    assert "✗ OTLP: http://127.0.0.1:9/v1/traces cannot be reached (connection refused)" \
        in result.stdout


def test_a_rejected_model_key_and_a_bogus_discord_token_fail(
        tmp_path: Path, model_api: FakeLLMServer) -> None:
    discord = FakeDiscord(token="real-bot-token").start_in_thread()
    try:
        bot = tmp_path / "bot.yaml"
        bot.write_text("name: helper\nllm: {provider: claude}\n"
                       "platforms: {discord: {token: bogus-token}}\n")
        env = clean_env(ANTHROPIC_API_KEY="sk-ant-revoked", ANTHROPIC_BASE_URL=model_api.url,
                        OPENCELL_DISCORD_API_BASE=discord.api_base)
        result = opencell("doctor", str(bot), "--timeout", "5", env=env)
    finally:
        discord.stop_thread()
    assert result.returncode == 1, result.stdout + result.stderr
    assert ("✗ bot helper model key: the model API rejected ANTHROPIC_API_KEY (HTTP 401) → "
            "set a valid ANTHROPIC_API_KEY") in result.stdout
    assert "✗ bot helper Discord token: Discord rejected DISCORD_TOKEN (HTTP 401)" \
        in result.stdout
    assert ("GET", "/users/@me") in discord.requests
    assert "sk-ant-revoked" not in result.stdout + result.stderr
    assert "bogus-token" not in result.stdout + result.stderr


def test_an_unanswering_model_api_is_bounded_by_the_timeout(tmp_path: Path) -> None:
    import socket

    silent = socket.socket()  # accepts connections (backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    try:
        bot = tmp_path / "bot.yaml"
        bot.write_text("name: helper\nllm: {provider: openai, model: gpt-4o-mini}\n")
        env = clean_env(OPENAI_API_KEY="sk-x",
                        OPENAI_BASE_URL=f"http://127.0.0.1:{silent.getsockname()[1]}/v1")
        result = opencell("doctor", str(bot), "--timeout", "0.5", env=env)
    finally:
        silent.close()
    assert result.returncode == 1
    assert "✗ bot helper model key: cannot reach" in result.stdout
