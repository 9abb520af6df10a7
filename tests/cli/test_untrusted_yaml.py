"""The real `opencell` command on YAML that crashed, hung or was wrongly accepted (issue 11):
exit 2 with `file:line: field: message` lines, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO, opencell

BROKEN = Path("tests/data/broken")
REPRODUCTIONS = {
    "unknown_capitalised_key.yaml": "Tags: unknown field 'Tags'",
    "nested_capitalised_key.yaml": "llm.Provider: unknown field 'Provider'",
    "billion_laughs.yaml": "e[1]: more than 10000 values once aliases",
    "deep_nesting.yaml": "tags: nested deeper than 50 levels",
    "alias_cycle.yaml": "tags[1]: an alias refers to a value that contains it",
    "huge_integer.yaml": "llm.max_tokens: a number with more than 100 characters",
    "lone_surrogate.yaml": "description: contains a lone surrogate",
    "timestamp_tag.yaml": "description: the YAML tag !!timestamp is not supported",
    "zero_period_rate.yaml": "middleware[0].rate_limit.per_user: '5/0s' is not a rate",
    "nan_timeout.yaml": "llm.timeout: 'nan' is not a duration",
    "infinite_budget.yaml": "budget.daily_usd: Input should be a finite number",
    "config_alias_bomb.yaml": "more than 10000 values once aliases",
}
LOCATED = re.compile(r"[^:\n]+:\d+: [\w.\[\]]+: \S.*")


def assert_exit_2_located(result: object, path: Path, fragment: str) -> None:
    returncode, stdout, stderr = (getattr(result, k) for k in ("returncode", "stdout", "stderr"))
    assert "Traceback" not in stdout + stderr, stderr
    assert returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert lines and all(LOCATED.fullmatch(line) for line in lines), stderr
    assert any(line.startswith(f"{path}:") and fragment in line for line in lines), stderr


@pytest.mark.parametrize("name", sorted(REPRODUCTIONS))
def test_validate_exits_2_with_located_lines(name: str) -> None:
    path = BROKEN / name
    assert_exit_2_located(opencell("validate", str(path)), path, REPRODUCTIONS[name])


@pytest.mark.parametrize("name", ["zero_period_rate.yaml", "nan_timeout.yaml",
                                  "billion_laughs.yaml", "lone_surrogate.yaml"])
def test_chat_refuses_at_start_up_instead_of_crashing_later(name: str) -> None:
    path = BROKEN / name
    result = opencell("chat", str(path), stdin="hello\n")
    assert_exit_2_located(result, path, REPRODUCTIONS[name])
    assert result.stdout == ""  # no turn ran


def test_run_and_chat_refuse_a_global_config_bomb(tmp_path: Path) -> None:
    config = BROKEN / "config_alias_bomb.yaml"
    fragment = REPRODUCTIONS["config_alias_bomb.yaml"]
    chat = opencell("chat", "bots/demo.yaml", "--config", str(config), stdin="hello\n")
    assert_exit_2_located(chat, config, fragment)
    run = opencell("run", "bots/demo.yaml", "--config", str(config))
    assert_exit_2_located(run, config, fragment)


def test_validate_refuses_a_pricing_bomb_and_still_passes_the_shipped_pricing(
        tmp_path: Path) -> None:
    pricing = tmp_path / "pricing.yaml"  # validate routes pricing files by this name
    pricing.write_text((REPO / BROKEN / "billion_laughs.yaml").read_text()
                       .replace("name: probe\nllm:\n  provider: offline\n", "prices: []\n"))
    assert_exit_2_located(opencell("validate", str(pricing)), pricing, "once aliases")
    shipped = opencell("validate", "config/pricing.yaml", "bots/demo.yaml")
    assert shipped.returncode == 0, shipped.stderr
