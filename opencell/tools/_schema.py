"""Helpers of ``@tool``: docstring parsing, schema tidying and readable validation errors."""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from opencell.config.source import suggest

_SECTION = re.compile(r"^(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Examples?|"
                      r"Notes?|Attributes|See Also|Warnings?):\s*$")
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """``(text before the first section, {parameter: description})`` of a Google docstring."""
    if not doc:
        return "", {}
    summary: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    indent: int | None = None
    current: str | None = None
    for line in inspect.cleandoc(doc).splitlines():
        header = _SECTION.match(line)
        if header:
            section, indent, current = header.group(1), None, None
        elif section is None:
            summary.append(line)
        elif section in ("Args", "Arguments", "Parameters", "Params") and line.strip():
            depth = len(line) - len(line.lstrip())
            indent = depth if indent is None else indent
            item = _ARG_LINE.match(line.strip())
            if depth <= indent and item:
                current = item.group(1)
                args[current] = item.group(2).strip()
            elif current is not None:
                args[current] = f"{args[current]} {line.strip()}".strip()
    return "\n".join(summary).strip(), {k: v for k, v in args.items() if v}


def clean_schema(node: Any) -> Any:
    """Drop pydantic's generated ``title`` keys; keep property names and literal values."""
    if isinstance(node, list):
        return [clean_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key in ("properties", "$defs"):
            out[key] = {name: clean_schema(sub) for name, sub in value.items()}
        elif key in ("default", "enum", "const", "examples"):
            out[key] = value
        else:
            out[key] = clean_schema(value)
    return out


def describe_errors(exc: ValidationError, schema: Mapping[str, Any]) -> str:
    known = list(schema.get("properties", {}))
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            takes = ", ".join(known) if known else "no arguments"
            parts.append(f"unexpected argument '{where}'{suggest(where, known)} (it takes: "
                         f"{takes})")
        elif err["type"] == "missing":
            parts.append(f"{where}: required argument is missing")
        else:
            got = err.get("input")
            shown = f" (got {got!r})" if not isinstance(got, dict | list) else ""
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {msg}{shown}" if where else f"{msg}{shown}")
    return "; ".join(parts)
