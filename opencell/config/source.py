"""Reads a YAML file into plain data plus a line for every field, so errors can be located.

``${VAR}`` and ``${VAR:-default}`` are expanded in string values *after* parsing, so an
environment value can never inject YAML structure.

No file can crash or hang the reader: the work is bounded (file size, nesting depth, nodes
after alias expansion, digits in a number), only plain data is built (strings, numbers,
booleans, null, lists, mappings with text keys), and every refusal is a located ``ConfigError``.
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

MAX_FILE_BYTES = 256 * 1024
"""Larger files are refused before parsing (a shipped bot file is about 1 KB)."""
MAX_DEPTH = 50
"""Nesting deeper than this (after alias expansion) is refused."""
MAX_NODES = 10_000
"""Values in a file after alias expansion: stops "billion laughs" anchors."""
MAX_EXPANDED_CHARS = 4 * MAX_FILE_BYTES
"""Characters in all strings after alias expansion."""
MAX_NUMBER_CHARS = 100
"""Longer integer or float literals are refused (Python refuses >4,300 digit integers)."""

_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = {_TAG + kind for kind in ("null", "bool", "int", "float", "str", "seq", "map")}
_SURROGATE = re.compile(r"[\ud800-\udfff]")

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
    text = _read_text(path, name)
    if not text.strip() or all(
        not ln.strip() or ln.lstrip().startswith("#") for ln in text.splitlines()
    ):
        raise ConfigError("file is empty; expected YAML fields", file=name, line=1)
    loader: _BoundedLoader | None = None
    lines: dict[Loc, int] = {}
    node_locs: dict[int, Loc] = {}
    try:
        loader = _BoundedLoader(text)
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node, (), {}, set())
            _record_lines(node, (), lines, name, node_locs)
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        if exc.loc is None:  # refused while building values: where that node was read
            exc.loc = node_locs.get(id(exc.node), ())
        field = format_loc(exc.loc) or None
        raise ConfigError(str(exc.problem), file=name, line=line, field=field) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark and "end of stream" in (exc.problem or ""):
            mark = exc.context_mark  # where the unclosed quote or bracket began
        line = mark.line + 1 if mark else None
        raise ConfigError(_syntax_message(exc, text, line), file=name, line=line) from None
    except yaml.reader.ReaderError as exc:
        raise ConfigError(f"YAML cannot contain the character {exc.character!r}; remove it",
                          file=name, line=text.count("\n", 0, exc.position) + 1) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=name) from None
    finally:
        if loader is not None:
            loader.dispose()
    source = YamlSource(path=path, data=data, lines=lines)
    source.data = _interpolate(data, (), env, source)
    return source


def _read_text(path: Path, name: str) -> str:
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError("file not found", file=name) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a .yaml file", file=name) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror}", file=name) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"file is larger than {MAX_FILE_BYTES // 1024} KB; is this really a "
                          "config file?", file=name)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError("not a text file (expected UTF-8 YAML)", file=name) from None


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader that builds plain data only and refuses runaway nesting or size.

    Explicit tags other than the plain ones (``!!timestamp``, ``!!binary``, ``!!set`` …) are
    errors, and dates stay strings: nothing downstream expects a ``date`` or ``bytes``.
    """

    yaml_constructors = {tag: fn for tag, fn in yaml.SafeLoader.yaml_constructors.items()
                         if tag in _PLAIN_TAGS}
    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != _TAG + "timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._nodes = 0
        self._loc: list[str | int] = []
        """Where the composer is, for locating a refusal."""

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # PyYAML composes recursively: refuse deep nesting before Python's stack runs out.
        index_node: Any = index  # PyYAML passes a mapping value's key node here
        self._loc.append(index_node.value if isinstance(index_node, yaml.ScalarNode)
                         else index if isinstance(index, int) else "?")
        self._nodes += 1
        try:
            if len(self._loc) > MAX_DEPTH:
                raise self._refused(f"nested deeper than {MAX_DEPTH} levels", parts=3)
            if self._nodes > MAX_NODES:
                raise self._refused(f"more than {MAX_NODES} values in one file")
            return super().compose_node(parent, index)
        finally:
            self._loc.pop()

    def _refused(self, problem: str, parts: int = MAX_DEPTH) -> _Refused:
        loc = tuple(self._loc[1:])  # the first entry is the document itself
        return _Refused(None, None, problem, self.get_mark(), loc=(loc[:-1] or loc)[:parts])

    def fetch_flow_collection_start(self, token_class: type[yaml.Token]) -> None:
        # The scanner reads a whole line of '[' ahead (quadratic): stop it at the limit.
        if self.flow_level >= MAX_DEPTH:
            raise self._refused(f"nested deeper than {MAX_DEPTH} levels", parts=3)
        super().fetch_flow_collection_start(token_class)

    def _typed_scalar(self, node: yaml.ScalarNode) -> object:
        """A number or boolean; an explicit ``!!int``/``!!float``/``!!bool`` on text that is
        none (``!!int abc``) is a located error, not PyYAML's ``ValueError``."""
        kind = node.tag.removeprefix(_TAG)
        if kind != "bool" and len(node.value) > MAX_NUMBER_CHARS:
            raise _refusal(f"a number with more than {MAX_NUMBER_CHARS} characters; "
                           "quote it if it is text", node)
        try:
            return _PLAIN_SCALARS[kind](self, node)
        except (ValueError, KeyError, IndexError):
            raise _refusal(f"{node.value[:40]!r} is not a valid !!{kind}", node) from None

    def _unsupported(self, node: yaml.Node) -> object:
        raise _refusal(f"the YAML tag {node.tag.replace(_TAG, '!!')} is not supported; use "
                       "plain strings, numbers, booleans, lists and mappings", node)


