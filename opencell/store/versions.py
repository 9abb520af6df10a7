"""Reads for bot versions and replays: how each version of a bot did, its text, a session's
replays.

A session's ``bot_version`` is the digest of the bot's version text, which the store keeps
once in ``texts`` (see ``texts.version_digest``). Sessions on platform ``replay`` are
replays (``replay_of`` names their source); versions are compared with live traffic and
replays apart, so "version B on last week's traffic" sits next to "version A as it ran".
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.errors import StoreError
from opencell.store.reads import SESSION_COLUMNS, iso, session_dict
from opencell.store.tables import events, feedback, sessions, texts

if TYPE_CHECKING:
    from opencell.store.store import Store

_s, _e = sessions.c, events.c


def feedback_rates(conn: Connection, bot: str, since: float | None) -> dict[tuple[str, str],
                                                                             float]:
    """(version, origin) → share of the rated turns whose net rating (👍 − 👎) is negative,
    from the ``feedback`` table (one standing rating per turn, person and reaction)."""
    f = feedback.c
    turns = (sa.select(f.session_id, f.turn, sa.func.sum(f.score).label("net"))
             .group_by(f.session_id, f.turn).subquery())
    origin = sa.case((_s.platform == "replay", "replay"), else_="live").label("origin")
    query = (sa.select(_s.bot_version, origin, sa.func.count().label("rated"),
                       sa.func.sum(sa.case((turns.c.net < 0, 1), else_=0)).label("bad"))
             .join_from(turns, sessions, turns.c.session_id == _s.id)
             .where(_s.bot == bot)
             .group_by(_s.bot_version, origin))
    if since is not None:
        query = query.where(_s.started_at >= since)
    return {(str(row.bot_version or ""), str(row.origin)): int(row.bad or 0) / int(row.rated)
            for row in conn.execute(query) if row.rated}


def version_stats(store: Store, bot: str, *, since: float | None = None
                  ) -> list[dict[str, Any]]:
    """Per version of ``bot`` (and per origin, ``live`` or ``replay``): sessions, turns,
    cost and tokens per turn, turn latency p50/p95, failed turns, tool errors, 👎 rate,
    model, first and last seen — newest version first."""
    where = [_s.bot == bot]
    if since is not None:
        where.append(_s.started_at >= since)
    origin = sa.case((_s.platform == "replay", "replay"), else_="live").label("origin")
    totals = (sa.select(_s.bot_version, origin, sa.func.count().label("sessions"),
                        *(sa.func.sum(_s[c]).label(c) for c in (
                            "messages", "llm_calls", "input_tokens", "output_tokens",
                            "cache_read_tokens", "cache_write_tokens", "cost_usd")),
                        sa.func.min(_s.started_at).label("first"),
                        sa.func.max(_s.started_at).label("last"))
              .where(*where).group_by(_s.bot_version, origin))
    turns = (sa.select(_s.bot_version, origin, _e.kind, _e.success, _e.duration_ms)
             .join_from(events, sessions, _e.session_seq == _s.seq)
             .where(*where, _e.kind.in_(("message", "tool_call"))))
    with store.reading() as conn:
        rows = {(r.bot_version, r.origin): r for r in conn.execute(totals)}
        latencies: dict[tuple[str, str], list[float]] = {}
        failed: dict[tuple[str, str], int] = {}
        tool_errors: dict[tuple[str, str], int] = {}
        for r in conn.execute(turns):
            key = (r.bot_version, r.origin)
            if r.kind == "message":
                if r.duration_ms is not None:
                    latencies.setdefault(key, []).append(float(r.duration_ms))
                if r.success is False or r.success == 0:
                    failed[key] = failed.get(key, 0) + 1
            elif r.success is False or r.success == 0:
                tool_errors[key] = tool_errors.get(key, 0) + 1
        models = _models(conn, [v for v, _ in rows if v])
        rates = feedback_rates(conn, bot, since)
    out = []
    for key, r in sorted(rows.items(), key=lambda item: -(item[1].last or 0)):
        turn_count = int(r.messages or 0)
        tokens = sum(int(getattr(r, c) or 0) for c in (
            "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"))
        spans = latencies.get(key, [])
        out.append({
            "version": key[0], "origin": key[1], "model": models.get(key[0] or ""),
            "sessions": int(r.sessions), "turns": turn_count,
            "llm_calls": int(r.llm_calls or 0), "tokens": tokens,
            "cost_usd": float(r.cost_usd or 0.0),
            "cost_per_turn": float(r.cost_usd or 0.0) / turn_count if turn_count else None,
            "tokens_per_turn": tokens / turn_count if turn_count else None,
            "latency_p50_ms": _percentile(spans, 50), "latency_p95_ms": _percentile(spans, 95),
            "failed_turns": failed.get(key, 0), "tool_errors": tool_errors.get(key, 0),
            "thumbs_down_rate": rates.get((key[0] or "", key[1])),
            "first_seen": iso(r.first), "last_seen": iso(r.last)})
    return out


def version_text(store: Store, bot: str, wanted: str) -> tuple[str, str] | None:
    """(digest, text) of ``bot``'s version ``wanted`` (a digest or a unique prefix)."""
    wanted = wanted.strip().lower()
    if not wanted:
        return None
    with store.reading() as conn:
        found = [v for (v,) in conn.execute(
            sa.select(_s.bot_version).distinct().where(
                _s.bot == bot, _s.bot_version.startswith(wanted, autoescape=True)).limit(2))]
        if len(found) > 1:
            raise StoreError(f"'{wanted}' matches several versions of {bot}; give more of it")
        if not found:
            return None
        text = conn.execute(sa.select(texts.c.text).where(texts.c.digest == found[0])).scalar()
    return found[0], text if text is not None else "(this version's text was not stored)"


def replays_of(store: Store, session_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The replays of ``session_id``, newest first."""
    stmt = (sa.select(*SESSION_COLUMNS).where(_s.replay_of == session_id)
            .order_by(_s.started_at.desc()).limit(limit))
    with store.reading() as conn:
        return [session_dict(r) for r in conn.execute(stmt).mappings()]


def _models(conn: Connection, digests: Sequence[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    if not digests:
        return out
    for digest, text in conn.execute(sa.select(texts.c.digest, texts.c.text)
                                     .where(texts.c.digest.in_(list(digests)))):
        try:
            data = json.loads(text)
            out[digest] = f"{data.get('provider')}:{data.get('model')}"
        except (ValueError, AttributeError):
            continue
    return out


def _percentile(values: list[float], q: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]
