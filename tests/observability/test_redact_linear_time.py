"""Every redaction pattern does work linear in the text, even on text built to make it backtrack.

Issue 11: 160 KB of ``eyJeyJ…`` froze the event loop for 10.8 s because the JWT pattern
backtracked quadratically. Work is counted by ``StepCounter`` (a step-counting interpreter of
the same parsed patterns), never by a clock; the timing comparison lives in
``benchmarks/redact.py``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opencell.observability import redact
from opencell.observability.redact import Redactor
from tests.observability._regex_steps import StepCounter

SIZE = 600
"""Texts of SIZE and 2*SIZE characters: a linear pattern does about twice the work."""
MAX_GROWTH = 2.4
MAX_STEPS_PER_CHAR = 80


def patterns() -> Iterator[tuple[str, re.Pattern[str], bool]]:
    """Every pattern the redactor runs on text: each shape, each gate."""
    for shape in redact._SHAPES:
        yield shape.kind, shape.pattern, shape.lowered
        if shape.gate is not None:
            yield f"{shape.kind} gate", shape.gate, False


PATTERNS = list(patterns())

# Pieces of every shape: literal starts, separators, class members, quote and escape
# characters. Repeating one or a few of them is what makes a backtracking engine rescan.
FRAGMENTS = [
    "eyJ", ".", "eyJhbGciOi.", "sk-ant-", "sk-", "proj-", "xoxb-", "xapp-1-", "ghp_",
    "github_pat_", "AKIA", "AIza", "M", "MTA5ODc2NTQzMjEwOTg3NjU0Mw", ".GaBcDe.", "a", "Z", "0",
    "-", "_", " ", "\t", "\n", "bearer ", "Basic ", "://", "://u", ":", "@", "/", "+", "=",
    "aws_secret_access_key", '"', "'", "\\", "api_key", "_token", "token", "&", "?key=",
    "client_secret", "password", "-----BEGIN ", "RSA ", "PRIVATE KEY-----", "-----END ",
    "[REDACTED:x]", "İ",
]

WORST_CASES = {
    "issue 11: eyJeyJ…": "eyJ",
    "JWT header runs": "eyJhbGciOiJIUzI1NiJ9.",
    "JWT two segments": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0",
    "Discord-like run": "M",
    "Discord token parts": "MTA5ODc2NTQzMjEwOTg3NjU0Mw.GaBcDe",
    "bearer words": "bearer ",
    "bearer then spaces": "bearer  ",
    "URL userinfo": "://user:",
    "URL colons": "://a:b:c:",
    "credential quotes": 'api_key="',
    "credential escapes": 'api_key="\\',
    "credential names": "api_key",
    "credential tabs": "api_key=\t",
    "AWS secret names": "aws_secret_access_key=",
    "PEM begins": "-----BEGIN ",
    "PEM header, no end": "-----BEGIN RSA PRIVATE KEY-----",
    "PEM ends": "-----END RSA ",
    "Slack prefixes": "xoxb-",
    "Anthropic prefixes": "sk-ant-",
}


def steps(pattern: re.Pattern[str], text: str, lowered: bool) -> int:
    return StepCounter(pattern).scan(text.lower() if lowered else text)


def assert_linear(unit: str) -> None:
    for kind, pattern, lowered in PATTERNS:
        small = steps(pattern, (unit * SIZE)[:SIZE], lowered)
        large = steps(pattern, (unit * 2 * SIZE)[:2 * SIZE], lowered)
        assert large <= MAX_GROWTH * small + 200, (
            f"{kind}: {small} steps for {SIZE} chars of {unit!r}, {large} for twice as many")
        assert large <= MAX_STEPS_PER_CHAR * 2 * SIZE, (
            f"{kind}: {large} steps for {2 * SIZE} chars of {unit!r}")


@pytest.fixture(autouse=True)
def deep_recursion() -> Iterator[None]:
    # The interpreter recurses once per repetition of a group such as (?:[^"\\]|\\.)+.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 30_000))
    yield
    sys.setrecursionlimit(limit)


def test_the_step_counter_sees_a_quadratic_pattern() -> None:
    """The counter itself: the issue's JWT pattern (no anchor) is caught, its fix is not."""
    old = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
    assert steps(old, "eyJ" * 400, False) > 3.5 * steps(old, "eyJ" * 200, False)
    jwt = next(p for kind, p, _ in PATTERNS if kind == "jwt")
    assert steps(jwt, "eyJ" * 400, False) <= 2.2 * steps(jwt, "eyJ" * 200, False)


def test_the_step_counter_finds_what_re_finds() -> None:
    text = "x eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNH y"
    jwt = next(p for kind, p, _ in PATTERNS if kind == "jwt")
    counter = StepCounter(jwt)
    assert counter.scan(text) > 0
    assert jwt.search(text) is not None


@pytest.mark.parametrize("unit", list(WORST_CASES.values()), ids=list(WORST_CASES))
def test_every_pattern_is_linear_on_known_worst_cases(unit: str) -> None:
    assert_linear(unit)


@settings(max_examples=25, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=4))
def test_every_pattern_is_linear_on_repeated_fragments(pieces: list[str]) -> None:
    assert_linear("".join(pieces))


@pytest.mark.parametrize("unit", list(WORST_CASES.values()), ids=list(WORST_CASES))
def test_hostile_text_is_still_redacted_correctly(unit: str) -> None:
    """Anchoring must not cost recall: a real token after hostile text is still found."""
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P"
    discord = "MTA5ODc2NTQzMjEwOTg3NjU0Mw.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789"
    text = unit * 300 + f" {jwt} and {discord} end"
    out = Redactor().redact(text)
    assert jwt not in out and discord not in out
    if "PRIVATE KEY" not in unit:  # a PEM key without its end line is redacted to the end
        assert out.endswith("end")
