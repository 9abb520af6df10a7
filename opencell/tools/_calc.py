"""Safe arithmetic for the ``calculator`` tool: walks a parsed ``ast``, never calls ``eval``.

Only numbers, ``+ - * / // % **``, unary signs, parentheses, a short list of math functions and
the constants ``pi``, ``e`` and ``tau`` are understood. Size guards keep one expression from
eating the CPU or memory: long input, huge exponents and huge intermediate numbers are refused.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable
from typing import Any

MAX_LENGTH = 500
"""Characters in one expression."""
MAX_BITS = 4096
"""Bits in any integer along the way (about 1,230 decimal digits)."""
MAX_ROUND_DIGITS = 100

Number = int | float


class CalculatorError(ValueError):
    """The expression is not something the calculator will evaluate."""


def _round(value: Number, digits: Number = 0) -> Number:
    if isinstance(digits, float) and digits.is_integer():
        digits = int(digits)
    if not isinstance(digits, int) or abs(digits) > MAX_ROUND_DIGITS:
        raise CalculatorError(f"round() digits must be a whole number up to {MAX_ROUND_DIGITS}")
    return round(value, digits)


def _log(value: Number, base: Number = math.e) -> float:
    return math.log(value, base)


FUNCTIONS: dict[str, Callable[..., Number]] = {
    "sqrt": math.sqrt, "abs": abs, "round": _round, "min": min, "max": max,
    "floor": math.floor, "ceil": math.ceil, "log": _log, "ln": math.log, "log10": math.log10,
    "log2": math.log2, "exp": math.exp, "sin": math.sin, "cos": math.cos, "tan": math.tan,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e, "tau": math.tau}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos, ast.USub: operator.neg,
}


def evaluate(expression: str) -> Number:
    """The value of ``expression``, or ``CalculatorError`` saying why it is refused."""
    if len(expression) > MAX_LENGTH:
        raise CalculatorError(f"expression is {len(expression)} characters long; the limit is "
                              f"{MAX_LENGTH}")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise CalculatorError(f"cannot parse {expression!r} as arithmetic") from None
    try:
        result = _eval(tree.body)
    except CalculatorError:
        raise
    except ZeroDivisionError:
        raise CalculatorError("division by zero") from None
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise CalculatorError(f"cannot compute: {exc}") from None
    except RecursionError:
        raise CalculatorError("expression is nested too deeply") from None
    if isinstance(result, float) and not math.isfinite(result):
        raise CalculatorError("the result is not a finite number")
    return result


def _eval(node: ast.AST) -> Number:
    if isinstance(node, ast.Constant):
        if type(node.value) not in (int, float):
            raise CalculatorError(f"only numbers are allowed, not {node.value!r}")
        return _checked(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        return _checked(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_eval(node.operand)))
    if isinstance(node, ast.Name):
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        raise CalculatorError(f"unknown name '{node.id}'; known constants: "
                              f"{', '.join(CONSTANTS)}")
    if isinstance(node, ast.Call):
        return _call(node)
    raise CalculatorError(f"'{type(node).__name__}' is not allowed; use numbers, + - * / // % "
                          f"**, parentheses and {', '.join(FUNCTIONS)}")


def _call(node: ast.Call) -> Number:
    if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
        name = node.func.id if isinstance(node.func, ast.Name) else type(node.func).__name__
        raise CalculatorError(f"unknown function '{name}'; known: {', '.join(FUNCTIONS)}")
    if node.keywords or any(isinstance(arg, ast.Starred) for arg in node.args):
        raise CalculatorError(f"{node.func.id}() takes plain positional arguments only")
    if not node.args:
        raise CalculatorError(f"{node.func.id}() needs at least one argument")
    args = [_eval(arg) for arg in node.args]
    return _checked(FUNCTIONS[node.func.id](*args))


def _check_power(base: Number, exponent: Number) -> None:
    if abs(base) <= 1:
        return
    if abs(exponent) > MAX_BITS:
        raise CalculatorError(f"exponent {exponent} is too large")
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        if exponent * math.log2(abs(base)) > MAX_BITS:
            raise CalculatorError("the result would be too large")


def _checked(value: Any) -> Number:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalculatorError("the result is not a real number")
    if isinstance(value, int) and value.bit_length() > MAX_BITS:
        raise CalculatorError("the result would be too large")
    return value
