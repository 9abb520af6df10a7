"""A step-counting backtracking matcher for the regex subset the redactor uses (test helper).

Python's ``re`` is a backtracking engine and reports no work done, so linear time cannot be
asserted on it without a clock. This interprets the same parsed pattern (``re._parser``) with
the same semantics — leftmost match, greedy/lazy repeats that back off one step at a time,
look-arounds — and counts every character test and every backtrack. Its count grows like the
real engine's: linearly for a linear pattern, quadratically for the JWT shape of issue 11.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from re import _constants as c  # type: ignore[attr-defined]
from re import _parser as parser  # type: ignore[attr-defined]
from typing import Any

Cont = Callable[[int], bool]


class StepCounter:
    """Runs ``pattern`` over texts like ``finditer`` would, counting steps in ``steps``."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        if pattern.flags & re.IGNORECASE:
            raise ValueError("IGNORECASE patterns are not supported")
        self.tree = parser.parse(pattern.pattern, pattern.flags)
        self.steps = 0
        self.text = ""

    def scan(self, text: str) -> int:
        """Steps to find every match in ``text`` (each search resumes at the last match end)."""
        self.text, self.steps, pos = text, 0, 0
        while pos <= len(text):
            ends: list[int] = []
            start = pos
            while start <= len(text):
                if self._seq(list(self.tree), 0, start, _record(ends)):
                    break
                start += 1
            if not ends:
                break
            pos = max(ends[0], start + 1)
        return self.steps

    # ---------------------------------------------------------------- matching

    def _seq(self, nodes: list[Any], i: int, pos: int, k: Cont) -> bool:
        if i == len(nodes):
            return k(pos)
        op, av = nodes[i]
        rest: Cont = lambda p: self._seq(nodes, i + 1, p, k)  # noqa: E731
        self.steps += 1
        if op in (c.LITERAL, c.NOT_LITERAL, c.ANY, c.IN):
            return self._one(op, av, pos) and rest(pos + 1)
        if op is c.SUBPATTERN or op is c.ATOMIC_GROUP:
            sub = av[-1] if op is c.SUBPATTERN else av
            return self._seq(list(sub), 0, pos, rest)
        if op is c.BRANCH:
            return any(self._seq(list(alt), 0, pos, rest) for alt in av[1])
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            return self._repeat(op, av, pos, rest)
        if op in (c.ASSERT, c.ASSERT_NOT):
            direction, sub = av
            if direction < 0:
                width = sub.getwidth()[0]
                start = pos - width
                found = start >= 0 and self._seq(list(sub), 0, start, lambda p: p == pos)
            else:
                found = self._seq(list(sub), 0, pos, lambda p: True)
            return found == (op is c.ASSERT) and rest(pos)
        if op is c.AT:
            return self._at(av, pos) and rest(pos)
        raise NotImplementedError(f"regex op {op} in the step counter")

    def _one(self, op: Any, av: Any, pos: int) -> bool:
        if pos >= len(self.text):
            return False
        ch = self.text[pos]
        self.steps += 1
        if op is c.LITERAL:
            return ord(ch) == av
        if op is c.NOT_LITERAL:
            return ord(ch) != av
        if op is c.ANY:
            return ch != "\n"
        return _in_set(av, ch)

    def _repeat(self, op: Any, av: Any, pos: int, k: Cont) -> bool:
        low, high, sub = av
        high = len(self.text) + 1 if high == c.MAXREPEAT else high
        items = list(sub)
        if len(items) == 1 and items[0][0] in (c.LITERAL, c.NOT_LITERAL, c.ANY, c.IN):
            one_op, one_av = items[0]
            count = 0
            while count < high and self._one(one_op, one_av, pos + count):
                count += 1
            if count < low:
                return False
            if op is c.POSSESSIVE_REPEAT:
                return k(pos + count)
            order = range(count, low - 1, -1) if op is c.MAX_REPEAT else range(low, count + 1)
            for n in order:
                self.steps += 1
                if k(pos + n):
                    return True
            return False
        return self._repeat_general(op is c.MAX_REPEAT, low, high, items, pos, 0, k)

    def _repeat_general(self, greedy: bool, low: int, high: int, items: list[Any], pos: int,
                        done: int, k: Cont) -> bool:
        def again(p: int) -> bool:
            return p != pos and self._repeat_general(greedy, low, high, items, p, done + 1, k)

        if done < low:
            return self._seq(items, 0, pos, again)
        if greedy:
            return (done < high and self._seq(items, 0, pos, again)) or k(pos)
        return k(pos) or (done < high and self._seq(items, 0, pos, again))

    def _at(self, code: Any, pos: int) -> bool:
        if code in (c.AT_BEGINNING, c.AT_BEGINNING_STRING):
            return pos == 0
        if code in (c.AT_END, c.AT_END_STRING):
            return pos == len(self.text) or (code is c.AT_END and self.text[pos:] == "\n")
        raise NotImplementedError(f"anchor {code} in the step counter")


def _record(ends: list[int]) -> Cont:
    def k(pos: int) -> bool:
        ends.append(pos)
        return True
    return k


def _in_set(items: Any, ch: str) -> bool:
    negate = False
    hit = False
    for op, av in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            hit = hit or ord(ch) == av
        elif op is c.RANGE:
            hit = hit or av[0] <= ord(ch) <= av[1]
        elif op is c.CATEGORY:
            hit = hit or _category(av, ch)
        else:
            raise NotImplementedError(f"set item {op} in the step counter")
    return hit != negate


def _category(code: Any, ch: str) -> bool:
    if code is c.CATEGORY_DIGIT:
        return ch.isdigit()
    if code is c.CATEGORY_NOT_DIGIT:
        return not ch.isdigit()
    if code is c.CATEGORY_SPACE:
        return ch.isspace()
    if code is c.CATEGORY_NOT_SPACE:
        return not ch.isspace()
    if code is c.CATEGORY_WORD:
        return ch.isalnum() or ch == "_"
    if code is c.CATEGORY_NOT_WORD:
        return not (ch.isalnum() or ch == "_")
    raise NotImplementedError(f"category {code} in the step counter")
