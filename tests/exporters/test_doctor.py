"""``opencell doctor``: one line per check, a clear line for a wrong AgentOps key, exit codes."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import clean_env, opencell
from tests.fakes.agentops_server import VALID_KEY, FakeAgentOps
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


def test_everything_healthy_passes(tmp_path: Path, fake_agentops: FakeAgentOps,
                                   otlp_receiver: OTLPReceiver) -> None:
    bot = tmp_path / "bot.yaml"
    bot.write_text("name: helper\nllm: {provider: claude}\n")
    env = agentops_env(fake_agentops, VALID_KEY)
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=otlp_receiver.url, ANTHROPIC_API_KEY="sk-ant-x")
    otlp_receiver.reject_empty = True  # like MLflow: an export without spans is a 400
    result = opencell("doctor", str(bot), env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for name in ("config", "bot helper", "bot helper secrets", "store", "AgentOps", "OTLP"):
        assert f"✓ {name}:" in out
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
