"""Turns pydantic validation errors into located ``file:line: field: message`` errors."""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from opencell.config.fields import M
from opencell.config.source import YamlSource, suggest
from opencell.errors import ConfigError, ConfigErrors


def validate_source(source: YamlSource, model: type[M], what: str) -> M:
    """Validate parsed YAML against ``model``; every problem becomes a located error."""
    if not isinstance(source.data, dict):
        found = type(source.data).__name__ if source.data is not None else "nothing"
        found = {"str": "plain text", "list": "a list"}.get(found, found)
        raise ConfigError(
            f"expected a mapping of {what} fields at the top level, found {found}; "
            f"is this a {what} YAML file?", file=str(source.path), line=1)
    try:
        return model.model_validate(source.data)
    except ValidationError as exc:
        located: dict[tuple[int | None, str | None], ConfigError] = {}
        for err in exc.errors():
            error = _located(source, model, err)
            # A union reports once per member; the first says it best.
            located.setdefault((error.line, error.field), error)
        raise ConfigErrors(list(located.values())) from None


def _located(source: YamlSource, model: type[BaseModel], err: Any) -> ConfigError:
    loc = _data_loc(source.data, err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden" and loc:
        field = str(loc[-1])
        known = _known_fields(model, loc[:-1])
        message = f"unknown field '{field}'{suggest(field, known)}"
        if known:
            message += f"; allowed: {', '.join(sorted(known))}"
    elif kind == "missing":
        message = "required field is missing"
    elif kind == "literal_error":
        message = f"{_strip(err['msg'])}, got {_short_repr(err['input'])}"
    else:
        message = _strip(err["msg"])
        if ("input" in err and not isinstance(err["input"], dict | list)
                and not _is_secret_field(loc) and _short_repr(err["input"]) not in message):
            message += f" (got {_short_repr(err['input'])})"
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"  # our validators echo values, maybe 200 KB
    return source.error(loc, message)


_MAX_MESSAGE = 500


def _short_repr(value: Any) -> str:
    """``repr`` of at most the first 100 characters: errors repeat for every aliased copy."""
    if isinstance(value, str) and len(value) > 100:
        return repr(value[:100]) + "…"
    return repr(value)


def _is_secret_field(loc: tuple[str | int, ...]) -> bool:
    """Never echo a token or key back in an error message."""
    name = str(loc[-1]).lower() if loc else ""
    return any(word in name for word in ("token", "key", "secret", "password"))


def _strip(msg: str) -> str:
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


_TAG_NAMES = {"int", "str", "float", "bool", "none", "list", "dict"}


def _data_loc(data: Any, raw: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """Pydantic's ``loc`` without its union member tags: a part that is a key or index of the
    data is always kept, so a user's key such as ``Tags`` is never mistaken for a tag."""
    loc: list[str | int] = []
    current = data
    for part in raw:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif (isinstance(current, list) and isinstance(part, int)
              and 0 <= part < len(current)):
            current = current[part]
        elif _is_union_tag(part):
            continue
        else:
            current = None
        loc.append(part)
    return tuple(loc)


def _is_union_tag(part: Any) -> bool:
    """Pydantic's union member tags in a loc (``int``, ``literal['auto']``, ``LLMConfig``)."""
    return isinstance(part, str) and (
        part[:1].isupper() or "[" in part or part.startswith("function-")
        or part in _TAG_NAMES)


def _known_fields(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is None:
            return []
    return list(current.model_fields) if hasattr(current, "model_fields") else []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    metadata_origin = getattr(annotation, "__origin__", None)
    if metadata_origin is not None and metadata_origin is not annotation:
        return _model_in(metadata_origin)
    return None
