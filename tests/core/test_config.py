"""Bot and global config: located errors for a corpus of broken files, env expansion, durations."""

from __future__ import annotations

from pathlib import Path

import pytest

from opencell.config import BotConfig, OpenCellConfig, load_config, parse_duration
from opencell.errors import ConfigError, ConfigErrors
from opencell.loading import load_bot, load_bots, validate_file

BROKEN = Path(__file__).parent.parent / "data" / "broken"
BOTS = Path(__file__).parent.parent.parent / "bots"

# file → (line, text the one-line error must contain)
CORPUS = {
    "bad_indent.yaml": (5, "YAML syntax error"),
    "tabs.yaml": (3, "tab character"),
    "unknown_field.yaml": (4, "llm.modle: unknown field 'modle' (did you mean 'model'?)"),
    "wrong_enum.yaml": (3, "llm.provider: Input should be 'claude'"),
    "missing_required.yaml": (1, "llm: required field is missing"),
    "bad_duration.yaml": (4, "session.idle_timeout: 'soon' is not a duration"),
    "undefined_var.yaml": (4, "llm.api_key: environment variable OPENCELL_TEST_SURELY_UNDEFINED"),
    "not_yaml.txt": (1, "expected a mapping of bot fields"),
    "empty.yaml": (1, "file is empty"),
    "max_tokens_lots.yaml": (6, "llm.max_tokens: Input should be a valid integer"),
    "wrong_type.yaml": (3, "tags: Input should be a valid list"),
    "tools_on_conversational.yaml": (4, "tools: tools are only used by agent bots"),
    "duplicate_key.yaml": (3, "duplicate key 'name' (first defined on line 1)"),
    "unknown_tool.yaml": (5, "tools[0].name"),
    "bad_rate.yaml": (4, "middleware[0].rate_limit.per_user: 'fast' is not a rate"),
    "config_unknown_key.yaml": (
        2, "dashbord: unknown field 'dashbord' (did you mean 'dashboard'?)"),
    "config_bad_port.yaml": (3, "dashboard.port: Input should be less than or equal to 65535"),
    "config_bad_regex.yaml": (3, "observability.redact[0].pattern: not a valid regular expression"),
    "top_level_list.yaml": (1, "found a list"),
    "http_get_no_hosts.yaml": (5, "tools[0]"),
    "slack_no_mode.yaml": (4, "platforms.slack: set app_token (Socket Mode) or signing_secret"),
    "unclosed_quote.yaml": (1, "YAML syntax error"),
    "bad_name.yaml": (1, "name: 'bad name!' is not a bot name"),
    "bad_middleware_path.yaml": (4, "'not a path' is not an import path"),
    # Found by fuzzing (issue 11): each crashed, hung or was accepted before.
    "unknown_capitalised_key.yaml": (4, "Tags: unknown field 'Tags' (did you mean 'tags'?)"),
    "nested_capitalised_key.yaml": (
        4, "llm.Provider: unknown field 'Provider' (did you mean 'provider'?)"),
    "billion_laughs.yaml": (5, "e[1]: more than 10000 values once aliases (*name) are expanded"),
    "config_alias_bomb.yaml": (4, "more than 10000 values once aliases"),
    "deep_nesting.yaml": (4, "tags: nested deeper than 50 levels"),
    "alias_cycle.yaml": (4, "tags[1]: an alias refers to a value that contains it"),
    "huge_integer.yaml": (4, "llm.max_tokens: a number with more than 100 characters"),
    "lone_surrogate.yaml": (4, "description: contains a lone surrogate"),
    "timestamp_tag.yaml": (4, "description: the YAML tag !!timestamp is not supported"),
    "boolean_key.yaml": (5, "platforms: the key 'on' is read as a boolean, not a name"),
    "zero_period_rate.yaml": (5, "middleware[0].rate_limit.per_user: '5/0s' is not a rate"),
    "nan_timeout.yaml": (4, "llm.timeout: 'nan' is not a duration"),
    "infinite_budget.yaml": (4, "budget.daily_usd: Input should be a finite number"),
}


