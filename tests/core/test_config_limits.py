"""The config reader's limits: each bound holds at its edge, and plain YAML still works."""

from __future__ import annotations

from pathlib import Path

import pytest

from opencell.config import RateLimitConfig, load_config, parse_duration, parse_rate
from opencell.config import source as _yaml_source
from opencell.config.source import (
    MAX_DEPTH,
    MAX_EXPANDED_CHARS,
    MAX_FILE_BYTES,
    MAX_NODES,
    MAX_NUMBER_CHARS,
)
from opencell.errors import ConfigError
from opencell.llm.pricing import load_overrides
from opencell.loading import load_bot, validate_files
from opencell.middleware.rate_limit import RateLimitMiddleware

HEAD = "name: probe\nllm:\n  provider: offline\n"


def bot_file(tmp_path: Path, body: str, name: str = "bot.yaml") -> Path:
    path = tmp_path / name
    path.write_text(HEAD + body, encoding="utf-8", errors="surrogatepass")
    return path


def refusal(path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_bot(path, env={})
    return caught.value.located()


def nested(depth: int) -> str:
    """``tags:`` holding ``depth - 1`` nested lists around one string (tags itself is 1)."""
    return "tags: " + "[" * (depth - 2) + "[x]" + "]" * (depth - 2) + "\n"


def test_nesting_up_to_the_limit_is_read_and_one_more_level_is_refused(tmp_path: Path) -> None:
    # Document, tags and the lists: the deepest value sits MAX_DEPTH levels down.
    at_limit = bot_file(tmp_path, nested(MAX_DEPTH - 1), "ok.yaml")
    with pytest.raises(ConfigError) as caught:
        load_bot(at_limit, env={})
    assert "nested deeper" not in caught.value.located()  # read; tags just is not a list of str
    over = refusal(bot_file(tmp_path, nested(MAX_DEPTH), "over.yaml"))
    assert f"over.yaml:4: tags[0][0]: nested deeper than {MAX_DEPTH} levels" in over


def test_block_nesting_is_refused_like_flow_nesting(tmp_path: Path) -> None:
    body = "tags:\n" + "".join("  " * i + "-\n" for i in range(MAX_DEPTH + 5))
    assert f"nested deeper than {MAX_DEPTH} levels" in refusal(bot_file(tmp_path, body))


def test_aliases_that_expand_past_the_value_limit_are_refused(tmp_path: Path) -> None:
    # 1 list + 99 strings = 100 values per *a; the outer list holds n of them.
    anchor = "x-base: &a [" + ",".join(["s"] * 99) + "]\n"

    def with_aliases(n: int) -> str:
        return anchor + "x-use: [" + ",".join(["*a"] * n) + "]\n"

    fits = (MAX_NODES - 200) // 100  # leave room for the rest of the file
    ok = validate_files([bot_file(tmp_path, with_aliases(fits), "fits.yaml")], env={})[1]
    assert ok and all("aliases" not in e.message for e in ok)  # only x-base/x-use unknown
    over = refusal(bot_file(tmp_path, with_aliases(fits + 5), "over.yaml"))
    assert f"more than {MAX_NODES} values once aliases (*name) are expanded" in over


def test_one_long_string_aliased_many_times_is_refused_by_its_characters(tmp_path: Path) -> None:
    text = "a" * (MAX_EXPANDED_CHARS // 50)
    body = f'x-long: &t "{text}"\ntags: [' + ",".join(["*t"] * 60) + "]\n"
    assert f"more than {MAX_EXPANDED_CHARS} characters once aliases" in refusal(
        bot_file(tmp_path, body))


def test_an_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    body = "platforms: &p {console: {user: *p}}\n"
    assert "platforms.console.user: an alias refers to a value that contains it" in refusal(
        bot_file(tmp_path, body))


def test_merge_keys_and_modest_aliases_still_work(tmp_path: Path) -> None:
    body = ("x-defaults: &who {user: ops}\n"
            "platforms:\n  console:\n    <<: *who\n    prompt: '> '\n"
            "session: {idle_timeout: 5m}\ntags: &t [a, b]\n")
    path = bot_file(tmp_path, body)
    with pytest.raises(ConfigError, match="x-defaults: unknown field"):
        load_bot(path, env={})
    path.write_text(path.read_text().replace("x-defaults: &who {user: ops}\n", "")
                    .replace("<<: *who", "<<: {user: ops}"))
    bot = load_bot(path, env={})
    assert bot.platforms.console is not None and bot.platforms.console.user == "ops"
    assert bot.session.idle_timeout == 300.0 and bot.tags == ["a", "b"]


def test_a_file_over_the_size_limit_is_refused_before_parsing(tmp_path: Path) -> None:
    fits = bot_file(tmp_path, "system_prompt: " + "a" * (MAX_FILE_BYTES - 200) + "\n", "a.yaml")
    assert len(load_bot(fits, env={}).system_prompt) == MAX_FILE_BYTES - 200
    over = bot_file(tmp_path, "system_prompt: " + "a" * MAX_FILE_BYTES + "\n", "b.yaml")
    assert f"file is larger than {MAX_FILE_BYTES // 1024} KB" in refusal(over)


def test_number_length_limit(tmp_path: Path) -> None:
    digits = "5" + "_" * (MAX_NUMBER_CHARS - 3) + "12"  # YAML 1.1 allows 1_000
    ok = bot_file(tmp_path, f"  max_tokens: {digits}\n", "ok.yaml")
    assert load_bot(ok, env={}).llm.max_tokens == 512
    long = bot_file(tmp_path, f"  max_tokens: {'9' * 5000}\n", "long.yaml")
    assert "llm.max_tokens: a number with more than" in refusal(long)
    quoted = bot_file(tmp_path, f"description: '{'9' * 5000}'\n", "quoted.yaml")
    assert load_bot(quoted, env={}).description == "9" * 5000


@pytest.mark.parametrize("tag", ["!!timestamp 2001-12-14", "!!binary aGk=", "!!set {a}",
                                 "!!omap [a: 1]", "!!python/name:os.system", "!custom x"])
def test_tags_other_than_plain_data_are_located_errors(tmp_path: Path, tag: str) -> None:
    assert "description: the YAML tag" in refusal(bot_file(tmp_path, f"description: {tag}\n"))


@pytest.mark.parametrize("value", ["!!int abc", "!!int", "!!float x", "!!bool maybe"])
def test_an_explicit_scalar_tag_on_the_wrong_text_is_located(tmp_path: Path,
                                                               value: str) -> None:
    assert "llm.max_tokens: " in refusal(bot_file(tmp_path, f"  max_tokens: {value}\n"))


def test_dates_stay_text_and_explicit_plain_tags_work(tmp_path: Path) -> None:
    body = "description: 2001-12-14\n  \nsystem_prompt: !!str 42\ntags: [!!str 7]\n"
    bot = load_bot(bot_file(tmp_path, body.replace("\n  \n", "\n")), env={})
    assert (bot.description, bot.system_prompt, bot.tags) == ("2001-12-14", "42", ["7"])


@pytest.mark.parametrize("key", ["on", "1", "null", "[a]"])
def test_keys_must_be_names(tmp_path: Path, key: str) -> None:
    located = refusal(bot_file(tmp_path, f"platforms:\n  {key}: {{}}\n"))
    assert located.startswith(f"{tmp_path / 'bot.yaml'}:5: platforms: ")
    assert "key" in located


def test_lone_surrogates_are_refused_in_values_keys_and_environment(tmp_path: Path) -> None:
    assert "tags[0]: contains a lone surrogate" in refusal(
        bot_file(tmp_path, 'tags: ["a\\udc80"]\n', "value.yaml"))
    assert "a key contains a lone surrogate" in refusal(
        bot_file(tmp_path, 'platforms: {"\\ud800": {}}\n', "key.yaml"))
    env_bot = bot_file(tmp_path, "description: ${ODD}\n", "env.yaml")
    with pytest.raises(ConfigError, match="description: contains a lone surrogate"):
        load_bot(env_bot, env={"ODD": "x\udcff"})  # what os.environ holds for a bad byte


def test_a_control_character_is_a_located_error(tmp_path: Path) -> None:
    located = refusal(bot_file(tmp_path, "description: a\x07b\n"))
    assert located.startswith(f"{tmp_path / 'bot.yaml'}:4: ")


def test_an_aliased_string_is_expanded_and_scanned_once(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = _yaml_source.expand_env

    def counting(text: str, env: object, fail: object) -> str:
        calls.append(text)
        return real(text, env, fail)  # type: ignore[arg-type]

    monkeypatch.setattr(_yaml_source, "expand_env", counting)
    body = 'x-p: &p "${WHO} " \ntags: [' + ",".join(["*p"] * 500) + "]\n"
    with pytest.raises(ConfigError):  # x-p is not a bot field
        load_bot(bot_file(tmp_path, body), env={"WHO": "me"})
    assert calls.count("${WHO} ") == 1


@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf", "1e999"])
@pytest.mark.parametrize("body", ["  temperature: {}\n", "  timeout: {}\n",
                                  "budget: {{daily_usd: {}}}\n", "budget: {{alert_at: [{}]}}\n",
                                  "tools: [{{name: current_time, timeout: {}}}]\ntype: agent\n"])
def test_no_number_field_accepts_inf_or_nan(tmp_path: Path, body: str, text: str) -> None:
    located = refusal(bot_file(tmp_path, body.format(text)))
    assert "finite" in located or "not a duration" in located or "less than" in located


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "nan", "inf", "1e400s", "-1s",
                                 "0s", 0])
def test_durations_are_finite_and_positive(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_config_durations_are_at_most_a_year_but_parse_duration_itself_is_not(
        tmp_path: Path) -> None:
    assert parse_duration("400d") == 400 * 86400  # `opencell sessions --since 400d`
    assert "llm.timeout: '400d' is longer than a year" in refusal(
        bot_file(tmp_path, "  timeout: 400d\n"))
    assert load_bot(bot_file(tmp_path, "  timeout: 366d\n", "ok.yaml"), env={}).llm.timeout \
        == 366 * 86400


@pytest.mark.parametrize("bad", ["5/0s", "5/0min", "0/min", "1000001/s", "1/367d",
                                 "9" * 5000 + "/s", "1/" + "9" * 5000 + "s"])
def test_rates_have_a_positive_bounded_count_and_period(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a rate"):
        parse_rate(bad)


def test_the_largest_rate_still_builds_a_working_middleware() -> None:
    assert parse_rate("1000000/366d") == (1_000_000, 366 * 86400.0)
    limiter = RateLimitMiddleware(RateLimitConfig(per_user="1/1s"), clock=lambda: 0.0)
    assert limiter.allow("u") and not limiter.allow("u")


def test_pricing_and_global_config_share_the_limits(tmp_path: Path) -> None:
    bomb = "x: &a [" + ",".join(["s"] * 99) + "]\ny: [" + ",".join(["*a"] * 200) + "]\n"
    pricing = tmp_path / "pricing.yaml"
    pricing.write_text(bomb + "prices: []\n")
    with pytest.raises(ConfigError, match="once aliases"):
        load_overrides(pricing, env={})
    config = tmp_path / "opencell.yaml"
    config.write_text(bomb)
    with pytest.raises(ConfigError, match="once aliases"):
        load_config(config, env={})
    prices = tmp_path / "p2" / "pricing.yaml"
    prices.parent.mkdir()
    prices.write_text("prices:\n  - {provider: claude, model: m, input: .nan, output: 1}\n")
    with pytest.raises(ConfigError, match=r"prices\[0\]\.input: Input should be a finite"):
        load_overrides(prices, env={})
