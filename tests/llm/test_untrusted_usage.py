"""Every provider distrusts the usage it is sent: missing or impossible numbers become the worst
case, flagged ``estimated`` (real SDKs against the loopback fake)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from opencell.llm import ChatMessage, LLMRequest
from opencell.llm.anthropic import AnthropicClient
from opencell.llm.base import LLMClient, Usage
from opencell.llm.openai import OpenAIClient
from opencell.llm.usage import MAX_PLAUSIBLE_TOKENS, estimate_input_tokens, token_count
from tests.fakes.llm_server import FakeLLMServer, Step, reply

PROVIDERS = ("claude", "openai", "moonshot")
REQUEST = LLMRequest(system="Be brief.", messages=[ChatMessage("user", "what is 2+2?")],
                     max_tokens=300)
WORST_IN = estimate_input_tokens(REQUEST)


@pytest.fixture(params=PROVIDERS)
async def client(request: pytest.FixtureRequest,
                 llm_server: FakeLLMServer) -> AsyncIterator[LLMClient]:
    provider: str = request.param
    llm: AnthropicClient | OpenAIClient
    if provider == "claude":
        llm = AnthropicClient(model="claude-test", api_key="sk-ant-test",
                              base_url=llm_server.anthropic_base_url, max_retries=0, timeout=5)
    else:
        llm = OpenAIClient(model=f"{provider}-test", api_key="sk-test", provider=provider,
                           base_url=llm_server.openai_base_url, max_retries=0, timeout=5)
    yield llm
    await llm.aclose()


def names(provider: str) -> tuple[str, str]:
    """(input key, output key) in the provider's own usage object."""
    if provider == "claude":
        return "input_tokens", "output_tokens"
    return "prompt_tokens", "completion_tokens"


async def answer(server: FakeLLMServer, llm: LLMClient, step: Step) -> Usage:
    server.push(step)
    response = await llm.complete(REQUEST)
    assert response.text == "4"
    return response.usage


async def test_honest_usage_is_taken_as_reported(llm_server: FakeLLMServer,
                                                 client: LLMClient) -> None:
    inp, out = names(client.provider)
    usage = await answer(llm_server, client, reply("4", usage={inp: 1234, out: 56}))
    assert usage == Usage(1234, 56)
    assert not usage.estimated
    # A whole number sent as 56.0 is still a whole number.
    usage = await answer(llm_server, client, reply("4", usage={inp: 1234.0, out: 56.0}))
    assert usage == Usage(1234, 56) and not usage.estimated


BAD_OUTPUT = [
    pytest.param(-100_000, id="negative"),
    pytest.param(None, id="null"),
    pytest.param(12.5, id="fraction"),
    pytest.param("56", id="string"),
    pytest.param(10**15, id="absurd"),
    pytest.param(MAX_PLAUSIBLE_TOKENS + 1, id="just-over-plausible"),
]


@pytest.mark.parametrize("bad", BAD_OUTPUT)
async def test_an_impossible_output_count_becomes_max_tokens(
        llm_server: FakeLLMServer, client: LLMClient, bad: Any) -> None:
    inp, out = names(client.provider)
    usage = await answer(llm_server, client, reply("4", usage={inp: 2000, out: bad}))
    # The reported input (larger than the estimate) is kept; the output is its worst case.
    assert usage == Usage(2000, REQUEST.max_tokens, estimated=True)


@pytest.mark.parametrize("bad", BAD_OUTPUT)
async def test_an_impossible_input_count_becomes_the_estimate(
        llm_server: FakeLLMServer, client: LLMClient, bad: Any) -> None:
    inp, out = names(client.provider)
    usage = await answer(llm_server, client, reply("4", usage={inp: bad, out: 400}))
    # The reported output (larger than max_tokens) is kept: never below what was reported.
    assert usage == Usage(WORST_IN, 400, estimated=True)


async def test_negative_everything_is_the_worst_case(llm_server: FakeLLMServer,
                                                     client: LLMClient) -> None:
    inp, out = names(client.provider)
    usage = await answer(llm_server, client,
                         reply("4", usage={inp: -100_000, out: -100_000}))
    assert usage == Usage(WORST_IN, REQUEST.max_tokens, estimated=True)


@pytest.mark.parametrize("which", ["input", "output"])
async def test_a_missing_count_is_the_worst_case(llm_server: FakeLLMServer,
                                                 client: LLMClient, which: str) -> None:
    inp, out = names(client.provider)
    omit = inp if which == "input" else out
    usage = await answer(llm_server, client, reply("4", usage={inp: 5, out: 5},
                                                   usage_omit=(omit,)))
    assert usage.estimated
    assert (usage.input_tokens, usage.output_tokens) == (WORST_IN, REQUEST.max_tokens)


@pytest.mark.parametrize("how", ["absent", "null"])
async def test_no_usage_at_all_is_the_worst_case(llm_server: FakeLLMServer,
                                                 client: LLMClient, how: Any) -> None:
    usage = await answer(llm_server, client, reply("4", no_usage=how))
    assert usage == Usage(WORST_IN, REQUEST.max_tokens, estimated=True)


async def test_impossible_cache_counts_are_not_trusted(llm_server: FakeLLMServer,
                                                       client: LLMClient) -> None:
    if client.provider == "claude":
        bad: dict[str, Any] = {"input_tokens": 50, "output_tokens": 5,
                               "cache_read_input_tokens": -10_000}
    else:  # more cached tokens than the prompt had
        bad = {"prompt_tokens": 50, "completion_tokens": 5,
               "prompt_tokens_details": {"cached_tokens": 10_000}}
    usage = await answer(llm_server, client, reply("4", usage=bad))
    assert usage.estimated
    assert usage.input_tokens >= WORST_IN and usage.output_tokens == REQUEST.max_tokens
    assert min(usage.cache_read_tokens, usage.cache_write_tokens) >= 0


async def test_moonshot_top_level_cached_tokens_are_checked_too(
        llm_server: FakeLLMServer) -> None:
    kimi = OpenAIClient(model="kimi-test", api_key="sk-moon", provider="moonshot",
                        base_url=llm_server.openai_base_url, max_retries=0, timeout=5)
    try:
        good = await answer(llm_server, kimi, reply("4", usage={
            "prompt_tokens": 100, "completion_tokens": 5, "cached_tokens": 40},
            usage_omit=("prompt_tokens_details",)))
        bad = await answer(llm_server, kimi, reply("4", usage={
            "prompt_tokens": 100, "completion_tokens": 5, "cached_tokens": -40},
            usage_omit=("prompt_tokens_details",)))
    finally:
        await kimi.aclose()
    assert good == Usage(60, 5, 40)
    assert bad.estimated and bad.cache_read_tokens == 0


def test_only_whole_plausible_numbers_are_counts() -> None:
    # The openai SDK turns a JSON ``true`` into 1 before we see it; anthropic's does not.
    assert [token_count(v) for v in (0, 7, 7.0, MAX_PLAUSIBLE_TOKENS)] == [
        0, 7, 7, MAX_PLAUSIBLE_TOKENS]
    for bad in (True, -1, 7.5, float("nan"), float("inf"), "7", None, [7],
                MAX_PLAUSIBLE_TOKENS + 1):
        assert token_count(bad) is None, bad
