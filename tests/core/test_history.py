"""ConversationHistory keeps whole turns, and its flat view always matches them."""

from __future__ import annotations

import random

from opencell.history import ConversationHistory
from opencell.llm.base import ChatMessage


def turn(n: int, size: int) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=f"{n}.{i}") for i in range(size)]


def test_flat_view_matches_the_kept_turns_for_turns_of_any_length() -> None:
    rng = random.Random(7)
    history = ConversationHistory(3)
    kept: list[list[ChatMessage]] = []
    for n in range(50):
        t = turn(n, rng.randint(1, 6))
        history.add_turn(t)
        kept = (kept + [t])[-3:]
        assert list(history.messages()) == [m for k in kept for m in k]
    assert len(history) == 3


def test_zero_turns_keeps_nothing_and_clear_empties() -> None:
    none = ConversationHistory(0)
    none.add_turn(turn(1, 2))
    assert none.messages() == () and len(none) == 0
    some = ConversationHistory(2)
    some.add_turn(turn(1, 2))
    some.clear()
    assert some.messages() == () and len(some) == 0
    some.add_turn(turn(2, 1))
    assert [m.content for m in some.messages()] == ["2.0"]
