"""What of a stored event is *content* and what is *structure*, and how each is removed.

Content is what people and tools said: message text, prompts and completions, tool
arguments and results, error messages, stacks and context, session-end metadata, and the
whole data of a custom event. Structure is everything that counts: kinds, names, times,
durations, success, lengths (``input_chars``, ``result_chars``), tokens, costs, models.

Retention expires content earlier than structure (:func:`strip_content`); erasure strips
content and also replaces the user's id and name in what remains (:func:`erase`).
Both leave ``content_expired: true`` (and erasure ``erased: true``) in the data so a
timeline says why a field is empty.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from opencell.store._json import to_json

CONTENT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "message": ("input", "output"),
    # What the model was sent (``input`` as the change since the previous call, ``system``,
    # ``tools_offered``; ``prompt_last`` in stores written before those) and what it said.
    "llm_call": ("completion", "completion_calls", "input", "system", "tools_offered",
                 "prompt_last", "error"),
    "tool_call": ("args", "result", "error"),
    "error": ("message", "stack", "context"),
    "session_end": ("metadata",),
}
"""Per kind, the data fields that hold content; a ``custom`` event's data is all content."""

_TEXT_HOLDING = frozenset(("key", "scope", "message", "alert_key"))
"""Fields whose text may hold the user id inside it: a conversation key
(``bot/platform/user``), an alert's ``user:alice`` scope and its message."""

EXPIRED = "content_expired"
ERASED = "erased"
TEXT_REF = '"$text"'
"""How a reference to a shared large text looks inside stored JSON (see ``texts.py``)."""


def loads(text: str | None) -> Any:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def dumps(value: Any) -> str:
    """Data as the store writes it (compact JSON, one C encoder built once)."""
    return to_json(value)


def strip_content(kind: str, data: Any) -> dict[str, Any] | None:
    """``data`` without its content fields (set to None) and marked expired, or None when
    there is nothing to strip (no content, or stripped before)."""
    if not isinstance(data, dict):
        return {EXPIRED: True}
    if data.get(EXPIRED) is True and (kind != "custom" or len(data) <= 2):
        return None
    if kind == "custom":
        return {EXPIRED: True} if data else None
    fields = CONTENT_FIELDS.get(kind, ())
    # Any other field long enough to have been stored as a shared text goes too: nothing
    # below the content mark may refer to a text (the collector does not look there).
    present = [name for name, value in data.items()
               if (name in fields and value is not None) or _is_ref(value)
               or (isinstance(value, dict) and any(_is_ref(v) for v in value.values()))]
    if not present:
        return None
    out = dict(data)
    for name in present:
        out[name] = None
    out[EXPIRED] = True
    return out


def _is_ref(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("$text"), str)


def erase(kind: str, data: Any, needles: tuple[str, ...], pseudonym: str) -> dict[str, Any]:
    """``data`` with its content gone and the user's id and name replaced by ``pseudonym``.

    ``needles`` (the id and name, longest first) are replaced wherever they stand as a whole
    value (``user_id``, ``user_name`` …) and, in the few fields whose text may hold them
    (a conversation key ``bot/platform/user``, an alert's ``user:alice`` scope), inside text.
    """
    if kind == "custom" or not isinstance(data, dict):
        return {EXPIRED: True, ERASED: True}
    content = CONTENT_FIELDS.get(kind, ())
    out: dict[str, Any] = {}
    for key, value in data.items():
        kind_of = type(value)
        if key in content:
            value = None
        elif kind_of is str:
            if value in needles:
                value = pseudonym
            elif key in _TEXT_HOLDING:
                value = in_text(value, needles, pseudonym)
        elif kind_of is dict:
            if _is_ref(value) or any(_is_ref(inner) for inner in value.values()):
                value = None  # a shared large text: content
            else:
                value = anonymise(value, needles, pseudonym)
        elif kind_of is list:
            value = anonymise(value, needles, pseudonym)
        out[key] = value
    out[EXPIRED] = True
    out[ERASED] = True
    return out


def in_text(text: str, needles: tuple[str, ...], pseudonym: str) -> str:
    """The user inside a longer text: a ``/``-separated segment of a conversation key, or a
    budget scope as written in alerts (``user:alice``, ``user alice``)."""
    if "/" in text:
        text = "/".join(pseudonym if part in needles else part for part in text.split("/"))
    for needle in needles:
        for form in (f"user:{needle}", f"user {needle}"):
            if form in text:
                text = _replace_whole(text, form, form[:5] + pseudonym)
    return text


def _replace_whole(text: str, form: str, by: str) -> str:
    """``form`` replaced where it is not followed by more of a name (``user:al`` must not
    match ``user:alice``)."""
    out, start = [], 0
    while (found := text.find(form, start)) >= 0:
        end = found + len(form)
        if end < len(text) and (text[end].isalnum() or text[end] in "_-."):
            out.append(text[start:end])
        else:
            out.append(text[start:found] + by)
        start = end
    out.append(text[start:])
    return "".join(out)


def anonymise(value: Any, needles: tuple[str, ...], pseudonym: str) -> Any:
    """``value`` with every string equal to one of ``needles`` replaced by ``pseudonym``."""
    if isinstance(value, str):
        return pseudonym if value in needles else value
    if isinstance(value, dict):
        return {key: anonymise(item, needles, pseudonym) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [anonymise(item, needles, pseudonym) for item in value]
    return value


_DIGEST = re.compile(r'"\$text":"([0-9a-f]{64})"')


def digests_in(data_text: str | None) -> set[str]:
    """The shared texts (digests) a stored data JSON refers to.

    Read from the JSON text without decoding it: a reference is ``{"$text":"<sha-256>"}``,
    and the same characters inside a string value are escaped (``\\"$text\\"``), so they
    never match. (A match anywhere only keeps a text longer: the safe side.)"""
    if not data_text or TEXT_REF not in data_text:
        return set()
    return set(_DIGEST.findall(data_text))
