"""Budgets: spending limits per bot, user and platform, alerts, and enforcement before each call.

``BudgetLedger.from_config(config, bots, observability)`` builds the one ledger of a process;
``BotRuntime(..., budgets=ledger)`` puts its model client behind ``BudgetedLLM``.
"""

from opencell.budgets.alerts import Alert
from opencell.budgets.enforcement import BudgetedLLM, estimate_input_tokens
from opencell.budgets.ledger import BudgetLedger
from opencell.budgets.limits import CallScope, Limit, build_limits
from opencell.budgets.notifiers import AlertNotifier, RetryPolicy

__all__ = [
    "Alert", "AlertNotifier", "BudgetLedger", "BudgetedLLM", "CallScope", "Limit",
    "RetryPolicy", "build_limits", "estimate_input_tokens",
]
