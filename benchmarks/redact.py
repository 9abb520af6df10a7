"""Benchmark: µs per Redactor.redact() on a 200-character chat message, with and without secrets.

Also times one combined alternation of the same shapes (search only) to show why the redactor
runs one literal-prefixed pattern per shape instead. Run: python benchmarks/redact.py
"""

from __future__ import annotations

import re
import sys
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opencell.config import RedactRule  # noqa: E402
from opencell.observability import redact  # noqa: E402

TARGET_US = 10.0
MESSAGE = (
    "Hi! Could you help me reset my account? I tried logging in from the mobile app this "
    "morning but it keeps saying my session expired. My order number is 48213, Pro plan. Thx!"
)
ENV = {  # what Redactor.from_env typically collects: nine configured secrets
    "ANTHROPIC_API_KEY": "sk-ant-" + "api03-" + "x" * 90,
    "OPENAI_API_KEY": "sk-" + "proj-" + "y" * 150,
    "MOONSHOT_API_KEY": "sk-" + "m" * 48,
    "DISCORD_TOKEN": "MTA5ODc2NTQzMjEwOTg3NjU0Mw" + ".GaBcDe." + "d" * 38,
    "SLACK_BOT_TOKEN": "xoxb-" + "1-2-" + "z" * 24,
    "SLACK_APP_TOKEN": "xapp-" + "1-A1-" + "q" * 30,
    "SLACK_SIGNING_SECRET": "0123456789abcdef" * 2,
    "AGENTOPS_API_KEY": "agentops-" + "k" * 30,
    "OPENCELL_DASHBOARD_TOKEN": "dashboard-token-123456",
}


def per_call_us(func: Callable[[], object], number: int = 20_000) -> float:
    """Best of 5 runs, in µs per call."""
    return min(timeit.repeat(func, number=number, repeat=5)) / number * 1e6


def main() -> None:
    bare = redact.Redactor()
    configured = redact.Redactor.from_env(ENV, rules=[RedactRule(pattern=r"ghp_[A-Za-z0-9]{36}")])
    with_secret = MESSAGE[:110] + " my key is " + ENV["ANTHROPIC_API_KEY"][:60]
    with_token = MESSAGE[:120] + " token=" + "sk-ant-" + "Q" * 60
    cases = [
        ("200 chars, no secret, no configured secrets", bare, MESSAGE),
        ("200 chars, no secret, 9 secrets + 1 rule", configured, MESSAGE),
        ("200 chars, one configured secret", configured, with_secret),
        ("200 chars, one token shape in key=value", configured, with_token),
        ("4,000-char tool result, no secret", configured, (MESSAGE + " ") * 20),
        ("short text (< 8 chars)", configured, "thanks!"),
    ]
    print(f"{'case':46} {'µs/redact':>10}")
    for name, redactor, text in cases:
        print(f"{name:46} {per_call_us(partial(redactor.redact, text)):10.2f}")
    combined = re.compile("|".join(f"(?:{shape.pattern.pattern})" for shape in redact._SHAPES))
    print(f"{'(one combined alternation, search only)':46} "
          f"{per_call_us(partial(combined.search, MESSAGE)):10.2f}")
    typical = per_call_us(partial(configured.redact, MESSAGE))
    print("ok" if typical < TARGET_US else f"over the {TARGET_US} µs target")


if __name__ == "__main__":
    main()
