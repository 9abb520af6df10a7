"""Reading the token counts a provider reports without trusting them.

A provider's ``usage`` is the only input to what a call costs, so a wrong number there moves
budgets: a negative count would lower a tally, a missing one would make the call free. Every
count must be a whole number from 0 to :data:`MAX_PLAUSIBLE_TOKENS`. When a required count is
missing, or any count is negative, not a whole number, absurdly large or inconsistent with the
others, the call's usage is replaced by its worst case — the request's generous input estimate
(the one budgets reserve) and ``max_tokens`` of output, or what the provider did report when
that is larger — and marked ``estimated`` so the record, the dashboard and ``opencell costs``
can say so and budgets settle it at no less than its reservation.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping
from typing import Any

from opencell.llm.base import LLMRequest, Usage
from opencell.records import MAX_COUNT, valid_count

log = logging.getLogger("opencell.llm")

MAX_PLAUSIBLE_TOKENS = 10_000_000
"""More tokens than any model's context window (the largest are ~10M) in one count: not real."""
CHARS_PER_TOKEN = 3.0
"""Input estimate: English averages about 4 characters per token; 3 errs on the safe side."""
TOKENS_PER_MESSAGE = 8
"""Role markers and formatting the provider adds around each message."""

ABSENT = object()
"""A count the body did not carry at all (told apart from an explicit ``null``)."""


def estimate_input_tokens(request: LLMRequest) -> int:
    """A generous estimate of the request's input tokens (text, tool calls, tool schemas)."""
    chars = len(request.system)
    overhead = TOKENS_PER_MESSAGE
    for message in request.messages:
        chars += len(message.content) + len(message.tool_name)
        for call in message.tool_calls:
            chars += len(call.name) + len(json.dumps(call.arguments, default=str))
        overhead += TOKENS_PER_MESSAGE
    for tool in request.tools:
        chars += len(tool.name) + len(tool.description) + len(json.dumps(tool.parameters))
        overhead += TOKENS_PER_MESSAGE
    return overhead + math.ceil(chars / CHARS_PER_TOKEN)


def worst_case_usage(request: LLMRequest) -> Usage:
    """The most ``request`` can use: its input estimate and all of ``max_tokens``."""
    return Usage(input_tokens=estimate_input_tokens(request),
                 output_tokens=max(int(request.max_tokens), 0))


def field(source: object, name: str) -> object:
    """``source.name`` or ``source[name]``; :data:`ABSENT` when it has no such field.

    The SDKs build their models without validation, so a field may hold anything the body
    held, and a nested object the SDK could not model may still be a plain mapping.
    """
    if source is None or source is ABSENT:
        return ABSENT
    if isinstance(source, Mapping):
        return source.get(name, ABSENT)
    extra = getattr(source, "model_extra", None) or {}
    if name in extra:
        return extra[name]
    fields_set = getattr(source, "model_fields_set", None)
    if fields_set is not None and name not in fields_set:
        return ABSENT
    return getattr(source, name, ABSENT)


def token_count(value: object) -> int | None:
    """``value`` as a token count, or None when it is not a plausible one.

    A whole-number float (``12.0``) is accepted; booleans, strings, fractions, NaN, negative
    and absurdly large numbers are not.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        number = int(value)
    else:
        return None
    return number if 0 <= number <= MAX_PLAUSIBLE_TOKENS else None


def checked_usage(request: LLMRequest, *, provider: str, input_tokens: object,
                  output_tokens: object, cache_read: object = ABSENT,
                  cache_write: object = ABSENT, cache_in_input: bool = False) -> Usage:
    """The call's ``Usage`` from the counts the provider reported, distrusting them.

    ``input_tokens`` and ``output_tokens`` are required; the cache counts may be absent or
    null (then 0). With ``cache_in_input`` (OpenAI-style), ``input_tokens`` includes the
    cached tokens, which are subtracted here.
    """
    problems: list[str] = []

    def read(name: str, value: object, required: bool) -> int:
        if not required and (value is ABSENT or value is None):
            return 0
        found = token_count(value)
        if found is None:
            problems.append(f"{name}={_describe(value)}")
            return 0
        return found

    prompt = read("input_tokens", input_tokens, True)
    output = read("output_tokens", output_tokens, True)
    cached = read("cache_read_tokens", cache_read, False)
    written = read("cache_write_tokens", cache_write, False)
    if cache_in_input:
        if cached + written > prompt and not problems:
            problems.append(f"cached={cached + written}>input_tokens={prompt}")
        prompt = max(prompt - cached - written, 0)
    if not problems:
        return Usage(prompt, output, cached, written)
    worst = worst_case_usage(request)
    log.warning("llm usage untrusted provider=%s problems=%s settled_as=worst_case",
                provider, ",".join(problems))
    return Usage(input_tokens=max(prompt, worst.input_tokens),
                 output_tokens=max(output, worst.output_tokens),
                 cache_read_tokens=cached, cache_write_tokens=written, estimated=True)


def missing_usage(request: LLMRequest, *, provider: str) -> Usage:
    """The worst case of a call whose answer carried no usage at all."""
    log.warning("llm usage untrusted provider=%s problems=usage_missing settled_as=worst_case",
                provider)
    worst = worst_case_usage(request)
    return Usage(worst.input_tokens, worst.output_tokens, estimated=True)


def _describe(value: object) -> str:
    if value is ABSENT:
        return "missing"
    text = repr(value)
    return text if len(text) <= 24 else text[:23] + "…"


TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def storable_usage(usage: Usage) -> tuple[Usage, dict[str, object]]:
    """``usage`` with every count a valid one (a bad count becomes 0), and the bad values:
    what a record may hold, whoever built the ``Usage`` (the facade's ``track_cost`` too)."""
    invalid: dict[str, object] = {}
    changes: dict[str, Any] = {}
    for name in TOKEN_FIELDS:
        value = getattr(usage, name)
        if type(value) is int and 0 <= value <= MAX_COUNT:
            continue
        checked = valid_count(value)
        if checked is None:
            invalid[name] = value
        changes[name] = checked or 0
    return (dataclasses.replace(usage, **changes) if changes else usage), invalid
