"""How the store writes a record's data as JSON text: compact, valid UTF-8, never raising."""

from __future__ import annotations

import json

from opencell.records import valid_text


def _fallback(value: object) -> str:
    return str(value)


_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_fallback)
_c_encoder = None
if json.encoder.c_make_encoder is not None:  # type: ignore[attr-defined]
    # The C encoder built once: JSONEncoder.encode rebuilds it on every call, which is half
    # the cost of encoding a message-sized record. No circular-reference markers: a cycle
    # ends in RecursionError, handled below like any unserialisable value.
    _c_encoder = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, _fallback, json.encoder.encode_basestring, None, ":", ",", False, False, True)


def to_json(value: object) -> str:
    """JSON text for a record's data; anything unserialisable is stored as its ``str``."""
    try:
        if _c_encoder is not None:
            return valid_text("".join(_c_encoder(value, 0)))
        return valid_text(_encoder.encode(value))
    except (ValueError, TypeError, RecursionError):
        return valid_text(_encoder.encode({"unserializable": str(value)[:2000]}))