def test_corpus_covers_every_broken_file() -> None:
    on_disk = {p.name for p in BROKEN.iterdir()} - {"dup_a.yaml", "dup_b.yaml"}
    assert on_disk == set(CORPUS)
    assert len(CORPUS) >= 15


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_broken_file_gives_one_located_line(name: str) -> None:
    line, fragment = CORPUS[name]
    path = BROKEN / name
    with pytest.raises(ConfigError) as caught:
        validate_file(path, env={})
    text = caught.value.located()
    first = text.splitlines()[0]
    assert first.startswith(f"{path}:{line}: "), text
    assert fragment in text, text


def test_duplicate_bot_names_across_files_are_located_in_the_second_file() -> None:
    with pytest.raises(ConfigErrors) as caught:
        load_bots([BROKEN / "dup_a.yaml", BROKEN / "dup_b.yaml"], env={})
    (error,) = caught.value.errors
    assert error.file == str(BROKEN / "dup_b.yaml")
    assert error.line == 2
    assert "'twin' is already used by" in error.message and "dup_a.yaml" in error.message


def test_several_errors_in_one_file_are_all_reported(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text("name: x\nllm:\n  provider: claude\n  max_tokens: lots\ntemperture: 1\n")
    with pytest.raises(ConfigErrors) as caught:
        load_bot(path, env={})
    lines = caught.value.located().splitlines()
    assert [ln.split(":")[1] for ln in lines] == ["4", "5"]


def test_shipped_bots_and_config_are_valid() -> None:
    env = {"ANTHROPIC_API_KEY": "", "MOONSHOT_API_KEY": ""}
    for path in sorted(BOTS.glob("*.yaml")):
        assert isinstance(validate_file(path, env=env), BotConfig), path
    config = validate_file(BOTS.parent / "config" / "opencell.yaml", env=env)
    assert isinstance(config, OpenCellConfig)


def test_env_is_expanded_after_parsing_so_values_cannot_inject_yaml(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text('name: inject\nllm:\n  provider: offline\nsystem_prompt: "${PROMPT}"\n'
                    'tags: ["${TAG:-fallback}", "$${LITERAL}"]\n')
    hostile = "hi\ntype: agent\ntools: [http_get]"
    bot = load_bot(path, env={"PROMPT": hostile})
    assert bot.system_prompt == hostile
    assert bot.type == "conversational"
    assert bot.tags == ["fallback", "${LITERAL}"]


def test_env_values_are_coerced_by_the_model(tmp_path: Path) -> None:
    path = tmp_path / "opencell.yaml"
    path.write_text('observability:\n  agentops: {enabled: "${AO:-false}", tags: "${T:-a, b}"}\n')
    assert load_config(path, env={"AO": "true"}).observability.agentops.enabled is True
    config = load_config(path, env={})
    assert config.observability.agentops.enabled is False
    assert config.observability.agentops.tags == ["a", "b"]


def test_database_url_from_env_wins(tmp_path: Path) -> None:
    path = tmp_path / "opencell.yaml"
    path.write_text("store: {url: 'sqlite:///a.db'}\n")
    assert load_config(path, env={}).store.url == "sqlite:///a.db"
    env = {"OPENCELL_DATABASE_URL": "sqlite:///b.db"}
    assert load_config(path, env=env).store.url == "sqlite:///b.db"


def test_missing_default_config_means_defaults(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}) == OpenCellConfig()
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml", env={})


@pytest.mark.parametrize(("text", "seconds"), [
    ("90s", 90), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("500ms", 0.5), (45, 45),
    ("2.5", 2.5), ("1d", 86400),
])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["soon", "10 minutes", "", "-5s", 0, True, "m10"])
def test_bad_durations(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_defaults_fill_in_a_minimal_bot(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text("name: tiny\nllm: {provider: claude}\n")
    bot = load_bot(path, env={})
    assert bot.llm.model == "claude-sonnet-4-20250514"
    assert bot.session.idle_timeout == 600
    assert bot.session.history_turns == 20
    assert bot.platforms.named() == ["console"]
    assert bot.source == path


def test_errors_never_echo_a_secret_value(tmp_path: Path) -> None:
    path = tmp_path / "bot.yaml"
    path.write_text("name: s\nllm: {provider: claude, api_key: 987654321, max_retries: 99}\n")
    with pytest.raises(ConfigErrors) as caught:
        load_bot(path, env={})
    text = caught.value.located()
    assert "llm.api_key" in text and "987654321" not in text
    assert "(got 99)" in text  # ordinary values are still shown
