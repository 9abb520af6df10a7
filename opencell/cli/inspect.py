"""``opencell sessions``, ``session`` and ``costs``: read what the bots did from the store."""

from __future__ import annotations

from typing import Annotated

import typer

from opencell.cli._common import ConfigOption, console, fail, opened_store, parse_since, print_json


def sessions(
    bot: Annotated[str | None, typer.Option(help="Only this bot.")] = None,
    user: Annotated[str | None, typer.Option(help="Only this user id.")] = None,
    platform: Annotated[str | None, typer.Option(help="console, discord, slack, api …")] = None,
    status: Annotated[str | None, typer.Option(help="open, success or failed.")] = None,
    since: Annotated[str | None, typer.Option(help="e.g. 2h, 7d or 2026-11-01.")] = None,
    feedback: Annotated[str | None, typer.Option(
        help="good, bad, rated or unrated: by the ratings people gave the replies.")] = None,
    sort: Annotated[str, typer.Option(
        help="started_at, duration, cost or feedback (net 👍 − 👎).")] = "started_at",
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    config: ConfigOption = None,
) -> None:
    """List sessions, newest first (``--sort feedback``: worst-rated first). In a terminal
    the table fits its width; piped, it is tab-separated with a header line and full ids."""
    from opencell.cli.views import show_sessions

    if status not in (None, "open", "success", "failed"):
        fail(f"--status: '{status}' is not one of open, success, failed", code=2)
    if feedback not in (None, "good", "bad", "rated", "unrated"):
        fail(f"--feedback: '{feedback}' is not one of good, bad, rated, unrated", code=2)
    if sort not in ("started_at", "duration", "cost", "feedback"):
        fail(f"--sort: '{sort}' is not one of started_at, duration, cost, feedback", code=2)
    # Sorting by feedback puts the worst-rated first.
    with opened_store(config) as store:
        rows, cursor = store.list_sessions(bot=bot, user=user, platform=platform,
                                           status=status, since=parse_since(since), limit=limit,
                                           feedback=feedback, sort=sort,
                                           descending=sort != "feedback")
    if as_json:
        print_json({"sessions": rows, "next_cursor": cursor})
    else:
        show_sessions(rows)


def session(
    session_id: Annotated[str, typer.Argument(metavar="ID", help="Session id (or a unique "
                                              "prefix).", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    config: ConfigOption = None,
) -> None:
    """Show one session with its timeline."""
    from opencell.cli.views import session_view
    from opencell.errors import AmbiguousSessionError
    from opencell.store.feedback import session_feedback

    with opened_store(config) as store:
        try:
            found = store.get_session(session_id)
        except AmbiguousSessionError:
            fail(f"error: '{session_id}' matches several sessions; give more characters of "
                 "the id (`opencell sessions` lists them)")
        events = store.timeline(found["id"]) if found is not None else []
        if found is not None:
            found["feedback"] = session_feedback(store, found["id"])
    if found is None:
        fail(f"no session '{session_id}'; list them with `opencell sessions`")
    if as_json:
        print_json({**found, "timeline": events})
    else:
        console().print(session_view(found, events))


def costs(
    by: Annotated[str, typer.Option(help="bot, user, platform, provider or model.")] = "bot",
    period: Annotated[str, typer.Option(help="day, week or month.")] = "day",
    what_if: Annotated[str | None, typer.Option(
        "--what-if", help="Also price the same tokens as if this model (provider:model) "
        "had answered.")] = None,
    top: Annotated[int, typer.Option(min=1, help="Rows to list; the rest are summed in one "
                                     "\"others\" row (the total counts them all).")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    config: ConfigOption = None,
) -> None:
    """Cost breakdown for the current day, week or month (UTC): the most expensive first."""
    if what_if is not None:
        from opencell.cli.replay import what_if_costs

        what_if_costs(what_if, by, period, as_json, config)
        return
    from opencell.cli.views import show_costs

    if by not in ("bot", "user", "platform", "provider", "model"):
        fail(f"--by: '{by}' is not one of bot, user, platform, provider, model", code=2)
    if period not in ("day", "week", "month"):
        fail(f"--period: '{period}' is not one of day, week, month", code=2)
    with opened_store(config) as store:
        rows = store.costs(by=by, period=period)
    if as_json:
        total = sum(r.get("cost_usd") or 0.0 for r in rows)
        # Calls whose usage the provider did not credibly report, counted at their worst case.
        estimated = sum(r.get("estimated_calls") or 0 for r in rows)
        print_json({"by": by, "period": period, "total_usd": total,
                    "estimated_calls": estimated, "rows": rows})
    else:
        show_costs(rows, by=by, period=period, top=top)
