"""create_llm: provider choice, secrets, base URLs and the SDKs' retry/timeout settings."""

from __future__ import annotations

import socket
import subprocess
import sys
from typing import Any

import pytest

from opencell.config import LLMConfig
from opencell.errors import LLMResponseError, LLMTimeoutError, MissingSecretError
from opencell.llm import ChatMessage, LLMClient, LLMRequest, create_llm
from opencell.llm.anthropic import AnthropicClient
from opencell.llm.offline import OfflineClient
from opencell.llm.openai import OpenAIClient
from tests.fakes.llm_server import ANTHROPIC_PATH, OPENAI_PATH, FakeLLMServer, delayed, error

REQUEST = LLMRequest(system="", messages=[ChatMessage("user", "hi")], max_tokens=16)
VARIABLES = {"claude": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
             "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
             "moonshot": ("MOONSHOT_API_KEY", "MOONSHOT_BASE_URL")}


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def fake_url(server: FakeLLMServer, provider: str) -> str:
    return server.anthropic_base_url if provider == "claude" else server.openai_base_url


async def complete_once(client: LLMClient) -> None:
    try:
        await client.complete(REQUEST)
    finally:
        await client.aclose()


@pytest.mark.parametrize("provider", list(VARIABLES))
@pytest.mark.parametrize("value", [None, ""], ids=["unset", "empty"])
def test_missing_key_names_the_variable_and_the_bot(provider: Any, value: str | None) -> None:
    key_variable, _ = VARIABLES[provider]
    env = {} if value is None else {key_variable: value}
    with pytest.raises(MissingSecretError) as caught:
        create_llm(LLMConfig(provider=provider), bot="support", env=env)
    assert caught.value.variable == key_variable and caught.value.bot == "support"
    assert key_variable in str(caught.value) and "'support'" in str(caught.value)
    assert f"llm.provider: {provider}" in str(caught.value)


def test_offline_needs_no_key() -> None:
    client = create_llm(LLMConfig(provider="offline"), bot="demo", env={})
    assert isinstance(client, OfflineClient) and client.model == "offline-demo"


@pytest.mark.parametrize("provider, cls", [
    ("claude", AnthropicClient), ("openai", OpenAIClient), ("moonshot", OpenAIClient),
])
async def test_key_and_base_url_from_env(
    llm_server: FakeLLMServer, provider: Any, cls: type,
) -> None:
    key_variable, url_variable = VARIABLES[provider]
    env = {key_variable: "env-key", url_variable: fake_url(llm_server, provider)}
    client = create_llm(LLMConfig(provider=provider, max_retries=0), bot="b", env=env)
    assert isinstance(client, cls) and isinstance(client, LLMClient)
    assert client.provider == provider

    await complete_once(client)

    path, sent, headers = llm_server.requests[0]
    assert path == (ANTHROPIC_PATH if provider == "claude" else OPENAI_PATH)
    assert sent["model"] == LLMConfig(provider=provider).model
    assert "env-key" in headers.get("x-api-key", headers.get("Authorization", ""))


@pytest.mark.parametrize("provider", list(VARIABLES))
async def test_config_key_and_base_url_win_over_env(
    llm_server: FakeLLMServer, provider: Any,
) -> None:
    key_variable, url_variable = VARIABLES[provider]
    env = {key_variable: "env-key", url_variable: dead_url()}
    llm = LLMConfig(provider=provider, api_key="yaml-key", max_retries=0,
                    base_url=fake_url(llm_server, provider))
    await complete_once(create_llm(llm, bot="b", env=env))
    headers = llm_server.requests[0].headers
    assert "yaml-key" in headers.get("x-api-key", headers.get("Authorization", ""))


@pytest.mark.parametrize("provider, default", [
    ("claude", "https://api.anthropic.com"),
    ("openai", "https://api.openai.com/v1"),
    ("moonshot", "https://api.moonshot.ai/v1"),
])
def test_default_base_url_ignores_the_process_environment(
    monkeypatch: pytest.MonkeyPatch, provider: Any, default: str,
) -> None:
    # The SDKs would read these themselves; the env mapping given to create_llm must win.
    for _, url_variable in VARIABLES.values():
        monkeypatch.setenv(url_variable, "http://127.0.0.1:9/elsewhere")
    key_variable, _ = VARIABLES[provider]
    client = create_llm(LLMConfig(provider=provider), bot="b", env={key_variable: "k"})
    assert isinstance(client, AnthropicClient | OpenAIClient)
    assert client.base_url == default
    assert str(client._client.base_url).rstrip("/") == default


def test_env_defaults_to_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOONSHOT_API_KEY", "process-key")
    monkeypatch.setenv("MOONSHOT_BASE_URL", "http://127.0.0.1:9/v1")
    client = create_llm(LLMConfig(provider="moonshot"), bot="b")
    assert isinstance(client, OpenAIClient) and client.base_url == "http://127.0.0.1:9/v1"


@pytest.mark.parametrize("provider", ["claude", "openai"])
async def test_max_retries_reaches_the_sdk(llm_server: FakeLLMServer, provider: Any) -> None:
    key_variable, _ = VARIABLES[provider]
    # 1, not the SDKs' default of 2, so the test fails if the setting is not passed on.
    llm = LLMConfig(provider=provider, max_retries=1, base_url=fake_url(llm_server, provider))
    fast = {"retry-after-ms": "1"}
    llm_server.push(error(503, headers=fast), error(503, headers=fast), error(503, headers=fast))
    with pytest.raises(LLMResponseError) as caught:
        await complete_once(create_llm(llm, bot="b", env={key_variable: "k"}))
    assert caught.value.status == 503
    assert len(llm_server.requests) == 2  # the first try and one retry
    assert "after 1 retry" in str(caught.value)


@pytest.mark.parametrize("provider", ["claude", "openai"])
async def test_timeout_reaches_the_sdk(llm_server: FakeLLMServer, provider: Any) -> None:
    key_variable, _ = VARIABLES[provider]
    llm = LLMConfig(provider=provider, max_retries=0, timeout=0.25,
                    base_url=fake_url(llm_server, provider))
    llm_server.push(delayed(10))
    with pytest.raises(LLMTimeoutError) as caught:
        await complete_once(create_llm(llm, bot="b", env={key_variable: "k"}))
    assert "0.25s" in str(caught.value)


def test_importing_opencell_llm_does_not_import_the_sdks() -> None:
    code = ("import sys, opencell.llm; "
            "print(sorted(m for m in ('anthropic', 'openai') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
