"""A conversation's bounded history, kept as whole turns so tool calls stay paired."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from opencell.llm.base import ChatMessage


class ConversationHistory:
    """The last ``max_turns`` turns of one conversation, ready to send to the model.

    A turn is the user's message, any assistant tool calls with their results, and the
    final answer. Dropping whole turns keeps every ``tool`` result next to the call it answers.
    """

    __slots__ = ("_flat", "_max_turns", "_turns")

    def __init__(self, max_turns: int) -> None:
        self._max_turns = max_turns
        # Created on the first turn: an empty deque costs ~600 bytes, and most open
        # sessions at any moment are idle ones waiting to expire.
        self._turns: deque[tuple[ChatMessage, ...]] | None = None
        self._flat: tuple[ChatMessage, ...] = ()

    def messages(self) -> tuple[ChatMessage, ...]:
        """Every message of the kept turns, oldest first (rebuilt only when a turn is added)."""
        return self._flat

    def add_turn(self, messages: Iterable[ChatMessage]) -> None:
        if not self._max_turns:
            return
        if self._turns is None:
            self._turns = deque(maxlen=self._max_turns)
        turn = tuple(messages)
        dropped = len(self._turns[0]) if len(self._turns) == self._max_turns else 0
        self._turns.append(turn)
        self._flat = self._flat[dropped:] + turn  # slices in C, no per-message Python loop

    def turns(self) -> list[tuple[ChatMessage, ...]]:
        """The kept turns, oldest first."""
        return list(self._turns) if self._turns else []

    def clear(self) -> None:
        self._turns = None
        self._flat = ()

    def __len__(self) -> int:
        return len(self._turns) if self._turns else 0
