"""Large texts stored once: a text that several records carry is kept one time, by digest.

A turn's text reaches several records — the user's message is the ``message`` input and the
model's prompt; the model's answer is its completion and the reply — so a 10 MB message was
stored four times. When the store writes a batch, every string value of at least
``SHARED_MIN_CHARS`` (at the top of a record's data, or one level down, e.g.
``prompt_last.content``) becomes ``{"$text": <sha-256>}`` and the text goes once into the
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
    (digest → text). Returns ``data`` itself when nothing is large (the common case)."""
    out: dict[str, Any] | None = None
    for key, value in data.items():
        kind = type(value)
        if kind is str:
            if len(value) < SHARED_MIN_CHARS or "\x00" in value:
                continue  # short, or NUL, which a PostgreSQL text column cannot hold
            shared: Any = _ref(value, found)
        elif kind is dict:
            shared = _share_inner(value, found)
            if shared is value:
                continue
        else:
            continue
        if out is None:
            out = dict(data)
        out[key] = shared
    return data if out is None else out


def _share_inner(inner: dict[str, Any], found: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] | None = None
    for key, value in inner.items():
        if type(value) is str and len(value) >= SHARED_MIN_CHARS and "\x00" not in value:
            if out is None:
                out = dict(inner)
            out[key] = _ref(value, found)
    return inner if out is None else out


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
    places: list[tuple[dict[str, Any], str, str]] = []
    for data in datas:
        for key, value in data.items():
            digest = _digest_of(value)
            if digest is not None:
                places.append((data, key, digest))
            elif type(value) is dict:
                for inner_key, inner_value in value.items():
                    inner_digest = _digest_of(inner_value)
                    if inner_digest is not None:
                        places.append((value, inner_key, inner_digest))
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
