"""The calculator built-in: right answers, and refusal of anything that is not arithmetic."""

from __future__ import annotations

import ast
import math
from collections.abc import Callable
from typing import Any

import pytest

from opencell.errors import ToolArgumentsError
from opencell.tools import BUILTINS, _calc
from opencell.tools._calc import MAX_BITS, MAX_LENGTH, CalculatorError, evaluate


@pytest.mark.parametrize(("expression", "expected"), [
    ("1 + 2 * 3", 7),
    ("(1 + 2) * 3", 9),
    ("7 / 2", 3.5),
    ("7 // 2", 3),
    ("-7 // 2", -4),
    ("7 % 3", 1),
    ("2 ** 10", 1024),
    ("2 ** -1", 0.5),
    ("-3 + +2", -1),
    ("--4", 4),
    ("sqrt(16) + abs(-2)", 6.0),
    ("round(2.567, 2)", 2.57),
    ("round(2.5)", 2),
    ("min(3, 1, 2) + max(4, 5)", 6),
    ("floor(2.7) + ceil(2.1)", 5),
    ("log(8, 2)", 3.0),
    ("pi", math.pi),
    ("e ** 0", 1.0),
    ("1_000 * 3", 3000),
    ("1e3 / 4", 250.0),
    ("2 ** 4000", 2 ** 4000),
])
def test_arithmetic(expression: str, expected: float) -> None:
    assert evaluate(expression) == pytest.approx(expected)


@pytest.mark.parametrize(("expression", "reason"), [
    ("__import__('os')", "unknown function '__import__'"),
    ("__import__('os').system('true')", "unknown function"),
    ("(1).__class__", "'Attribute' is not allowed"),
    ("pi.real", "'Attribute' is not allowed"),
    ("x + 1", "unknown name 'x'"),
    ("open", "unknown name 'open'"),
    ("'a' * 3", "only numbers are allowed"),
    ("True + 1", "only numbers are allowed"),
    ("1j * 2", "only numbers are allowed"),
    ("[1, 2]", "'List' is not allowed"),
    ("lambda: 1", "'Lambda' is not allowed"),
    ("1 if 1 else 2", "'IfExp' is not allowed"),
    ("1 < 2", "'Compare' is not allowed"),
    ("1 << 3", "'BinOp' is not allowed"),
    ("sqrt(x=4)", "plain positional arguments"),
    ("max()", "at least one argument"),
    ("1 / 0", "division by zero"),
    ("5 % 0", "division by zero"),
    ("sqrt(-1)", "cannot compute"),
    ("(-8) ** 0.5", "not a real number"),
    ("exp(1000)", "cannot compute"),
    ("1e308 * 10", "not a finite number"),
    ("round(1, 1000000)", "round() digits"),
    ("1 +", "cannot parse"),
])
def test_refusals(expression: str, reason: str) -> None:
    with pytest.raises(CalculatorError) as info:
        evaluate(expression)
    assert reason in str(info.value)


@pytest.mark.parametrize("expression", [
    "9**9**9", "2 ** 100000", "10 ** 2000 * 10 ** 2000 * 10 ** 2000", "(10 ** 1000) ** 5",
    "99999 ** 99999", "2.5 ** 10 ** 10",
])
def test_huge_numbers_are_refused_quickly(expression: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # "Quickly" = before any huge power or product is computed: every operation the
    # calculator performs is checked first, and one that would build a number far past its
    # limit fails the test at once (instead of running for minutes).
    def guarded(name: str, real: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        def run(left: Any, right: Any) -> Any:
            bits = _bits(name, left, right)
            if bits > 4 * MAX_BITS:  # not `assert`: the calculator must not catch it
                raise AssertionError(f"computed a {name} of about {bits:.0f} bits")
            return real(left, right)
        return run

    for op, name in ((ast.Pow, "**"), (ast.Mult, "*")):
        monkeypatch.setitem(_calc._BINARY, op, guarded(name, _calc._BINARY[op]))
    with pytest.raises(CalculatorError, match="too large|cannot compute"):
        evaluate(expression)


def _bits(name: str, left: Any, right: Any) -> float:
    """About how many bits ``left name right`` needs (for floats: its exponent's size)."""
    if name == "*":
        return _size(left) + _size(right)
    return abs(right) * _size(left)


def _size(number: Any) -> float:
    return math.log2(abs(number)) if abs(number) > 1 else 1.0


def test_long_input_is_refused_before_parsing() -> None:
    with pytest.raises(CalculatorError, match=f"the limit is {MAX_LENGTH}"):
        evaluate("1+" * 400 + "1")
    with pytest.raises(CalculatorError, match="cannot parse|nested"):
        evaluate("(" * 240 + "1" + ")" * 240)


def test_the_tool_reports_refusals_as_argument_errors() -> None:
    calculator = BUILTINS["calculator"]
    assert calculator.parameters["required"] == ["expression"]
    assert calculator(expression="6 * 7") == 42
    with pytest.raises(ToolArgumentsError, match="calculator: unknown function '__import__'"):
        calculator(expression="__import__('os')")
