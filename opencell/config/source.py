"""Reads a YAML file into plain data plus a line for every field, so errors can be located.

``${VAR}`` and ``${VAR:-default}`` are expanded in string values *after* parsing, so an
environment value can never inject YAML structure.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from opencell.errors import ConfigError

Loc = tuple[str | int, ...]

_VAR = re.compile(r"\$(\$)|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class YamlSource:
    """The parsed data of one file and the line of each field in it."""

    path: Path
    data: Any
    lines: dict[Loc, int]

    def line_of(self, loc: Iterable[str | int]) -> int | None:
        """The line of the deepest part of ``loc`` that exists in the file."""
        parts = tuple(loc)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return self.lines.get((), None)

    def error(self, loc: Loc, message: str) -> ConfigError:
        return ConfigError(message, file=str(self.path), line=self.line_of(loc),
                           field=format_loc(loc) or None)


def format_loc(loc: Iterable[str | int]) -> str:
    """``('tools', 1, 'allow_hosts')`` → ``tools[1].allow_hosts``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def read_yaml(path: Path, env: Mapping[str, str]) -> YamlSource:
    """Parse ``path``; raise a located ``ConfigError`` for anything that is not usable YAML."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", file=name) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a .yaml file", file=name) from None
    except UnicodeDecodeError:
        raise ConfigError("not a text file (expected UTF-8 YAML)", file=name) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", file=name) from None
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise ConfigError("file is empty; expected YAML fields", file=name, line=1)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=yaml.SafeLoader)  # noqa: S506 - SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark and "end of stream" in (exc.problem or ""):
            mark = exc.context_mark  # where the unclosed quote or bracket began
        line = mark.line + 1 if mark else None
        raise ConfigError(_syntax_message(exc, text, line), file=name, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=name) from None
    lines: dict[Loc, int] = {}
    if node is not None:
        _record_lines(node, (), lines, name)
    source = YamlSource(path=path, data=data, lines=lines)
    source.data = _interpolate(data, (), env, source)
    return source


def _syntax_message(exc: yaml.MarkedYAMLError, text: str, line: int | None) -> str:
    problem = (exc.problem or "syntax error").strip()
    if line is not None:
        src = text.splitlines()[line - 1] if line - 1 < len(text.splitlines()) else ""
        if "\t" in src or "'\\t'" in problem:
            return "YAML syntax error: tab character; indent with spaces, not tabs"
    context = f" {exc.context}" if exc.context else ""
    return f"YAML syntax error: {problem}{context} (check the indentation and quoting here)"


def _record_lines(node: yaml.Node, path: Loc, lines: dict[Loc, int], file: str) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                raise ConfigError(
                    f"duplicate key '{key}' (first defined on line {seen[key]})",
                    file=file, line=line, field=format_loc((*path, key)),
                )
            seen[key] = line
            lines[(*path, key)] = line
            _record_lines(value_node, (*path, key), lines, file)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*path, index), lines, file)


def _interpolate(value: Any, loc: Loc, env: Mapping[str, str], source: YamlSource) -> Any:
    if isinstance(value, str):
        return expand_env(value, env, lambda msg: source.error(loc, msg))
    if isinstance(value, dict):
        return {k: _interpolate(v, (*loc, str(k)), env, source) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), env, source) for i, v in enumerate(value)]
    return value


def expand_env(text: str, env: Mapping[str, str], fail: Any) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``$$``; ``fail(msg)`` builds the error."""
    if "$" not in text:
        return text

    def sub(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        name, default = match.group(2), match.group(3)
        value = env.get(name)
        if value:
            return value
        if default is not None:
            return default
        raise fail(
            f"environment variable {name} is not set; set it in the environment or .env, "
            f"or give a default: ${{{name}:-…}}"
        )

    return _VAR.sub(sub, text)


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'model'?)`` when a close match exists, else ``''``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
