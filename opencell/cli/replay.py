"""``opencell replay``: rerun recorded sessions against the bot as now or as changed.

One session (``opencell replay ID``) prints each turn's recorded and new reply side by side;
many (``opencell replay --bot NAME --since 7d``) run with bounded concurrency under one
spending cap and print a summary. Either exits 1 when a replayed turn failed.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opencell.cli._common import (
    ConfigOption,
    console,
    fail,
    guarded,
    opened_store,
    parse_since,
    print_json,
)

if TYPE_CHECKING:
    from opencell.config import BotConfig
    from opencell.replay import ReplayResult
    from opencell.runtime import BotRuntime
    from opencell.store.store import Store


def find_bot(name_or_path: str, bots_dir: Path) -> BotConfig:
    """A bot YAML by path, or by the bot's ``name`` among ``bots_dir/*.yaml``."""
    from opencell.config.source import read_yaml
    from opencell.loading import load_bot

    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            fail(f"--bot: no file {path}", code=2)
        return load_bot(path)
    for candidate in sorted(bots_dir.glob("*.y*ml")):
        try:
            data = read_yaml(candidate, {}).data
        except Exception:  # noqa: BLE001 - an unreadable neighbour is not this bot
            continue
        if isinstance(data, dict) and data.get("name") == name_or_path:
            return load_bot(candidate)
    fail(f"no YAML for bot '{name_or_path}' in {bots_dir}/; pass --bot FILE (or --bots-dir)",
         code=2)


def replay(
    session_id: Annotated[str | None, typer.Argument(
        metavar="[SESSION_ID]", help="Replay this session (an id, prefix or tail). Without "
        "it, replay the --bot's sessions (batch).", show_default=False)] = None,
    bot: Annotated[str | None, typer.Option(help="One session: the bot YAML to replay "
                                            "against. Batch: the bot (name or YAML) whose "
                                            "sessions to replay.")] = None,
    with_bot: Annotated[Path | None, typer.Option(
        "--with", help="Batch: replay against this bot YAML instead (the change to test).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Replay with this model.")] = None,
    system_prompt: Annotated[Path | None, typer.Option(
        "--system-prompt", help="File with the system prompt to replay with.")] = None,
    tools: Annotated[str, typer.Option(help="recorded (answer from the recording), live "
                                       "(run them) or deny.")] = "recorded",
    since: Annotated[str | None, typer.Option(help="Batch: sessions started since (7d, "
                                              "2h or an ISO date).")] = None,
    sample: Annotated[int | None, typer.Option(min=1, help="Batch: replay this many, "
                                               "picked at random.")] = None,
    seed: Annotated[int, typer.Option(help="Batch: the --sample's random seed.")] = 0,
    max_usd: Annotated[float | None, typer.Option(
        "--max-usd", min=0, help="Stop making model calls once the replay spent this.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="Batch: sessions "
                                             "replayed at once.")] = 4,
    bots_dir: Annotated[Path, typer.Option(help="Where bot YAML files are found by "
                                           "name.")] = Path("bots"),
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    config: ConfigOption = None,
) -> None:
    """Replay recorded sessions against the bot as now, or changed; compare old and new."""
    from opencell.replay import TOOL_MODES

    if tools not in TOOL_MODES:
        fail(f"--tools: '{tools}' is not one of {', '.join(TOOL_MODES)}", code=2)
    prompt = None
    if system_prompt is not None:
        try:
            prompt = system_prompt.read_text(encoding="utf-8")
        except OSError as exc:
            fail(f"--system-prompt: cannot read {system_prompt}: {exc.strerror}", code=2)
    options: dict[str, Any] = {"model": model, "system_prompt": prompt, "tools": tools}
    if session_id is None:
        if bot is None:
            fail("give a SESSION_ID, or --bot NAME to replay that bot's sessions", code=2)
        guarded(lambda: _batch(bot, with_bot, since, sample, seed, max_usd, concurrency,
                               bots_dir, as_json, config, options))
        return
    failed = [False]

    async def one() -> None:
        from opencell.replay import Spend

        with _replaying(config) as (store, observability):
            source = store.get_session(session_id)
            if source is None:
                fail(f"no session '{session_id}'; list them with `opencell sessions`")
            changed = bot or (str(with_bot) if with_bot else None)
            bot_config = find_bot(changed or source["bot"], bots_dir)
            runtime = _runtime(bot_config, observability)
            try:
                result = await runtime.replay(source["id"], **options, spend=Spend(max_usd),
                                              store=store)
            finally:
                await runtime.aclose()
        failed[0] = not result.ok
        _show(result, as_json)

    guarded(one)
    if failed[0]:
        raise typer.Exit(1)


def _show(result: ReplayResult, as_json: bool) -> None:
    from opencell.cli.replay_views import replay_view

    if as_json:
        print_json(result.to_dict())
    else:
        console().print(replay_view(result))


def _runtime(bot_config: BotConfig, observability: Any) -> BotRuntime:
    from opencell.runtime import BotRuntime

    return BotRuntime(bot_config, observability=observability)


