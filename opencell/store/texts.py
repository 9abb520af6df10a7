"""Large texts stored once: a text that several records carry is kept one time, by digest.

A turn's text reaches several records — the user's message is the ``message`` input and the
model's prompt; the model's answer is its completion and the reply — so a 10 MB message was
stored four times. When the store writes a batch, every string value of at least
``SHARED_MIN_CHARS`` (at the top of a record's data, or a few levels down, e.g.
``input.add[0].content``) becomes ``{"$text": <sha-256>}`` and the text goes once into the
``texts`` table. Readers get the data back whole: :func:`expand` puts the texts back for a
list of decoded data dicts with one query.

Short texts stay inline: for a chat message the digest and the extra row would cost more than
the copy saves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store.tables import texts

SHARED_MIN_CHARS = 2048
"""Strings this long or longer are stored once, by digest."""

_KEY = "$text"


def share(data: Mapping[str, Any], found: dict[str, str]) -> Mapping[str, Any]:
    """``data`` with its large strings replaced by references; the texts go into ``found``
    (digest → text). Returns ``data`` itself when nothing is large (the common case).

    Strings are looked for up to ``MAX_DEPTH`` levels down, through dicts and lists (a
    model call's new messages sit at ``input.add[i].content``)."""
    shared: Mapping[str, Any] = _share(data, found, 0)
    return data if shared is data else shared


MAX_DEPTH = 4
"""How deep in a record's data large strings are looked for (and put back)."""


def _share(value: Any, found: dict[str, str], depth: int) -> Any:
    kind = type(value)
    if kind is str:
        if len(value) < SHARED_MIN_CHARS or "\x00" in value:
            return value  # short, or NUL, which a PostgreSQL text column cannot hold
        return _ref(value, found)
    if depth >= MAX_DEPTH:
        return value
    if kind is dict:
        out: dict[str, Any] | None = None
        for key, item in value.items():
            shared = _share(item, found, depth + 1)
            if shared is not item:
                if out is None:
                    out = dict(value)
                out[key] = shared
        return value if out is None else out
    if kind is list:
        items: list[Any] | None = None
        for index, item in enumerate(value):
            shared = _share(item, found, depth + 1)
            if shared is not item:
                if items is None:
                    items = list(value)
                items[index] = shared
        return value if items is None else items
    return value


def _ref(text: str, found: dict[str, str]) -> dict[str, str]:
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    found[digest] = text
    return {_KEY: digest}


def rows(found: Mapping[str, str], now: float) -> list[dict[str, Any]]:
    """The ``texts`` rows to insert (existing digests are left as they are)."""
    # In digest order: two writers inserting overlapping texts take their locks in one order.
    return [{"digest": digest, "text": found[digest], "first_seen": now}
            for digest in sorted(found)]


def _digest_of(value: object) -> str | None:
    if type(value) is dict and len(value) == 1:
        digest = value.get(_KEY)
        if type(digest) is str:
            return digest
    return None


def expand(conn: Connection, datas: Iterable[dict[str, Any]]) -> None:
    """Put the shared texts back into decoded data dicts, in place (one query in all)."""
    places: list[tuple[Any, Any, str]] = []
    for data in datas:
        _find(data, places, 0)
    if not places:
        return
    wanted = sorted({digest for _, _, digest in places})
    found: dict[str, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        for digest, text in conn.execute(sa.select(texts.c.digest, texts.c.text)
                                         .where(texts.c.digest.in_(chunk))):
            found[digest] = text
    for holder, key, digest in places:
        holder[key] = found.get(digest, "[text no longer stored]")


def _find(value: Any, places: list[tuple[Any, Any, str]], depth: int) -> None:
    if depth >= MAX_DEPTH:
        return
    pairs: Iterable[tuple[Any, Any]]
    if type(value) is dict:
        pairs = value.items()
    elif type(value) is list:
        pairs = enumerate(value)
    else:
        return
    for key, item in pairs:
        digest = _digest_of(item)
        if digest is not None:
            places.append((value, key, digest))
        elif type(item) is dict or type(item) is list:
            _find(item, places, depth + 1)
