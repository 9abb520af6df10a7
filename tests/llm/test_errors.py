"""Failures through the real SDKs' retry logic, for every SDK-backed provider.

Retries are the SDKs' own: these tests check that we configured them and that whatever
survives them arrives as the right ``LLMError`` with provider, status and request id.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from opencell.errors import (
    LLMAuthError,
    LLMConnectionError,
    LLMError,
    LLMRateLimitError,
    LLMResponseError,
    LLMTimeoutError,
)
from opencell.llm import ChatMessage, LLMClient, LLMRequest
from opencell.llm.anthropic import AnthropicClient
from opencell.llm.openai import OpenAIClient
from tests.fakes.llm_server import FakeLLMServer, delayed, error, malformed, reply

KEY = "sk-very-secret-key-123"
FAST = {"retry-after-ms": "1"}  # the SDKs honour it, so retries cost no real backoff
REQUEST = LLMRequest(system="", messages=[ChatMessage("user", "hi")], max_tokens=16)

MakeClient = Callable[..., LLMClient]


@pytest.fixture(params=["claude", "openai", "moonshot"])
async def make_client(
    request: pytest.FixtureRequest, llm_server: FakeLLMServer,
) -> AsyncIterator[MakeClient]:
    """Builds a client of the parametrized provider pointed at the fake."""
    made: list[LLMClient] = []

    def make(*, max_retries: int = 0, timeout: float = 5.0,
             base_url: str | None = None) -> LLMClient:
        kwargs: dict[str, Any] = {"model": "m", "api_key": KEY, "max_retries": max_retries,
                                  "timeout": timeout}
        client: LLMClient
        if request.param == "claude":
            client = AnthropicClient(base_url=base_url or llm_server.url, **kwargs)
        else:
            client = OpenAIClient(base_url=base_url or llm_server.openai_base_url,
                                  provider=request.param, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


async def failure(client: LLMClient) -> LLMError:
    with pytest.raises(LLMError) as caught:
        await client.complete(REQUEST)
    assert caught.value.provider == client.provider
    return caught.value


@pytest.mark.parametrize("status", [429, 500, 529])
async def test_transient_status_is_retried_then_succeeds(
    llm_server: FakeLLMServer, make_client: MakeClient, status: int,
) -> None:
    llm_server.push(error(status, headers=FAST), reply("recovered"))
    response = await make_client(max_retries=1).complete(REQUEST)
    assert response.text == "recovered"
    assert len(llm_server.requests) == 2
    assert llm_server.requests[1].headers["x-stainless-retry-count"] == "1"


async def test_500_without_retries_is_a_response_error(
    llm_server: FakeLLMServer, make_client: MakeClient,
) -> None:
    llm_server.push(error(500, "upstream exploded"))
    exc = await failure(make_client(max_retries=0))
    assert type(exc) is LLMResponseError and not exc.retryable
    assert (exc.status, exc.request_id) == (500, "req_fake_1")
    assert "upstream exploded" in str(exc) and "try again later" in str(exc)
    assert len(llm_server.requests) == 1


async def test_429_after_the_sdk_retries_is_a_rate_limit_error(
    llm_server: FakeLLMServer, make_client: MakeClient,
) -> None:
    llm_server.push(error(429, headers=FAST), error(429, "slow down", headers=FAST))
    exc = await failure(make_client(max_retries=1))
    assert isinstance(exc, LLMRateLimitError) and exc.retryable
    assert (exc.status, exc.request_id) == (429, "req_fake_2")
    assert "after 1 retry" in str(exc)
    assert len(llm_server.requests) == 2


async def test_no_answer_in_time_is_a_timeout_error(
    llm_server: FakeLLMServer, make_client: MakeClient,
) -> None:
    llm_server.push(delayed(10))  # an answer in 10 s: an error now is the 0.2 s timeout's
    exc = await failure(make_client(max_retries=0, timeout=0.2))
    assert isinstance(exc, LLMTimeoutError) and exc.retryable
    assert "llm.timeout" in str(exc)
    assert len(llm_server.requests) == 1  # one attempt, given up, not retried


async def test_a_timeout_is_retried_by_the_sdk(
    llm_server: FakeLLMServer, make_client: MakeClient,
) -> None:
    llm_server.push(delayed(10), reply("second time lucky"))
    response = await make_client(max_retries=1, timeout=0.3).complete(REQUEST)
    assert response.text == "second time lucky"
    assert len(llm_server.requests) == 2


@pytest.mark.parametrize("body, content_type", [
    (b"{not json", "application/json"),
    ({"unexpected": True}, "application/json"),
    ({"id": "x", "model": "m", "content": None, "choices": None}, "application/json"),
    (b"<html>502 Bad Gateway</html>", "text/html"),
], ids=["not-json", "missing-fields", "null-fields", "html"])
async def test_malformed_body_is_a_response_error(
    llm_server: FakeLLMServer, make_client: MakeClient, body: Any, content_type: str,
) -> None:
    llm_server.push(malformed(body, content_type))
    exc = await failure(make_client(max_retries=1))
    assert type(exc) is LLMResponseError
    assert "could not read the response" in str(exc)
    assert len(llm_server.requests) == 1  # a 200 is not retried


async def test_rejected_key_names_the_variable_and_never_the_key(
    llm_server: FakeLLMServer, make_client: MakeClient,
) -> None:
    llm_server.push(error(401, f"invalid x-api-key {KEY}"))
    client = make_client(max_retries=1)
    exc = await failure(client)
    assert isinstance(exc, LLMAuthError) and not exc.retryable
    assert exc.status == 401 and exc.request_id == "req_fake_1"
    variable = {"claude": "ANTHROPIC_API_KEY", "openai": "OPENAI_API_KEY",
                "moonshot": "MOONSHOT_API_KEY"}[client.provider]
    assert variable in str(exc)
    assert KEY not in str(exc) and "[redacted]" in str(exc)
    assert len(llm_server.requests) == 1  # auth errors are not retried


async def test_forbidden_is_an_auth_error(
    llm_server: FakeLLMServer, make_client: MakeClient,
) -> None:
    llm_server.push(error(403, "model not allowed"))
    exc = await failure(make_client())
    assert isinstance(exc, LLMAuthError) and exc.status == 403


async def test_bad_request_is_a_response_error_and_not_retried(
    llm_server: FakeLLMServer, make_client: MakeClient,
) -> None:
    llm_server.push(error(400, "max_tokens too large"))
    exc = await failure(make_client(max_retries=2))
    assert type(exc) is LLMResponseError and exc.status == 400
    assert "max_tokens too large" in str(exc) and "llm.model" in str(exc)
    assert len(llm_server.requests) == 1


async def test_unreachable_endpoint_is_a_connection_error(make_client: MakeClient) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    exc = await failure(make_client(max_retries=0, base_url=dead))
    assert isinstance(exc, LLMConnectionError) and exc.retryable
    assert dead in str(exc) and exc.status is None
