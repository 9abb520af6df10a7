"""CLI tables fit the terminal (real pseudo-terminals of 80 and 100 columns) without losing
the id, bot, status, scope or money; piped, they are tab-separated with every column."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests.cli.terminal import in_terminal
from tests.conftest import clean_env, opencell
from tests.dashboard.conftest import record_conversations


@pytest.fixture
def recorded(isolated_store: str) -> dict[str, str]:
    return asyncio.run(record_conversations(isolated_store))


def test_sessions_at_80_columns_show_id_bot_status_and_cost(
        recorded: dict[str, str], isolated_store: str) -> None:
    env = clean_env(OPENCELL_DATABASE_URL=isolated_store, NO_COLOR="1")
    code, screen = in_terminal("sessions", columns=80, env=env)
    assert code == 0, screen
    lines = screen.splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    header = next(line for line in lines if " id " in line)
    for name in ("id", "bot@platform", "status", "cost"):
        assert name in header, header
    agent = next(line for line in lines if recorded["agent"][-12:] in line)
    assert "helper@console" in agent and "success" in agent and "$0.0" in agent
    assert "hidden to fit 80 columns" in screen
    # Wide enough, nothing is hidden.
    code, wide = in_terminal("sessions", columns=160, env=env)
    assert code == 0 and "hidden" not in wide and " tool " in wide


def test_sessions_piped_are_tab_separated_with_full_ids(
        recorded: dict[str, str], isolated_store: str) -> None:
    result = opencell("sessions", env=clean_env(OPENCELL_DATABASE_URL=isolated_store))
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split("\t") == ["id", "bot@platform", "user", "status", "started", "took",
                                  "msg", "llm", "tool", "fail", "err", "cost"]
    assert len(rows) == 5 and all(len(row.split("\t")) == 12 for row in rows)
    assert recorded["agent"] in {row.split("\t")[0] for row in rows}


def test_budgets_at_100_columns_show_the_scope_and_never_drop_rows_silently(
        recorded: dict[str, str], isolated_store: str, tmp_path: Path) -> None:
    config = tmp_path / "opencell.yaml"
    config.write_text("budgets:\n  timezone: UTC\n  limits:\n"
                      "    - {scope: global, daily_usd: 5}\n"
                      "    - {scope: user, daily_usd: 0.001}\n")
    env = clean_env(OPENCELL_DATABASE_URL=isolated_store, NO_COLOR="1")
    code, screen = in_terminal("budgets", "--config", str(config), columns=100, env=env)
    assert code == 0, screen
    assert all(len(line) <= 100 for line in screen.splitlines()), screen
    header = next(line for line in screen.splitlines() if " scope " in line)
    for name in ("scope", "spent", "limit", "%"):
        assert name in header
    assert "user:alice" in screen and "global" in screen
    # --top 1: the other users are summed up in a note, not dropped without a word.
    code, short = in_terminal("budgets", "--config", str(config), "--top", "1", columns=100,
                              env=env)
    assert code == 0, short
    assert "more scope(s) under limit" in short and "--top N" in short
    document = json.loads(opencell("budgets", "--config", str(config), "--top", "1",
                                   "--json", env=env).stdout)
    (hidden,) = document["hidden"]
    assert hidden["scopes"] >= 1 and hidden["spent_usd"] > 0


def test_costs_by_user_lists_the_top_then_others_and_a_total(
        recorded: dict[str, str], isolated_store: str) -> None:
    env = clean_env(OPENCELL_DATABASE_URL=isolated_store)
    result = opencell("costs", "--by", "user", "--top", "1", env=env)
    assert result.returncode == 0, result.stderr
    header, first, others, total = result.stdout.splitlines()
    assert first.split("\t")[0] == "alice"  # the agent's four Claude calls cost the most
    assert others.startswith("others (")
    assert total.startswith("total\t")
    everything = json.loads(opencell("costs", "--by", "user", "--json", env=env).stdout)
    assert total.split("\t")[5] == f"${everything['total_usd']:,.4f}"
