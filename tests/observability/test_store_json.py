"""The store's JSON text: orjson's fast path writes what the standard library would."""

from __future__ import annotations

import dataclasses
import datetime
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencell.store import _json
from opencell.store._json import to_json

# Keys json turns into strings (bools and None become "true"/"null"), texts with lone
# surrogates and control characters, integers past 64 bits, finite floats of any size.
_keys = st.one_of(st.text(), st.integers(-10**6, 10**6), st.booleans(), st.none())
_leaves = st.one_of(st.none(), st.booleans(), st.integers(-2**80, 2**80),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(),
                    st.sampled_from(["caf\udce9", "\ud800", "\x00\x1f\u2028", "☃ é"]))
_values = st.recursive(_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=4)), max_leaves=20)


def test_the_fast_encoder_is_in_use() -> None:
    """Without it every event costs the writer another 1.5 µs (see the module docstring)."""
    assert to_json is not _json._standard


def _no_floats(value: Any) -> bool:
    if isinstance(value, float):
        return False
    if isinstance(value, dict):
        return all(map(_no_floats, value)) and all(map(_no_floats, value.values()))
    return all(map(_no_floats, value)) if isinstance(value, list) else True


@settings(max_examples=400, deadline=None)
@given(_values)
def test_the_fast_path_writes_what_the_standard_library_writes(value: Any) -> None:
    text, standard = to_json(value), _json._standard(value)
    assert json.loads(text) == json.loads(standard)
    if _no_floats(value):  # a float's exponent is spelt shortest: "1e-6", not "1e-06"
        assert text == standard
    text.encode("utf-8")  # valid UTF-8 whatever came in


@pytest.mark.parametrize("value", [
    {"when": datetime.datetime(2026, 12, 7, 10, 0, tzinfo=datetime.UTC)},
    {"point": dataclasses.make_dataclass("Point", ["x", "y"])(1, 2)},
    {"set": {3}, "bytes": b"ab", "deep": [[[[[[[[[[[[1]]]]]]]]]]]]},
    {"nested": [{"a": [1, 2**64, "x\udcff"]}] * 3},
])
def test_values_json_cannot_write_become_their_str_as_before(value: Any) -> None:
    assert to_json(value) == _json._standard(value)


def test_a_nesting_deeper_than_orjson_takes_still_encodes() -> None:
    deep: Any = 1
    for _ in range(300):
        deep = [deep]
    assert json.loads(to_json({"deep": deep})) == {"deep": deep}


def test_not_a_number_is_stored_as_null_valid_json_for_any_reader() -> None:
    """PostgreSQL's JSON parser and every strict reader refuse the standard library's NaN."""
    assert json.loads(to_json({"x": float("nan"), "y": float("inf")})) == {"x": None, "y": None}
