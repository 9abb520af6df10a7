"""Benchmark: Redactor.redact() on chat messages, and on 160 KB of hostile text vs prose.

Run: python -m benchmarks.redact [--quick]

Redaction runs on the event loop, so one slow message stalls every bot: 160 KB of
``eyJeyJ…`` (under Slack's limit) took 10.8 s while the JWT pattern backtracked. Baseline in the
same run: 160 KB of plain prose; the hostile text may cost at most 10x that. The chat-message
figure also times one combined alternation of the same shapes (search only), which is why the
redactor runs one literal-prefixed pattern per shape instead.
"""

from __future__ import annotations

import re
import sys
import timeit
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import Figure, run_main  # noqa: E402
from opencell.config import RedactRule  # noqa: E402
from opencell.observability import redact  # noqa: E402

TARGET_US = 10.0
TARGET_RATIO = 10.0
BIG = 160 * 1024
MESSAGE = (
    "Hi! Could you help me reset my account? I tried logging in from the mobile app this "
    "morning but it keeps saying my session expired. My order number is 48213, Pro plan. Thx!"
)
PROSE = MESSAGE.replace("number is", "number:").replace(
    "session expired", "session token expired")
"""The 160 KB baseline: plain chat text that the shortcuts cannot skip. Its colon and its
credential word (``token``) send it through the credential pattern, which most hostile texts
attack. Text without them skips that pattern (``_maybe_secret`` and each shape's needles),
which would make the hostile/prose ratios measure the shortcuts instead of the patterns'
cost."""
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
HOSTILE = {  # units repeated to 160 KB, each aimed at one pattern's worst case
    "eyJeyJ… (issue 11)": "eyJ",
    "JWT header runs": "eyJhbGciOiJIUzI1NiJ9.",
    "Discord-like run": "M",
    "bearer + blanks": "bearer ",
    "URL userinfo": "://user:",
    "credential name + blanks": "api_key  ",
    "credential quotes": 'api_key="',
    "PEM header, no end": "-----BEGIN RSA PRIVATE KEY-----",
    "PEM end lines": "-----END RSA ",
    "AWS secret names": "aws_secret_access_key=",
}


def per_call_us(func: Callable[[], object], number: int = 20_000, repeat: int = 5) -> float:
    """Best of ``repeat`` runs, in µs per call."""
    return min(timeit.repeat(func, number=number, repeat=repeat)) / number * 1e6


def _big(unit: str) -> str:
    return (unit * (BIG // len(unit) + 1))[:BIG]


def run(quick: bool) -> list[Figure]:
    number = 2_000 if quick else 20_000
    bare = redact.Redactor()
    configured = redact.Redactor.from_env(ENV, rules=[RedactRule(pattern=r"ghp_[A-Za-z0-9]{36}")])
    typical = per_call_us(partial(configured.redact, MESSAGE), number)
    no_secrets = per_call_us(partial(bare.redact, MESSAGE), number)
    combined = re.compile("|".join(f"(?:{shape.pattern.pattern})" for shape in redact._SHAPES))
    alternation = per_call_us(partial(combined.search, MESSAGE), number)

    big_runs = 3 if quick else 7
    prose_ms = per_call_us(partial(configured.redact, _big(PROSE + " ")), 1, big_runs) / 1000
    hostile_ms = {name: per_call_us(partial(configured.redact, _big(unit)), 1, big_runs) / 1000
                  for name, unit in HOSTILE.items()}
    issue = hostile_ms["eyJeyJ… (issue 11)"] / prose_ms
    worst_name = max(hostile_ms, key=hostile_ms.__getitem__)
    worst = hostile_ms[worst_name] / prose_ms
    return [
        Figure("redact", "200-char chat message, 9 secrets + 1 rule", typical, "µs",
               f"<= {TARGET_US:g}", typical <= TARGET_US,
               f"no configured secrets {no_secrets:.2f} µs",
               f"one combined alternation (search only) {alternation:.2f} µs"),
        Figure("redact", "160 KB of eyJeyJ… / 160 KB of prose", issue, "×",
               f"<= {TARGET_RATIO:g}", issue <= TARGET_RATIO, f"prose {prose_ms:.2f} ms",
               f"hostile {hostile_ms['eyJeyJ… (issue 11)']:.2f} ms (was 10.8 s)"),
        Figure("redact", f"worst of {len(HOSTILE)} hostile 160 KB texts / prose", worst, "×",
               f"<= {TARGET_RATIO:g}", worst <= TARGET_RATIO, f"prose {prose_ms:.2f} ms",
               f"{worst_name}: {hostile_ms[worst_name]:.2f} ms"),
    ]


def main(argv: Sequence[str] | None = None) -> list[Figure]:
    return run_main(argv, __doc__ or "", run, "redaction")


if __name__ == "__main__":
    main()
