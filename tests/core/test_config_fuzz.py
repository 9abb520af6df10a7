"""Fuzzing the config loader: any text gives a config or located errors, nothing else escapes.

Mutations of the shipped files (bots/*.yaml, config/*.yaml) with the tokens that crashed or
hung the loader before (anchors, tags, deep brackets, huge numbers, surrogates, .nan …), plus
arbitrary text. The examples are few and the reader's limits bound each one's work.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opencell.config import BotConfig, OpenCellConfig
from opencell.errors import ConfigError
from opencell.loading import validate_files

REPO = Path(__file__).resolve().parent.parent.parent
SHIPPED = sorted(REPO.glob("bots/*.yaml")) + sorted(REPO.glob("config/*.yaml"))
TEXTS = {path.name: path.read_text() for path in SHIPPED}

TOKENS = [
    "&a ", "*a", "<<: *a\n", "!!timestamp ", "!!binary ", "!!set ", "!!int ", "!!float ",
    "!!bool ", "!!str ", "!x ", ".nan", ".inf", "-.inf", "1e999", "9" * 5000, "1:2:3:4:5",
    '"\\ud800"', "[" * 80, "{" * 80, "]", "}", "- ", ": ", "? ", "|", ">", "#", "\t", "\n",
    "'", '"', "${UNSET}", "${UNSET:-}", "$$", "~", "on", "yes", "0", "-1", "5/0s", "0/min",
    "0s", "1e400s", "Tags", "Llm", "LLMConfig", "int", "[key]", "\x00", "\x07", "\ufeff",
    "\u2028", "\x85", "---\n", "%YAML 1.1\n", "1: x\n", "2001-12-14", "\\", "é",
]
BOMB = ('x-a: &a ["l","l","l","l","l","l","l","l","l"]\n'
        + "".join(f"x-{b}: &{b} [" + ",".join([f"*{a}"] * 9) + "]\n"
                  for a, b in zip("abcdefgh", "bcdefghi", strict=True)))


@st.composite
def mutants(draw: st.DrawFn) -> tuple[str, str]:
    """(file name, text): a shipped file with a few edits, or arbitrary text."""
    name = draw(st.sampled_from(sorted(TEXTS)))
    if draw(st.integers(0, 9)) == 0:
        return name, draw(st.text(max_size=300))
    text = TEXTS[name]
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "delete", "value", "upper", "bomb", "text"]))
        if edit == "insert":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
        elif edit == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 30)):]
        elif edit == "value":  # replace what follows the next `key:` with a token
            token = draw(st.sampled_from(TOKENS))
            text = text[:at] + re.sub(r"(\w:)[^\n]*", lambda m, t=token: f"{m.group(1)} {t}",
                                      text[at:], count=1)
        elif edit == "upper":
            text = re.sub(r"(?m)^(\s*)([a-z])", lambda m: m.group(1) + m.group(2).upper(),
                          text, count=draw(st.integers(1, 3)))
        elif edit == "bomb":
            text = BOMB + text
        else:
            text = text[:at] + draw(st.text(max_size=20)) + text[at:]
    return name, text


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutants())
def test_the_loader_returns_a_config_or_located_errors_only(case: tuple[str, str],
                                                            workdir: Path) -> None:
    name, text = case
    path = workdir / name  # validate_files routes pricing.yaml by its name
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    # Anything but ConfigError escaping validate_files fails the test with its traceback.
    results, errors = validate_files([path], env={})
    if errors:
        assert not results
        for error in errors:
            assert isinstance(error, ConfigError)
            for line in error.located().splitlines():
                assert re.fullmatch(rf"{re.escape(str(path))}:\d+: \S.*", line), line
    else:
        ((_, result),) = results
        assert isinstance(result, BotConfig | OpenCellConfig | int)
