"""A streamed reply as a run of platform messages: the first posted, then edited in place,
more posted as the text outgrows a message (the split is the one ``send`` uses)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

H = TypeVar("H")
"""Whatever the platform returns for a posted message (discord.Message, a Slack ts)."""


class PiecewiseSurface(Generic[H]):
    """``show(text)`` splits ``text`` with ``split`` and brings the posted messages in line:
    a piece whose message exists and differs is edited, a new piece is posted, and — should
    the text ever shrink to fewer pieces — the extra messages are emptied to ``…``.

    ``post(index, piece)`` posts piece ``index`` (the first one replies to the asker);
    ``on_first`` runs once the first message is up (Discord stops its typing indicator).
    """

    def __init__(self, *, split: Callable[[str], list[str]],
                 post: Callable[[int, str], Awaitable[H]],
                 edit: Callable[[H, str], Awaitable[None]],
                 ident: Callable[[H], str],
                 on_first: Callable[[], object] | None = None) -> None:
        self._split, self._post, self._edit, self._ident = split, post, edit, ident
        self._on_first = on_first
        self._handles: list[H] = []
        self._contents: list[str] = []

    @property
    def message_ids(self) -> Sequence[str]:
        return [self._ident(h) for h in self._handles]

    async def show(self, text: str) -> None:
        pieces = self._split(text)
        for index, piece in enumerate(pieces):
            if index < len(self._handles):
                if self._contents[index] != piece:
                    await self._edit(self._handles[index], piece)
                    self._contents[index] = piece
                continue
            handle = await self._post(index, piece)
            self._handles.append(handle)
            self._contents.append(piece)
            if index == 0 and self._on_first is not None:
                self._on_first()
        for index in range(len(pieces), len(self._handles)):
            if self._contents[index] != "…":
                await self._edit(self._handles[index], "…")
                self._contents[index] = "…"