class _replaying:
    """The configured store and an observability recording into it (closed after)."""

    def __init__(self, config: Path | None) -> None:
        self._config = config

    def __enter__(self) -> tuple[Store, Any]:
        from opencell.config import load_config
        from opencell.observability.observer import Observability

        self._observability = Observability.from_config(load_config(self._config))
        store = self._observability.store
        assert store is not None
        return store, self._observability

    def __exit__(self, *exc: object) -> None:
        self._observability.close()


def _batch(bot: str, with_bot: Path | None, since: str | None, sample: int | None, seed: int,
           max_usd: float | None, concurrency: int, bots_dir: Path, as_json: bool,
           config: Path | None, options: dict[str, Any]) -> Any:
    async def run() -> None:
        import asyncio

        from opencell.cli.replay_views import batch_summary
        from opencell.replay import ReplayResult, Spend  # noqa: F401 - annotation below

        source_config = find_bot(bot, bots_dir)
        target = find_bot(str(with_bot), bots_dir) if with_bot else source_config
        with _replaying(config) as (store, observability):
            ids = _session_ids(store, source_config.name, parse_since(since))
            if sample is not None and sample < len(ids):
                ids = random.Random(seed).sample(ids, sample)
            spend = Spend(max_usd)
            runtime = _runtime(target, observability)
            results: list[ReplayResult] = []
            errors: list[str] = []
            gate = asyncio.Semaphore(concurrency)
            progress = _progress(len(ids), quiet=as_json)

            async def one(source_id: str) -> None:
                async with gate:
                    try:
                        results.append(await runtime.replay(source_id, **options, spend=spend,
                                                            store=store))
                    except Exception as exc:  # noqa: BLE001 - one bad session, reported
                        errors.append(f"{source_id}: {type(exc).__name__}: {exc}")
                    progress.advance()

            try:
                with progress:
                    await asyncio.gather(*(one(i) for i in ids))
            finally:
                await runtime.aclose()
        budget = (f"--max-usd reached: spent ${spend.spent_usd:.4f}"
                  if max_usd is not None and spend.spent_usd >= max_usd else None)
        results.sort(key=lambda r: r.source_id)
        if as_json:
            print_json({"sessions": len(ids), "errors": errors, "budget": budget,
                        "spent_usd": spend.spent_usd,
                        "turns": sum(len(r.turns) for r in results),
                        "changed": sum(r.changed_turns for r in results),
                        "failed": sum(r.failed_turns for r in results),
                        "replays": [r.to_dict() for r in results]})
        else:
            console().print(batch_summary(results, errors, budget))
        if errors or any(not r.ok for r in results):
            raise typer.Exit(1)

    return run()


def _session_ids(store: Store, bot: str, since: float | None) -> list[str]:
    """The bot's ended sessions since ``since`` (replays themselves excluded), oldest first."""
    ids: list[str] = []
    cursor = None
    while True:
        rows, cursor = store.list_sessions(bot=bot, since=since, limit=1000, cursor=cursor,
                                           descending=False)
        ids += [r["id"] for r in rows if r["platform"] != "replay" and r["status"] != "open"]
        if cursor is None:
            return ids


class _progress:
    """A progress bar on stderr (nothing when quiet or not a terminal)."""

    def __init__(self, total: int, *, quiet: bool) -> None:
        from rich.progress import Progress

        self._bar = Progress(console=console(stderr=True), transient=True,
                             disable=quiet or not console(stderr=True).is_terminal)
        self._task = self._bar.add_task("replaying", total=total)

    def __enter__(self) -> _progress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def advance(self) -> None:
        self._bar.advance(self._task)


WHAT_IF_ROWS = 100
"""``costs --what-if`` lists the most expensive keys; its totals cover them all."""


def what_if_costs(model_text: str, by: str, period: str, as_json: bool,
                  config: Path | None) -> None:
    """``opencell costs --what-if MODEL``: the rollups' tokens priced under another model."""
    from opencell.cli.replay_views import what_if_table
    from opencell.config import load_config
    from opencell.errors import ConfigError
    from opencell.llm.pricing import PriceBook
    from opencell.llm.what_if import parse_model, total_what_if, with_what_if
    from opencell.store.cost_totals import cost_totals

    if by not in ("bot", "user", "platform", "provider", "model"):
        fail(f"--by: '{by}' is not one of bot, user, platform, provider, model", code=2)
    if period not in ("day", "week", "month"):
        fail(f"--period: '{period}' is not one of day, week, month", code=2)
    try:
        model = parse_model(model_text)
        prices = PriceBook(load_config(config).pricing)
    except ConfigError as exc:
        fail(exc.located(), code=2)
    with opened_store(config) as store:
        top, sums = cost_totals(store, by, period, limit=WHAT_IF_ROWS)
        complete = sums["keys"] <= len(top)
        if not complete and total_what_if(top, sums, prices, model, complete=False) is None:
            top, sums = cost_totals(store, by, period)  # a tiered price: every row priced
            complete = True
    rows = with_what_if(top, prices, model)
    total = total_what_if(rows, sums, prices, model, complete=complete)
    if as_json:
        print_json({"by": by, "period": period, "what_if": str(model), "keys": sums["keys"],
                    "total_usd": sums["cost_usd"], "what_if_usd": total, "totals": sums,
                    "rows": rows})
    else:
        console().print(what_if_table(rows, by=by, period=period, model=str(model),
                                      sums=sums, what_if_total=total))
