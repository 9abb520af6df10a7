"""Rebuild what each model call of a session was sent, from the deltas its records keep.

An ``llm_call`` record stores only what changed since the session's previous call (see
``opencell/observability/model_input.py``): ``input`` = ``{"from", "keep", "add", "n",
"call"}``, and ``system`` / ``tools_offered`` when they changed. :func:`rebuild` walks a
session's calls in order and gives each one its whole input: :class:`ModelInput`.

A chain can break — a record dropped by a full queue, quarantined, or written by an older
version that kept only the last prompt message. The input is then rebuilt as far as it can
be and ``missing`` says how many earlier messages are unknown; nothing is invented.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]
"""A stored message: ``role``, ``content``; ``tool_calls`` (``id``, ``name``,
``arguments``) on an assistant message; ``tool_call_id``, ``name``, ``is_error`` on a tool
answer."""


@dataclass(frozen=True, slots=True)
class ModelInput:
    """Everything one model call was sent, as far as the records tell."""

    messages: tuple[Message, ...] = ()
    system: str | None = None
    """None: unknown (no record of the session said it); "" : none was sent."""
    tools: tuple[Mapping[str, Any], ...] = ()
    """The tools offered: ``name``, ``description``, ``parameters`` (JSON schema)."""
    missing: int = 0
    """Earlier messages the records could not give back (a broken chain)."""
    call: int = 0
    """The call's number in its session (0: unknown)."""
    known: bool = field(default=True)
    """False when the record holds no input at all (content capture was off)."""


EMPTY = ModelInput(known=False)


def step(before: ModelInput | None, data: Mapping[str, Any]) -> ModelInput:
    """The input of the call recorded in ``data``, given the session's previous call's."""
    before = before or EMPTY
    system = data["system"] if isinstance(data.get("system"), str) else before.system
    offered = data.get("tools_offered")
    tools = tuple(t for t in offered if isinstance(t, Mapping)) if isinstance(
        offered, list) else before.tools
    delta = data.get("input")
    if not isinstance(delta, Mapping):
        last = data.get("prompt_last")  # an older record: only the last message was kept
        if isinstance(last, Mapping):
            return ModelInput((dict(last),), system, tools, missing=1, known=True)
        return ModelInput((), system, tools, known=False)
    start, keep = _int(delta.get("from")), _int(delta.get("keep"))
    call = _int(delta.get("call"))
    add = [dict(m) for m in delta.get("add") or () if isinstance(m, Mapping)]
    chained = before.known and (not call or not before.call or before.call == call - 1)
    kept: list[Message] = []
    if chained:  # before.messages is the previous input without its first `missing`
        low = max(start, before.missing) - before.missing
        kept = list(before.messages[low:max(low, start + keep - before.missing)])
    missing = keep - len(kept)
    return ModelInput(tuple(kept + add), system, tools, missing=missing, call=call)


def rebuild(calls: Iterable[Mapping[str, Any]]) -> list[ModelInput]:
    """The inputs of a session's ``llm_call`` records (their data, in recorded order)."""
    out: list[ModelInput] = []
    before: ModelInput | None = None
    for data in calls:
        before = step(before, data)
        out.append(before)
    return out


def _int(value: object) -> int:
    return value if type(value) is int and value >= 0 else 0
