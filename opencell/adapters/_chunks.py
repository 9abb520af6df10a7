"""Splits a long reply into platform-sized messages without breaking words or code blocks."""

from __future__ import annotations

import re

_FENCE = re.compile(r"^\s*(```|~~~)(.*)$")


def split_message(text: str, limit: int) -> list[str]:
    """Pieces of ``text`` of at most ``limit`` characters, in order.

    Cuts at the last paragraph break that fits, else the last line break, else the last
    space, else hard. A cut inside a fenced code block closes the fence at the end of the
    piece and reopens it (with its language) at the start of the next, so each message
    renders on its own.
    """
    if limit < 16:
        raise ValueError("limit must be at least 16 characters")
    text = text.strip("\n")
    if len(text) <= limit:
        return [text] if text else []
    pieces: list[str] = []
    reopen = ""
    rest = text
    while rest:
        budget = limit - len(reopen)
        if len(rest) <= budget:
            pieces.append(reopen + rest)
            break
        # Leave room to close a fence that may be open at the cut.
        cut = _cut_point(rest, budget - 4)
        piece, rest = rest[:cut].rstrip(), rest[cut:].lstrip("\n")
        if not rest.strip():
            rest = ""
        body = reopen + piece
        fence = _open_fence(body)
        if fence is not None and rest:
            body += "\n" + fence[0]
            reopen = fence[0] + fence[1] + "\n"
        else:
            reopen = ""
        pieces.append(body)
    return [p for p in pieces if p.strip()]


def _cut_point(text: str, budget: int) -> int:
    window = text[: budget + 1]
    for separator in ("\n\n", "\n", " "):
        at = window.rfind(separator)
        if at > budget // 3:
            return at + (1 if separator == " " else 0)
    return budget


def _open_fence(text: str) -> tuple[str, str] | None:
    """The (marker, info string) of a code fence left open at the end of ``text``."""
    open_fence: tuple[str, str] | None = None
    for line in text.split("\n"):
        match = _FENCE.match(line)
        if match is None:
            continue
        if open_fence is None:
            open_fence = (match.group(1), match.group(2).strip())
        elif match.group(1) == open_fence[0] and not match.group(2).strip():
            open_fence = None
    return open_fence
