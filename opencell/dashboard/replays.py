"""Pages for replays, bot versions and what-if prices (Jinja2, autoescaped).

- ``/sessions/{id}/replays/{replay}``: a recorded session and one of its replays side by
  side, turn by turn, the words that changed marked;
- ``/versions?bot=…``: a bot's versions compared (live traffic and replays apart), and
  ``/versions/diff?bot=…&a=…&b=…``: what changed between two;
- the session page's replays and the what-if column of the costs and session pages
  (``?what_if=provider:model``), priced from totals, never by scanning events.
"""

from __future__ import annotations

import difflib
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from opencell.dashboard import queries
from opencell.dashboard.state import state_of
from opencell.errors import ConfigError, StoreError
from opencell.llm.pricing import PriceBook
from opencell.llm.what_if import WhatIfModel, parse_model, what_if_cost, with_what_if
from opencell.replay import read_recording
from opencell.store.versions import replays_of, version_stats, version_text

router = APIRouter(include_in_schema=False)

Id = Annotated[str, PathParam(min_length=1, max_length=64)]


def render(request: Request, name: str, context: dict[str, Any],
           status: int = 200) -> Response:
    templates = state_of(request).templates
    return templates.TemplateResponse(request, name, {"path": request.url.path, **context},
                                      status_code=status)


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    return render(request, "error.html", {"status": status, "title": title,
                                          "message": message}, status=status)


@cache
def _configured_prices() -> PriceBook:
    from opencell.config import load_config

    try:
        return PriceBook(load_config().pricing)
    except Exception:  # noqa: BLE001 - a broken pricing file: built-in prices still answer
        return PriceBook()


def prices_of(request: Request) -> PriceBook:
    """The dashboard's price book (genai-prices plus the configured overrides)."""
    found = getattr(state_of(request), "prices", None)
    return found if isinstance(found, PriceBook) else _configured_prices()


def what_if_model(text: str | None) -> tuple[WhatIfModel | None, str | None]:
    """(model, None), (None, why it is not one), or (None, None) when none was asked."""
    if not text or not text.strip():
        return None, None
    try:
        return parse_model(text), None
    except ConfigError as exc:
        return None, exc.message


def add_what_if(request: Request, breakdowns: dict[str, Any], model: WhatIfModel) -> None:
    """Price every breakdown row and total of the costs page under ``model``, in place."""
    prices = prices_of(request)
    for breakdown in breakdowns.values():
        rows = [*breakdown["rows"], breakdown["total"]]
        for row, priced in zip(rows, with_what_if(rows, prices, model), strict=True):
            row["what_if_usd"] = priced["what_if_usd"]


def session_extras(request: Request, session: dict[str, Any],
                   what_if: str | None) -> dict[str, Any]:
    """The session page's replays, and its tokens priced under ``what_if``."""
    state = state_of(request)
    model, problem = what_if_model(what_if)
    priced = what_if_cost(session, prices_of(request), model) if model else None
    return {"replays": replays_of(state.store, session["id"]), "what_if": what_if or "",
            "what_if_model": str(model) if model else None, "what_if_usd": priced,
            "what_if_error": problem}


def word_diff(old: str, new: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Both texts as (text, ``same``|``del``|``ins``) runs of words."""
    a, b = old.split(" "), new.split(" ")
    left: list[tuple[str, str]] = []
    right: list[tuple[str, str]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            left.append((" ".join(a[i1:i2]) + " ", "same"))
            right.append((" ".join(b[j1:j2]) + " ", "same"))
            continue
        if i2 > i1:
            left.append((" ".join(a[i1:i2]) + " ", "del"))
        if j2 > j1:
            right.append((" ".join(b[j1:j2]) + " ", "ins"))
    return left, right


@router.get("/sessions/{session_id}/replays/{replay_id}")
def replay_page(request: Request, session_id: Id, replay_id: Id) -> Response:
    store = state_of(request).store
    source = store.get_session(session_id)
    replayed = store.get_session(replay_id)
    if source is None or replayed is None or replayed.get("replay_of") != source["id"]:
        return error_page(request, 404, "No such replay",
                          f"session {session_id} has no replay {replay_id}")
    try:
        old = read_recording(source, store.timeline(source["id"]))
        new = read_recording(replayed, store.timeline(replayed["id"]))
    except StoreError as exc:
        return error_page(request, 422, "This session cannot be compared", str(exc))
    turns = []
    for index in range(max(len(old.turns), len(new.turns))):
        a = old.turns[index] if index < len(old.turns) else None
        b = new.turns[index] if index < len(new.turns) else None
        left, right = word_diff(a.reply or "" if a else "", b.reply or "" if b else "")
        turns.append({"number": index + 1, "text": a.text if a else b.text if b else "",
                      "old": a, "new": b, "left": left, "right": right,
                      "changed": (a.reply if a else None) != (b.reply if b else None)})
    return render(request, "replay.html", {"source": source, "replay": replayed,
                                           "turns": turns})


@router.get("/versions")
def versions_page(request: Request,
                  bot: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    state = state_of(request)
    facets = state.read(queries.facets)
    rows = version_stats(state.store, bot) if bot else []
    return render(request, "versions.html", {"bot": bot or "", "rows": rows,
                                             "facets": facets})


@router.get("/versions/diff")
def version_diff_page(request: Request, bot: Annotated[str, Query(max_length=200)],
                      a: Annotated[str, Query(min_length=1, max_length=64)],
                      b: Annotated[str, Query(min_length=1, max_length=64)]) -> Response:
    store = state_of(request).store
    try:
        found = [version_text(store, bot, wanted) for wanted in (a, b)]
    except StoreError as exc:
        return error_page(request, 422, "Which version?", str(exc))
    first, second = found
    if first is None or second is None:
        return error_page(request, 404, "No such version",
                          f"bot {bot} has no version {a if first is None else b}")
    lines = list(difflib.unified_diff(first[1].splitlines(), second[1].splitlines(),
                                      fromfile=first[0][:12], tofile=second[0][:12],
                                      lineterm=""))
    return render(request, "version_diff.html", {"bot": bot, "a": first[0], "b": second[0],
                                                 "lines": lines})
