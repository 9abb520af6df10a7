"""The current_time built-in: ISO 8601 with the weekday, in the timezone the model asks for."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opencell.errors import ToolArgumentsError
from opencell.tools import BUILTINS
from opencell.tools.registry import ToolContext

current_time = BUILTINS["current_time"]


def _parse(text: str) -> tuple[datetime, str]:
    stamp, rest = text.split(" ", 1)
    return datetime.fromisoformat(stamp), rest


async def test_defaults_to_utc_with_the_weekday() -> None:
    context = ToolContext(bot="b", user_id="u", options={}, call_id="c")
    text = await current_time.run({}, context)
    when, rest = _parse(text)
    assert when.utcoffset() == timedelta(0)
    assert abs(when - datetime.now(UTC)) < timedelta(seconds=5)
    assert rest == f"({when.strftime('%A')}, UTC)"


async def test_in_the_timezone_asked_for() -> None:
    context = ToolContext(bot="b", user_id="u", options={}, call_id="c")
    text = await current_time.run({"timezone": "Asia/Kolkata"}, context)
    when, rest = _parse(text)
    assert when.utcoffset() == timedelta(hours=5, minutes=30)
    assert abs(when - datetime.now(UTC)) < timedelta(seconds=5)
    assert rest == f"({when.strftime('%A')}, Asia/Kolkata)"


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", ""])
def test_a_bad_timezone_is_an_argument_error(zone: str) -> None:
    with pytest.raises(ToolArgumentsError, match="unknown timezone") as info:
        current_time.validate_arguments({"timezone": zone})
    assert "IANA name" in str(info.value)