_PLAIN_SCALARS = {kind: yaml.SafeLoader.yaml_constructors[_TAG + kind]
                  for kind in ("int", "float", "bool")}
for _kind in _PLAIN_SCALARS:
    _BoundedLoader.add_constructor(_TAG + _kind, _BoundedLoader._typed_scalar)
_BoundedLoader.add_constructor(None, _BoundedLoader._unsupported)


class _Refused(yaml.MarkedYAMLError):
    """Well-formed YAML that OpenCell will not read (a limit or an unsupported tag)."""

    def __init__(self, *args: Any, loc: Loc | None = None, node: yaml.Node | None = None
                 ) -> None:
        super().__init__(*args)
        self.loc = loc
        self.node = node


def _refusal(problem: str, at: yaml.Node, loc: Loc | None = None) -> _Refused:
    return _Refused(None, None, problem, at.start_mark, loc=loc, node=at)


def _check_expansion(node: yaml.Node, loc: Loc, sizes: dict[int, tuple[int, int, int]],
                     open_: set[int]) -> tuple[int, int, int]:
    """(values, characters, depth) of ``node`` with every alias expanded; refuse cycles and
    blow-ups. Aliased nodes are shared, so each is measured once; the recursion stops at
    ``MAX_DEPTH``. Characters count too: one long string aliased 9,000 times is 1.8 GB."""
    deeper = f"nested deeper than {MAX_DEPTH} levels once aliases (*name) are expanded"
    if len(loc) >= MAX_DEPTH:
        raise _refusal(deeper, node, loc)
    if id(node) in sizes:
        count, chars, below = sizes[id(node)]
    else:
        if id(node) in open_:
            raise _refusal("an alias refers to a value that contains it", node, loc)
        count, chars, below = 1, len(node.value) if isinstance(node, yaml.ScalarNode) else 0, 0
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            open_.add(id(node))
            children = ([(n, (*loc, _key_text(key))) for key, value in node.value
                         for n in (key, value)] if isinstance(node, yaml.MappingNode)
                        else [(item, (*loc, i)) for i, item in enumerate(node.value)])
            for child, child_loc in children:
                child_count, child_chars, child_depth = _check_expansion(
                    child, child_loc, sizes, open_)
                count, chars = count + child_count, chars + child_chars
                below = max(below, child_depth + 1)
                if count > MAX_NODES or chars > MAX_EXPANDED_CHARS:
                    what = (f"{MAX_NODES} values" if count > MAX_NODES
                            else f"{MAX_EXPANDED_CHARS} characters")
                    raise _refusal(f"more than {what} once aliases (*name) are expanded; "
                                   "use fewer aliases", child, child_loc)
            open_.discard(id(node))
        sizes[id(node)] = (count, chars, below)
    if len(loc) + below >= MAX_DEPTH:
        raise _refusal(deeper, node, loc)
    return count, chars, below


def _syntax_message(exc: yaml.MarkedYAMLError, text: str, line: int | None) -> str:
    problem = (exc.problem or "syntax error").strip()
    if line is not None:
        src = text.splitlines()[line - 1] if line - 1 < len(text.splitlines()) else ""
        if "\t" in src or "'\\t'" in problem:
            return "YAML syntax error: tab character; indent with spaces, not tabs"
    context = f" {exc.context}" if exc.context else ""
    return f"YAML syntax error: {problem}{context} (check the indentation and quoting here)"


def _record_lines(node: yaml.Node, path: Loc, lines: dict[Loc, int], file: str,
                  node_locs: dict[int, Loc]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    node_locs.setdefault(id(node), path)
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag not in (_TAG + "str", _TAG + "merge"):
                raise ConfigError(_key_problem(key_node), file=file, line=line,
                                  field=format_loc(path) or None)
            key = key_node.value
            if key in seen and key != "<<":
                raise ConfigError(
                    f"duplicate key '{key}' (first defined on line {seen[key]})",
                    file=file, line=line, field=format_loc((*path, key)),
                )
            seen[key] = line
            lines[(*path, key)] = line
            _record_lines(value_node, (*path, key), lines, file, node_locs)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_lines(item, (*path, index), lines, file, node_locs)


def _key_text(node: yaml.Node) -> str:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else "?"


def _key_problem(node: yaml.Node) -> str:
    if not isinstance(node, yaml.ScalarNode):
        return "a key must be a name, not a list or mapping"
    kind = {"bool": "a boolean", "null": "null", "int": "a number", "float": "a number"}.get(
        node.tag.removeprefix(_TAG), node.tag)
    return (f"the key {node.value[:40]!r} is read as {kind}, not a name; quote it: "
            f"'{node.value[:40]}':")


_SURROGATE_PROBLEM = ("contains a lone surrogate (a \\ud800-\\udfff escape), which is not "
                      "valid text; remove it")


def _interpolate(value: Any, loc: Loc, env: Mapping[str, str], source: YamlSource,
                 done: dict[str, str] | None = None) -> Any:
    """Expand variables in every string and refuse text that is not valid Unicode.

    ``done`` maps each string already seen to its result: an alias repeats one (maybe long)
    string thousands of times, which must cost one expansion and one scan, not thousands.
    """
    done = {} if done is None else done
    if isinstance(value, str):
        if value not in done:
            text = expand_env(value, env, lambda msg: source.error(loc, msg))
            if _SURROGATE.search(text):
                raise source.error(loc, _SURROGATE_PROBLEM)
            done[value] = text
        return done[value]
    if isinstance(value, dict):
        for key in value:
            if _SURROGATE.search(key):
                raise source.error(loc, f"a key {_SURROGATE_PROBLEM}")
        return {k: _interpolate(v, (*loc, k), env, source, done) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*loc, i), env, source, done) for i, v in enumerate(value)]
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
