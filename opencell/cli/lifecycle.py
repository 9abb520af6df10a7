"""``opencell forget``, ``export`` and ``prune``: the store's data lifecycle from the shell."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from opencell.cli._common import ConfigOption, console, fail, opened_store, parse_since, print_json


def forget(
    user: Annotated[str, typer.Option("--user", help="The user id to forget (as the "
                                      "platform gives it, e.g. a Discord or Slack user id).",
                                      show_default=False)],
    platform: Annotated[str | None, typer.Option(help="Only this platform's sessions "
                                                 "(discord, slack, console …).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be erased; "
                                          "change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    config: ConfigOption = None,
) -> None:
    """Erase one user's data (GDPR Art. 17 / CCPA): text, tool data, errors' context, custom
    data, in every session they took part in. Costs and tokens stay, under a pseudonym.

    Writes an audit record without personal data and lists the exporters that had already
    sent the data, so it can be erased there too.
    """
    from opencell.store.erasure import forget as erase

    if not user.strip():
        fail("--user: give the user id to forget", code=2)
    with opened_store(config) as store:
        report = erase(store, user, platform=platform, dry_run=dry_run)
    if as_json:
        print_json({"dry_run": report.dry_run, **report.counts(),
                    "session_ids": report.session_ids, "exporters": report.exporters,
                    "audit_id": report.audit_id, "pseudonym": report.pseudonym})
        return
    out = console()
    verb = "would erase" if dry_run else "erased"
    counts = report.counts()
    if not any(counts.values()):
        out.print(f"nothing stored for that user{' on ' + platform if platform else ''}",
                  markup=False)
        return
    out.print(f"{verb}: {counts['sessions']} session(s), {counts['events']} event(s), "
              f"{counts['texts']} shared text(s), {counts['quarantined']} quarantined "
              f"record(s); {counts['cost_rows']} cost row(s) and {counts['alerts']} budget "
              "alert(s) " + ("would be " if dry_run else "") + "re-keyed to "
              + (report.pseudonym or "a pseudonym") + " (totals unchanged)", markup=False,
              soft_wrap=True)
    if report.audit_id is not None:
        out.print(f"audit record #{report.audit_id} written (who, when, counts; no personal "
                  "data)", markup=False)
    if report.exporters:
        out.print(("already" if not dry_run else "so far") + " sent to exporters; erase it "
                  "there too (AgentOps: delete these sessions' traces; OTLP: in your backend):",
                  markup=False)
        for name, sent in sorted(report.exporters.items()):
            out.print(f"  {name}: {sent['events']} event(s) of {len(sent['sessions'])} "
                      f"session(s): {' '.join(sent['sessions'])}", markup=False, soft_wrap=True)
    else:
        out.print("no exporter had sent any of it", markup=False)


def export(
    session: Annotated[str | None, typer.Option(help="One session (id or unique prefix).")
                       ] = None,
    user: Annotated[str | None, typer.Option(help="Sessions of this user id or name.")] = None,
    bot: Annotated[str | None, typer.Option(help="Sessions of this bot.")] = None,
    platform: Annotated[str | None, typer.Option(help="console, discord, slack, api …")
                        ] = None,
    since: Annotated[str | None, typer.Option(help="Started since, e.g. 2h, 7d or "
                                              "2026-11-01.")] = None,
    until: Annotated[str | None, typer.Option(help="Started before, e.g. 1d or "
                                              "2026-12-01.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl (one session per line).")
                   ] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write "
                                                "(default: standard output).")] = None,
    config: ConfigOption = None,
) -> None:
    """Export sessions with their timelines as JSON Lines (schema in the README), redacted,
    streamed, with a progress bar on standard error."""
    from opencell.config import load_config
    from opencell.errors import AmbiguousSessionError
    from opencell.observability.redact import Redactor
    from opencell.store.export import Selection, count

    if fmt != "jsonl":
        fail(f"--format: '{fmt}' is not supported; use jsonl", code=2)
    rules = load_config(config).observability.redact
    redactor = Redactor.from_env(os.environ, rules=rules)
    with opened_store(config) as store:
        session_id = None
        if session is not None:
            try:
                found = store.get_session(session)
            except AmbiguousSessionError as exc:
                fail(str(exc), code=2)
            if found is None:
                fail(f"no session '{session}'; list them with `opencell sessions`")
            session_id = found["id"]
        selection = Selection(session_id=session_id, user=user, bot=bot, platform=platform,
                              since=parse_since(since), until=parse_since(until))
        total = count(store, selection)
        target: IO[str]
        target = sys.stdout if output is None or str(output) == "-" else \
            output.open("w", encoding="utf-8", newline="\n")
        try:
            stats = _with_progress(store, target, selection, redactor, total)
        finally:
            if target is not sys.stdout:
                target.close()
    where = "standard output" if target is sys.stdout else str(output)
    console(stderr=True).print(f"exported {stats.sessions} session(s), {stats.events} "
                               f"event(s) to {where}", markup=False)


def _with_progress(store: Any, target: IO[str], selection: Any, redact: Any, total: int) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from opencell.store.export import export_jsonl

    columns = (TextColumn("exporting"), BarColumn(), MofNCompleteColumn(),
               TextColumn("sessions, {task.fields[events]:,} events"))
    with Progress(*columns, console=console(stderr=True), transient=True) as bar:
        task = bar.add_task("export", total=total, events=0)

        def advance(sessions: int, events: int) -> None:
            if sessions % 50 == 0 or sessions == total:
                bar.update(task, completed=sessions, events=events)

        return export_jsonl(store, target, selection, redactor=redact, progress=advance)


def prune(
    vacuum: Annotated[bool, typer.Option("--vacuum", help="SQLite: first rebuild the file "
                                         "so freed space can be handed back (needs the bots "
                                         "stopped; once, for a file made by an older OpenCell).")
                      ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    config: ConfigOption = None,
) -> None:
    """Apply observability.retention now (the bots also do it in the background)."""
    from dataclasses import asdict

    from opencell.config import load_config
    from opencell.store.retention import full_vacuum, policy_from
    from opencell.store.retention import prune as run

    retention = load_config(config).observability.retention
    with opened_store(config) as store:
        if vacuum:
            full_vacuum(store)
        report = run(store, policy_from(retention))
    if as_json:
        print_json(asdict(report))
        return
    out = console()
    out.print(f"content expired: {report.content_expired} event(s); deleted: "
              f"{report.events_deleted} event(s), {report.texts_deleted} shared text(s), "
              f"{report.terms_deleted} search word(s), "
              f"{report.quarantine_deleted} quarantined record(s); "
              f"{report.pages_vacuumed} page(s) handed back", markup=False, soft_wrap=True)
    for name, cursor in sorted(report.held.items()):
        out.print(f"exporter {name} has not delivered past event {cursor}: newer events are "
                  "kept for it (up to observability.retention.exporter_grace)", markup=False)
    for name, lost in sorted(report.lost.items()):
        out.print(f"exporter {name}: {lost} undelivered event(s) pruned (behind longer than "
                  "the window plus exporter_grace)", markup=False)
