"""``BudgetLedger``: one process's budgets — limits, live tallies, reservations and alerts.

The App builds one ledger from ``budgets:`` and every bot's ``budget:`` and hands it to each
runtime, which wraps its model client in :class:`~opencell.budgets.enforcement.BudgetedLLM`.
At construction the ledger reads the current periods' spend and the alerts already raised from
the store; from then on every model call updates its tallies in memory at once (the recorder
stores the call ~50 ms later), and a background sync re-reads the store every
``sync_interval`` seconds to pick up what other processes sharing it spent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from opencell.budgets._store import BudgetStore
from opencell.budgets.alerts import (
    Alert,
    FiredAlerts,
    blocked_message,
    spike_message,
    threshold_message,
)
from opencell.budgets.limits import CallScope, Limit, build_limits, describe
from opencell.budgets.notifiers import AlertNotifier, channel_sink
from opencell.budgets.periods import ADJECTIVE, Period, Window, window_of
from opencell.budgets.reservations import (
    Hold,
    Refusal,
    Reservation,
    Tally,
    TallyKey,
)
from opencell.budgets.shared import SharedTallies, tallies_for
from opencell.budgets.spikes import SpikeDetector
from opencell.config import BotConfig, BudgetsConfig, OpenCellConfig
from opencell.errors import BudgetExceededError
from opencell.guard import guard
from opencell.llm.pricing import PriceBook

if TYPE_CHECKING:
    from opencell.adapters.base import Adapter
    from opencell.observability.observer import Observability
    from opencell.store import Store

log = logging.getLogger("opencell.budgets")

_EPSILON = 1e-9
"""Spend equal to a threshold (up to float noise) has reached it."""


class BudgetLedger:
    """Limits, tallies and alerts for every bot of one process; see the module docstring.

    ``observability`` gives the store, the prices and the recorder (alerts are recorded in
    sessions); ``store`` alone suffices to report usage (the CLI). ``wall`` gives epoch
    seconds (tests inject a clock); ``notifier`` delivers alerts (one is built from
    ``budgets.alerts`` when not given). ``watch_spikes=False`` skips reading the last day's
    calls for spike detection (reports: the CLI, the dashboard). Reading the store happens
    here and in ``sync``; ``reserve``/``settle`` never touch it.
    """

    def __init__(self, budgets: BudgetsConfig, bots: Iterable[BotConfig] = (), *,
                 observability: Observability | None = None, store: Store | None = None,
                 prices: PriceBook | None = None, notifier: AlertNotifier | None = None,
                 wall: Callable[[], float] = time.time, sync_interval: float = 60.0,
                 watch_spikes: bool = True) -> None:
        bots = list(bots)
        self.config = budgets
        self.limits: list[Limit] = build_limits(budgets, bots)
        self.zone = ZoneInfo(budgets.timezone)
        self.prices = prices or (observability.prices if observability else PriceBook())
        self.sync_interval = sync_interval
        self._obs = observability
        if store is None and observability is not None:
            store = observability.store
        self._store = BudgetStore(store) if store is not None else None
        self._wall = wall
        self._messages = {bot.name: bot.budget.blocked_message for bot in bots
                          if bot.budget is not None and bot.budget.blocked_message}
        self._periods: list[Period] = sorted({limit.period for limit in self.limits})
        self._windows: dict[Period, Window] = {}
        self._tallies = tallies_for(store)
        janitor = getattr(observability, "janitor", None)
        if isinstance(self._tallies, SharedTallies) and janitor is not None:
            janitor.add(self._tallies.release_dead)  # a dead process's reservations
        self._fired = FiredAlerts()
        self.spikes = SpikeDetector(budgets.alerts.spike_factor)
        self.notifier = notifier or AlertNotifier(webhooks=budgets.alerts.webhooks,
                                                  store=self._store)
        self._watch_spikes = watch_spikes
        self._stop = threading.Event()
        self._sync_thread: threading.Thread | None = None
        with guard("reading budgets from the store", logger=log):
            self._load()

    @classmethod
    def from_config(cls, config: OpenCellConfig, bots: Iterable[BotConfig],
                    observability: Observability) -> BudgetLedger | None:
        """The App's ledger; None when nothing is configured (no limits, no webhooks)."""
        bots = list(bots)
        budgets = config.budgets
        if not (budgets.limits or budgets.alerts.webhooks or budgets.alert_channel
                or any(bot.budget is not None for bot in bots)):
            return None
        return cls(budgets, bots, observability=observability)

    # ------------------------------------------------------------ periods

    def windows(self, now: float | None = None) -> dict[Period, Window]:
        """The current window of every period some limit uses."""
        now = self._wall() if now is None else now
        for period in self._periods:
            window = self._windows.get(period)
            if window is None or not window.contains(now):
                self._windows[period] = window_of(period, now, self.zone)
        return dict(self._windows)

    def holds(self, call: CallScope, now: float) -> list[Hold]:
        """Every limit that applies to ``call``, with its scope instance and window."""
        windows = self.windows(now)
        holds = []
        for limit in self.limits:
            label = limit.label(call)
            if label is not None:
                holds.append(Hold(limit, label, windows[limit.period]))
        return holds

    # ------------------------------------------------------------ the hot path

    def reserve(self, call: CallScope, estimate: float | None, *, bot: BotConfig,
                session_id: str | None = None) -> Reservation:
        """Hold ``estimate`` (None: unpriced) against every limit ``call`` falls under.

        Raises ``BudgetExceededError`` (the call must not be made) when an enforced limit
        would pass 100 %, or the model is unpriced and ``budgets.unpriced`` is ``block``.
        """
        now = self._wall()
        result = self._tallies.reserve(call, self.holds(call, now), estimate,
                                       block_unpriced=self.config.unpriced == "block", ts=now)
        if isinstance(result, Reservation):
            return result
        self._refused(result, call, session_id, now)
        hold = result.hold
        budget = f"{ADJECTIVE[hold.limit.period]} budget of ${hold.limit.usd:g}"
        if estimate is None:
            why = (f"the model has no known price, so {describe(hold.label)}'s enforced "
                   f"{budget} cannot be checked (price it in config/pricing.yaml, or set "
                   "budgets.unpriced: allow)")
        else:
            why = (f"{describe(hold.label)} would pass its {budget} (spent "
                   f"${result.spent:.4f}, in flight ${result.reserved:.4f}, this call up to "
                   f"${estimate:.4f})")
        raise BudgetExceededError(
            f"{why}; the model call was not made",
            user_message=self._messages.get(bot.name) or self.config.blocked_message,
            scope=hold.label, period=hold.limit.period, limit_usd=hold.limit.usd,
            spent_usd=result.spent, reason=result.reason)

    def _refused(self, refusal: Refusal, call: CallScope, session_id: str | None,
                 now: float) -> None:
        hold = refusal.hold
        with self._tallies.lock:
            first = self._fired.first_time("blocked", hold.label, hold.window.key,
                                           hold.limit.id)
        if first:
            self._raise(Alert(
                "blocked", hold.label, hold.window.key,
                blocked_message(hold.label, hold.limit.period, refusal.spent, hold.limit.usd,
                                refusal.reason),
                refusal.spent, hold.limit.id, hold.limit.usd, enforced=True,
                session_id=session_id, context=_context(call), ts=now))

    def release(self, reservation: Reservation) -> None:
        """The call failed: drop its reservation."""
        self._tallies.release(reservation)

    def settle(self, reservation: Reservation, cost: float | None, *,
               session_id: str | None = None) -> None:
        """The call cost ``cost`` USD (None: unpriced): count it, raise any alert it causes."""
        self._tallies.settle(reservation, cost)
        if not cost:
            return
        now = self._wall()
        alerts: list[Alert] = []
        context = _context(reservation.call)
        with self._tallies.lock:
            for hold in reservation.holds:
                limit = hold.limit
                spent = self._tallies.get(hold.key).spent
                crossed = [t for t in limit.alert_at if spent + _EPSILON >= t * limit.usd]
                if not crossed or crossed[-1] <= self._fired.level(hold.label, hold.window.key,
                                                                   limit.id):
                    continue
                top = crossed[-1]
                self._fired.raise_level(hold.label, hold.window.key, limit.id, top)
                alerts.append(Alert(
                    "threshold", hold.label, hold.window.key,
                    threshold_message(hold.label, limit.period, spent, limit.usd, top),
                    spent, limit.id, limit.usd, top, enforced=limit.enforce,
                    session_id=session_id, context=context, ts=now))
            scope = f"bot:{reservation.call.bot}"
            self.spikes.add(scope, reservation.ts, cost)
            spike = self.spikes.check(scope, now)
            if spike is not None and self._fired.first_time("spike", scope,
                                                            _hour_key(spike.hour)):
                alerts.append(Alert(
                    "spike", scope, _hour_key(spike.hour),
                    spike_message(scope, spike.last_hour_usd, spike.baseline_usd),
                    spike.last_hour_usd, baseline_usd=spike.baseline_usd,
                    session_id=session_id, context=context, ts=now))
        for alert in alerts:
            self._raise(alert)

    # ------------------------------------------------------------ the store

    def _load(self) -> None:
        """Seed tallies, raised alerts and the spike history from the store."""
        if self._store is None:
            return
        now = self._wall()
        windows = self.windows(now)
        self._tallies.apply_sync(self._read_spend(windows), {},
                                 [w.key for w in windows.values()])
        since = min((w.start for w in windows.values()), default=now) - 3600.0
        self._fired.load(self._store.alerts(since, limit=100_000))
        if not self._watch_spikes:
            return
        history_from = now - 26 * 3600.0
        first = self._store.first_call_ts()
        self.spikes.since = None if first is None else max(first, history_from)
        for bot, _user, _platform, ts, cost in self._store.calls(history_from, now + 1.0):
            if cost:
                self.spikes.add(f"bot:{bot}", ts, cost)

    def _read_spend(self, windows: dict[Period, Window]) -> dict[TallyKey, tuple[float, int]]:
        assert self._store is not None
        out: dict[TallyKey, tuple[float, int]] = {}
        for period, window in windows.items():
            limits = [limit for limit in self.limits if limit.period == period]
            for row in self._store.spend(window.start, window.end):
                call = CallScope(row.bot, row.user, row.platform)
                for label in {limit.label(call) for limit in limits} - {None}:
                    key = (str(label), window.key)
                    cost, unpriced = out.get(key, (0.0, 0))
                    out[key] = (cost + row.cost_usd, unpriced + row.unpriced_calls)
        return out

    def sync(self, flush_timeout: float = 5.0) -> bool:
        """Re-read the current periods' spend from the store (what other processes spent).

        Flushes the recorder first, so the calls settled here before the flush are in the
        store and leave the local part of the tallies. False when the flush timed out (the
        store is failing: nothing changes).
        """
        if self._store is None:
            return False
        snapshot = self._tallies.local_snapshot()
        if self._obs is not None and not self._obs.recorder.flush(flush_timeout):
            log.info("budget sync skipped reason=store_not_flushed")
            return False
        windows = self.windows()
        keys = [w.key for w in windows.values()]
        self._tallies.apply_sync(self._read_spend(windows), snapshot, keys)
        with self._tallies.lock:
            self._fired.keep_only([*keys, _hour_key(int(self._wall() // 3600))])
        return True

    def _raise(self, alert: Alert) -> None:
        """Record the alert in the session that raised it (O(1)); the notifier's thread
        stores it once-only and delivers it."""
        if self._obs is not None and alert.session_id:
            with guard("recording budget alert", logger=log):
                self._obs.recorder.emit("alert", alert.session_id, f"budget_{alert.kind}",
                                        alert.as_dict(), ts=alert.ts)
        self.notifier.submit(alert)

    # ------------------------------------------------------------ background work

    def start(self, adapters: Sequence[Adapter] = ()) -> None:
        """Start the alert thread and the periodic sync; with ``budgets.alert_channel``
        set, alerts are also posted through the matching adapter (call from the loop)."""
        self.notifier.start()
        if self.config.alert_channel:
            sink = channel_sink(self.config.alert_channel, adapters)
            if sink is not None:
                self.notifier.add_sink(sink)
        if self._store is not None and self.sync_interval > 0 and self._sync_thread is None:
            self._sync_thread = threading.Thread(target=self._sync_forever,
                                                 name="opencell-budget-sync", daemon=True)
            self._sync_thread.start()

    def _sync_forever(self) -> None:
        while not self._stop.wait(self.sync_interval):
            with guard("budget sync", logger=log):
                self.sync()

    def close(self, timeout: float = 5.0) -> bool:
        """Stop syncing; deliver pending alerts for up to ``timeout`` seconds."""
        self._stop.set()
        if self._sync_thread is not None:
            self._sync_thread.join(timeout)
            self._sync_thread = None
        return self.notifier.close(timeout)

    # ------------------------------------------------------------ reports

    def usage(self, now: float | None = None, *, per_limit: int = 50) -> list[dict[str, Any]]:
        """Spend against every limit in its current period: one row per scope instance
        (for "each user" limits the top ``per_limit`` spenders, or one ``user:*`` row)."""
        now = self._wall() if now is None else now
        windows = self.windows(now)
        tallies = self._tallies.items()
        rows: list[dict[str, Any]] = []
        for limit in self.limits:
            window = windows[limit.period]
            found: list[tuple[str, Tally | None]] = [
                (label, tally) for (label, key), tally in tallies
                if key == window.key and _belongs(limit, label)]
            found.sort(key=lambda item: -_committed(item[1]))
            if not found:
                found = [(_fixed_label(limit), None)]
            for label, tally in found[:per_limit]:
                rows.append(self._usage_row(limit, label, window, tally))
        return rows

    def _usage_row(self, limit: Limit, label: str, window: Window,
                   tally: Tally | None) -> dict[str, Any]:
        spent = tally.spent if tally is not None else 0.0
        reserved = tally.reserved if tally is not None else 0.0
        with self._tallies.lock:
            level = self._fired.level(label, window.key, limit.id)
        return {"limit": limit.id, "scope": label, "scope_kind": limit.scope,
                "match": limit.match, "period": limit.period,
                "period_start": window.first_day.isoformat(), "resets_at": _iso(window.end),
                "limit_usd": limit.usd, "spent_usd": round(spent, 6),
                "reserved_usd": round(reserved, 6),
                "remaining_usd": round(max(0.0, limit.usd - spent - reserved), 6),
                "percent": round(100.0 * spent / limit.usd, 1), "enforce": limit.enforce,
                "alert_at": list(limit.alert_at), "alerted_at": level or None,
                "unpriced_calls": tally.unpriced if tally is not None else 0}

    def alerts(self, days: float = 7.0, now: float | None = None) -> list[dict[str, Any]]:
        """Alerts raised in the last ``days`` (from the store), newest first, each with
        ``active``: whether its period is still running."""
        now = self._wall() if now is None else now
        current = {w.key for w in self.windows(now).values()} | {_hour_key(int(now // 3600))}
        if self._store is not None:
            found = [dict(a.data, period_key=a.window)
                     for a in self._store.alerts(now - days * 86400.0)]
        else:
            found = [dict(a.as_dict(), period_key=a.window) for a in reversed(self.notifier.recent)]
        for alert in found:
            alert["active"] = alert["period_key"] in current
        return found


def _committed(tally: Tally | None) -> float:
    return 0.0 if tally is None else tally.spent + tally.reserved


def _context(call: CallScope) -> dict[str, str]:
    return {"bot": call.bot, "user_id": call.user, "platform": call.platform}


def _hour_key(hour: int) -> str:
    return "hour:" + datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%dT%H")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _belongs(limit: Limit, label: str) -> bool:
    """Whether a tally's scope label is an instance of ``limit``'s scope."""
    if limit.scope == "bot_user":
        return label.startswith(f"bot:{limit.match}/user:")
    if limit.match is not None or limit.scope == "global":
        return label == _fixed_label(limit)
    if limit.scope == "bot":
        return label.startswith("bot:") and "/user:" not in label
    return label.startswith(f"{limit.scope}:")


def _fixed_label(limit: Limit) -> str:
    """The label of a limit with one instance; ``user:*`` style for "each one" limits."""
    if limit.scope == "global":
        return "global"
    if limit.scope == "bot_user":
        return f"bot:{limit.match}/user:*"
    return f"{limit.scope}:{limit.match or '*'}"
