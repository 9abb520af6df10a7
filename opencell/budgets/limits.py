"""Budget limits: one USD amount per scope and period, from ``budgets:`` and bots' ``budget:``.

A configured limit with several amounts (``daily_usd`` and ``monthly_usd``) becomes one
:class:`Limit` per period. A limit applies to a model call through its *scope*; the scope
instance it lands on is a label used in tallies and alerts:

===========  ===============================  =========================================
scope        label                            from
===========  ===============================  =========================================
global       ``global``                       ``budgets.limits[] {scope: global}``
bot          ``bot:support``                  ``{scope: bot}`` or a bot's ``budget:``
user         ``user:alice``                   ``{scope: user}`` (each user separately)
platform     ``platform:slack``               ``{scope: platform}``
bot_user     ``bot:support/user:alice``       a bot's ``budget: {scope: user}``
===========  ===============================  =========================================

``match`` narrows a global-config limit to one bot, user or platform; without it the limit
applies to each one separately.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from opencell.budgets.periods import PERIODS, Period
from opencell.config import BotConfig, BudgetsConfig

ScopeKind = Literal["global", "bot", "user", "platform", "bot_user"]


@dataclass(frozen=True, slots=True)
class CallScope:
    """Who a model call is for: what limits apply to it."""

    bot: str
    user: str
    platform: str


@dataclass(frozen=True, slots=True)
class Limit:
    """One amount for one scope and one period."""

    scope: ScopeKind
    match: str | None
    """The one bot / user / platform it is for (bot_user: the bot); None = each one."""
    period: Period
    usd: float
    alert_at: tuple[float, ...]
    enforce: bool

    @property
    def id(self) -> str:
        """Stable text naming the limit, e.g. ``user:*/day/1``."""
        return f"{self.scope}:{self.match or '*'}/{self.period}/{self.usd:g}"

    def label(self, call: CallScope) -> str | None:
        """The scope instance this call lands on, or None when the limit does not apply."""
        scope, match = self.scope, self.match
        if scope == "global":
            return "global"
        if scope == "bot":
            return None if match is not None and call.bot != match else f"bot:{call.bot}"
        if scope == "user":
            return None if match is not None and call.user != match else f"user:{call.user}"
        if scope == "platform":
            if match is not None and call.platform != match:
                return None
            return f"platform:{call.platform}"
        return None if call.bot != match else f"bot:{call.bot}/user:{call.user}"


def describe(label: str) -> str:
    """A scope label in words: ``user alice on bot support``, ``all bots``."""
    if label == "global":
        return "all bots"
    if label.startswith("bot:") and "/user:" in label:
        bot, user = label[4:].split("/user:", 1)
        return f"user {user} on bot {bot}"
    kind, _, name = label.partition(":")
    return f"{kind} {name}"


def build_limits(budgets: BudgetsConfig, bots: Iterable[BotConfig] = ()) -> list[Limit]:
    """Every limit of the global config and of each bot's ``budget:``, one per period."""
    limits: list[Limit] = []
    for entry in budgets.limits:
        for period, usd in _amounts(entry.daily_usd, entry.weekly_usd, entry.monthly_usd):
            limits.append(Limit(entry.scope, entry.match, period, usd,
                                _thresholds(entry.alert_at), entry.enforce))
    for bot in bots:
        budget = bot.budget
        if budget is None:
            continue
        scope: ScopeKind = "bot" if budget.scope == "bot" else "bot_user"
        for period, usd in _amounts(budget.daily_usd, budget.weekly_usd, budget.monthly_usd):
            limits.append(Limit(scope, bot.name, period, usd, _thresholds(budget.alert_at),
                                budget.enforce))
    return limits


def _amounts(daily: float | None, weekly: float | None,
             monthly: float | None) -> list[tuple[Period, float]]:
    return [(period, usd) for period, usd in zip(PERIODS, (daily, weekly, monthly), strict=True)
            if usd is not None]


def _thresholds(values: Iterable[float]) -> tuple[float, ...]:
    """Sorted, positive, without repeats; an empty list means no threshold alerts."""
    return tuple(sorted({float(v) for v in values if v > 0}))
