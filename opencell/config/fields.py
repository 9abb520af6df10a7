"""Shared pieces of the config models: durations, comma lists, the strict base model."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
)

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
MAX_DURATION = 366 * 86400.0
"""A year: anything longer is a typo, and timers and SDK timeouts stay finite."""


def parse_duration(value: Any) -> float:
    """``90s``, ``10m``, ``1h``, ``1h30m``, ``500ms`` or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 90s, 10m, 1h or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for match in _DURATION.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text) or pos == 0:
                raise ValueError(
                    f"'{value}' is not a duration; use 90s, 10m, 1h or a number of seconds"
                ) from None
    else:
        raise ValueError("expected a duration like 90s, 10m, 1h or a number of seconds")
    if not math.isfinite(seconds):
        raise ValueError(f"'{value}' is not a duration; use 90s, 10m, 1h or a number of seconds")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds


def _config_duration(value: Any) -> float:
    seconds = parse_duration(value)
    if seconds > MAX_DURATION:
        raise ValueError(f"'{value}' is longer than a year; use e.g. 90s, 10m, 1h or 1d")
    return seconds


Duration = Annotated[float, BeforeValidator(_config_duration)]
"""A duration in a config file: finite, above zero, at most a year."""
M = TypeVar("M", bound=BaseModel)


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], BeforeValidator(_comma_list)]


class Model(BaseModel):
    """Base for config models: unknown fields are errors (they are usually typos)."""

    # inf and nan are never a sensible limit, price or timeout.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
