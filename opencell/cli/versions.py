"""``opencell versions BOT``: the bot's versions as they ran, compared; a diff of two."""

from __future__ import annotations

from typing import Annotated

import typer

from opencell.cli._common import ConfigOption, console, fail, opened_store, parse_since, print_json


def versions(
    bot: Annotated[str, typer.Argument(help="The bot's name.", show_default=False)],
    since: Annotated[str | None, typer.Option(help="Sessions started since (7d, 2h or an "
                                              "ISO date).")] = None,
    diff: Annotated[tuple[str, str] | None, typer.Option(
        help="Show what changed between two versions (ids or unique prefixes).",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    config: ConfigOption = None,
) -> None:
    """Compare the bot's versions: cost and tokens per turn, latency, failures, tool errors."""
    from opencell.cli.replay_views import version_diff, versions_table
    from opencell.errors import StoreError
    from opencell.store.versions import version_stats, version_text

    with opened_store(config) as store:
        if diff is not None:
            texts = []
            for wanted in diff:
                try:
                    found = version_text(store, bot, wanted)
                except StoreError as exc:
                    fail(f"error: {exc}")
                if found is None:
                    fail(f"bot '{bot}' has no version '{wanted}'; list them with "
                         f"`opencell versions {bot}`")
                texts.append(found)
            (a, a_text), (b, b_text) = texts
            if as_json:
                print_json({"bot": bot, "a": a, "b": b, "a_text": a_text, "b_text": b_text})
            else:
                console().print(version_diff(a, a_text, b, b_text))
            return
        rows = version_stats(store, bot, since=parse_since(since))
    if as_json:
        print_json({"bot": bot, "versions": rows})
    else:
        console().print(versions_table(bot, rows))
