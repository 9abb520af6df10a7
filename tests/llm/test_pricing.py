"""Tests for opencell.llm.pricing: genai-prices lookups, exact-enough matching, overrides."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
from genai_prices import data_snapshot
from genai_prices import types as gp

from opencell.errors import ConfigError
from opencell.llm._model_match import matches_exactly, model_name_part
from opencell.llm._price_entries import _make_cost
from opencell.llm.base import Usage
from opencell.llm.pricing import Cost, PriceBook, Rates, load_overrides

SONNET_4 = "claude-sonnet-4-20250514"


def reference_total(provider_id: str, model: str, usage: Usage, **kwargs: Any) -> float:
    """What genai-prices itself charges (its input_tokens include cached tokens)."""
    calc = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_tokens,
            cache_write_tokens=usage.cache_write_tokens,
        ),
        model, provider_id=provider_id, **kwargs)
    return float(calc.total_price)


def data_rate(provider_id: str, model: str, key: str) -> float:
    """A per-million rate straight from genai-prices' bundled data."""
    calc = genai_prices.calc_price(genai_prices.Usage(), model, provider_id=provider_id)
    value = getattr(calc.model_price, key)
    assert isinstance(value, Decimal), f"{model} {key} is {value!r}"
    return float(value)


@pytest.fixture
def book() -> PriceBook:
    return PriceBook()


# ---------------------------------------------------------------- genai-prices


def test_acceptance_sonnet_4_1500_in_800_out(book: PriceBook) -> None:
    cost = book.price("claude", SONNET_4, Usage(input_tokens=1_500, output_tokens=800))
    assert cost is not None
    assert cost.total_usd == pytest.approx(0.0165, abs=1e-9)
    assert cost.input_usd == pytest.approx(0.0045, abs=1e-12)
    assert cost.output_usd == pytest.approx(0.012, abs=1e-12)
    assert cost.source == "genai-prices"
    assert (cost.per_million.input, cost.per_million.output) == (3.0, 15.0)
    assert cost.priced_as == "anthropic:claude-sonnet-4-0"


def test_sonnet_4_cache_rates_come_from_genai_prices(book: PriceBook) -> None:
    read = data_rate("anthropic", SONNET_4, "cache_read_mtok")
    write = data_rate("anthropic", SONNET_4, "cache_write_mtok")
    assert (read, write) == (0.3, 3.75)  # what the data says today; the prices below use it
    usage = Usage(input_tokens=1_000, output_tokens=200, cache_read_tokens=10_000,
                  cache_write_tokens=2_000)
    cost = book.price("claude", SONNET_4, usage)
    assert cost is not None
    assert cost.cache_read_usd == pytest.approx(10_000 * read / 1e6, abs=1e-12)
    assert cost.cache_write_usd == pytest.approx(2_000 * write / 1e6, abs=1e-12)
    assert cost.input_usd == pytest.approx(1_000 * 3.0 / 1e6, abs=1e-12)  # uncached only
    assert cost.total_usd == pytest.approx(
        cost.input_usd + cost.output_usd + cost.cache_read_usd + cost.cache_write_usd)
    # Cached tokens are added to genai-prices' input before comparing: same total.
    assert cost.total_usd == pytest.approx(reference_total("anthropic", SONNET_4, usage),
                                           abs=1e-12)


@pytest.mark.parametrize(("provider", "provider_id", "model"), [
    ("claude", "anthropic", SONNET_4),
    ("claude", "anthropic", "claude-3-5-haiku-latest"),
    ("claude", "anthropic", "claude-opus-4-1-20250805"),
    ("openai", "openai", "gpt-4o"),
    ("openai", "openai", "gpt-4o-mini"),
    ("moonshot", "moonshotai", "kimi-k2-0905-preview"),
])
@pytest.mark.parametrize("usage", [
    Usage(1_500, 800),
    Usage(1_000, 300, cache_read_tokens=50_000, cache_write_tokens=4_000),
    Usage(0, 0),
])
def test_cached_rates_give_genai_prices_totals(book: PriceBook, provider: str,
                                               provider_id: str, model: str,
                                               usage: Usage) -> None:
    for _ in range(2):  # first lookup and cached lookup agree
        cost = book.price(provider, model, usage)
        assert cost is not None
        assert cost.total_usd == pytest.approx(reference_total(provider_id, model, usage),
                                               rel=1e-12, abs=1e-15)


def test_openai_gpt_4o_is_priced(book: PriceBook) -> None:
    cost = book.price("openai", "gpt-4o", Usage(1_000_000, 1_000_000))
    assert cost is not None
    assert cost.per_million.input == data_rate("openai", "gpt-4o", "input_mtok")
    assert cost.total_usd == pytest.approx(
        data_rate("openai", "gpt-4o", "input_mtok") + data_rate("openai", "gpt-4o", "output_mtok"))
    assert cost.total_usd > 0


def test_moonshot_kimi_is_priced_and_cache_writes_fall_back_to_input(book: PriceBook) -> None:
    model = "kimi-k2-0905-preview"  # the default moonshot model in config.DEFAULT_MODELS
    cost = book.price("moonshot", model, Usage(1_000_000, 0, 1_000_000, 1_000_000))
    assert cost is not None
    assert cost.priced_as == "moonshotai:kimi-k2-0905-preview"
    assert cost.per_million.cache_read == data_rate("moonshotai", model, "cache_read_mtok")
    # genai-prices has no cache-write rate for it, and bills those tokens as input.
    assert cost.per_million.cache_write == data_rate("moonshotai", model, "input_mtok")


def test_tiered_prices_apply_the_tier_of_the_whole_input(book: PriceBook) -> None:
    model = "claude-sonnet-4-5-20250929"
    info = genai_prices.calc_price(genai_prices.Usage(), model, provider_id="anthropic")
    tiered = info.model_price.input_mtok
    assert isinstance(tiered, gp.TieredPrices), "the data no longer tiers this model"
    threshold = tiered.tiers[0].start
    small = Usage(1_000, 500)
    # Cached tokens count towards the threshold, as in genai-prices.
    large = Usage(10_000, 500, cache_read_tokens=threshold)
    for usage, rate in ((small, tiered.base), (large, tiered.tiers[0].price)):
        cost = book.price("claude", model, usage)
        assert cost is not None
        assert cost.per_million.input == float(rate)
        assert cost.total_usd == pytest.approx(reference_total("anthropic", model, usage),
                                               rel=1e-12)


def test_fast_cost_constructor_fills_every_field_in_order() -> None:
    rates = Rates(1.0, 2.0, 3.0, 4.0)
    made = _make_cost(0.1, 0.2, 0.3, 0.4, "override", rates, "override:x")
    assert made == Cost(0.1, 0.2, 0.3, 0.4, 0.1 + 0.2 + 0.3 + 0.4, "override", rates,
                        "override:x")
    with pytest.raises(AttributeError):
        made.total_usd = 0.0  # type: ignore[misc]  # still frozen


def test_offline_provider_is_free(book: PriceBook) -> None:
    cost = book.price("offline", "offline-demo", Usage(10_000, 10_000))
    assert cost is not None
    assert cost.total_usd == 0.0
    assert cost.source == "free"


# ---------------------------------------------------------------- unpriced, never a neighbour


def test_unknown_model_is_unpriced_with_exactly_one_warning(
        book: PriceBook, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="opencell.llm.pricing")
    for _ in range(3):
        assert book.price("claude", "claude-imaginary-9", Usage(1_500, 800)) is None
    warnings = [r for r in caplog.records if "claude-imaginary-9" in r.getMessage()]
    assert len(warnings) == 1
    assert "provider=claude model=claude-imaginary-9 reason=unknown_model" in (
        warnings[0].getMessage())


@pytest.mark.parametrize(("model", "neighbour"), [
    ("claude-opus-4-10", "claude-opus-4-1"),
    ("claude-sonnet-4-50", "claude-sonnet-4-5"),
    ("claude-sonnet-4-5-turbo", "claude-sonnet-4-5"),
    ("claude-3-5-sonnet-mini", "claude-3-5-sonnet"),
    ("claude-2.1", "claude-2"),
])
def test_loose_genai_prices_match_is_not_used(book: PriceBook, model: str, neighbour: str,
                                              caplog: pytest.LogCaptureFixture) -> None:
    # genai-prices alone would price it as its neighbour (a prefix match) …
    calc = genai_prices.calc_price(genai_prices.Usage(), model, provider_id="anthropic")
    assert calc.model.id == neighbour
    # … but that is a guess, so the model is unpriced.
    caplog.set_level(logging.WARNING, logger="opencell.llm.pricing")
    assert book.price("claude", model, Usage(1_500, 800)) is None
    assert f"reason=inexact_match nearest={neighbour}" in caplog.text


@pytest.mark.parametrize(("model", "provider", "priced_as"), [
    ("claude-sonnet-4-5-20250929", "claude", "anthropic:claude-sonnet-4-5"),
    ("claude-haiku-4-5@20251001", "claude", "anthropic:claude-haiku-4-5"),
    ("claude-3-5-haiku-latest", "claude", "anthropic:claude-3-5-haiku-latest"),
    ("CLAUDE-SONNET-4-20250514", "claude", "anthropic:claude-sonnet-4-0"),
    ("gpt-4o-2024-08-06", "openai", "openai:gpt-4o"),
    ("gpt-5-nano-2025-08-07", "openai", "openai:gpt-5-nano"),
    ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "openai", "openai:ft:gpt-4o-mini"),
    ("kimi-k2-turbo-preview", "moonshot", "moonshotai:kimi-k2-turbo-preview"),
])
def test_dated_and_versioned_names_are_priced(book: PriceBook, model: str, provider: str,
                                              priced_as: str) -> None:
    cost = book.price(provider, model, Usage(100, 100))
    assert cost is not None
    assert cost.priced_as == priced_as


def test_unknown_provider_and_models_without_token_prices_are_unpriced(
        book: PriceBook) -> None:
    assert book.price("gemini", "gemini-2.5-pro", Usage(1, 1)) is None
    assert book.price("openai", "moderation", Usage(1, 1)) is None  # no per-token price
    assert book.price("openai", "gpt-5-nano-foo", Usage(1, 1)) is None


def test_model_name_part_strips_only_date_version_and_fine_tune_suffixes() -> None:
    assert model_name_part("claude-sonnet-4-20250514") == "claude-sonnet-4"
    assert model_name_part("gpt-4o-2024-08-06") == "gpt-4o"
    assert model_name_part("claude-haiku-4-5@20251001") == "claude-haiku-4-5"
    assert model_name_part("claude-3-5-haiku-latest") == "claude-3-5-haiku"
    assert model_name_part("ft:gpt-4o-mini-2024-07-18:acme::x1") == "ft:gpt-4o-mini"
    assert model_name_part("claude-opus-4-10") == "claude-opus-4-10"
    assert model_name_part("kimi-k2.5") == "kimi-k2.5"


def test_matches_exactly_on_clause_kinds() -> None:
    info = gp.ModelInfo(id="m-1", match=gp.ClauseOr(or_=[
        gp.ClauseStartsWith(starts_with="m-1-2025"), gp.ClauseRegex(regex="^mx-\\d+$"),
        gp.ClauseContains(contains="m1")]))
    assert matches_exactly(info, "m-1")  # its id
    assert matches_exactly(info, "m-1-20250101")  # prefix reaches into the date
    assert matches_exactly(info, "mx-42")
    assert not matches_exactly(info, "mx-42-b")
    assert matches_exactly(info, "m1")
    assert not matches_exactly(info, "xm1x")


# ---------------------------------------------------------------- overrides


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pricing.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_override_wins_over_genai_prices(tmp_path: Path) -> None:
    path = write(tmp_path, f"""\
prices:
  - {{provider: claude, model: {SONNET_4}, input: 1.0, output: 2.0, cache_read: 0.5}}
""")
    book = PriceBook(path)
    cost = book.price("claude", SONNET_4, Usage(1_000_000, 1_000_000, 1_000_000, 1_000_000))
    assert cost is not None
    assert cost.source == "override"
    assert (cost.input_usd, cost.output_usd, cost.cache_read_usd) == (1.0, 2.0, 0.5)
    assert cost.cache_write_usd == 1.0  # defaults to the input rate
    assert cost.total_usd == 4.5
    # Other models still come from genai-prices.
    other = book.price("claude", "claude-3-5-haiku-latest", Usage(1, 1))
    assert other is not None and other.source == "genai-prices"


def test_override_patterns_and_exact_names_first(tmp_path: Path) -> None:
    path = write(tmp_path, """\
prices:
  - {provider: openai, model: "ft:gpt-4o-mini:*", input: 0.3, output: 1.2}
  - {provider: claude, model: "claude-*", input: 9, output: 9}
  - {provider: claude, model: claude-imaginary-9, input: 1, output: 1}
""")
    book = PriceBook(path)
    fine_tune = book.price("openai", "ft:gpt-4o-mini:acme:support:x1", Usage(1_000_000, 0))
    assert fine_tune is not None and fine_tune.total_usd == pytest.approx(0.3)
    assert fine_tune.priced_as == "override:ft:gpt-4o-mini:*"
    exact = book.price("claude", "claude-imaginary-9", Usage(1_000_000, 0))
    assert exact is not None and exact.total_usd == 1.0  # exact beats the earlier pattern
    pattern = book.price("claude", "claude-imaginary-10", Usage(1_000_000, 0))
    assert pattern is not None and pattern.total_usd == 9.0
    assert book.price("openai", "claude-imaginary-10", Usage(1, 1)) is None  # other provider


def test_shipped_pricing_file_is_valid() -> None:
    shipped = Path(__file__).resolve().parents[2] / "config" / "pricing.yaml"
    assert load_overrides(shipped) == []


@pytest.mark.parametrize(("text", "line", "field", "message"), [
    ("prices:\n  - {provider: claude, model: x, input: 1, output: 2}\n"
     "  - {provider: claude, model: y, input: -1, output: 2}\n",
     3, "prices[1].input", "greater than or equal to 0"),
    ("prices:\n  - provider: claude\n    model: x\n    inptu: 1\n    output: 2\n",
     4, "prices[0].inptu", "unknown field 'inptu' (did you mean 'input'?)"),
    ("prices:\n  - {provider: gemini, model: x, input: 1, output: 2}\n",
     2, "prices[0].provider", "'claude', 'moonshot', 'openai' or 'offline'"),
    ("prices:\n  - {provider: claude, model: x, output: 2}\n",
     2, "prices[0].input", "required field is missing"),
    ("prices:\n  - {provider: claude, model: x, input: 1, output: 2}\n"
     "  - {provider: claude, model: X, input: 2, output: 3}\n",
     3, "prices[1].model", "priced twice (first on line 2)"),
    ("- {provider: claude, model: x, input: 1, output: 2}\n",
     1, None, "expected a mapping of pricing fields"),
    ("prices:\n  - {provider: claude, model: x, input: 1, output: 2\n",
     3, None, "YAML syntax error"),
])
def test_bad_override_file_is_a_located_config_error(tmp_path: Path, text: str, line: int,
                                                     field: str | None, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        PriceBook(path)
    errors = getattr(caught.value, "errors", [caught.value])
    [error] = [e for e in errors if message in e.message]
    assert (error.file, error.line, error.field) == (str(path), line, field)
    assert str(path) in str(caught.value)


def test_missing_override_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        PriceBook(tmp_path / "nope.yaml")


def test_override_file_expands_env(tmp_path: Path) -> None:
    path = write(tmp_path, "prices:\n  - {provider: claude, model: '${M}', input: 1, output: 1}\n")
    book = PriceBook(path, env={"M": "my-model"})
    assert book.price("claude", "my-model", Usage(1_000_000, 0)) is not None


# ---------------------------------------------------------------- offline data, dated prices


def test_no_network_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"pricing tried the network: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    book = PriceBook()
    assert book.price("claude", SONNET_4, Usage(1, 1)) is not None
    assert book.price("openai", "gpt-4o", Usage(1, 1)) is not None
    assert book.price("claude", "claude-imaginary-9", Usage(1, 1)) is None
    snapshot = data_snapshot.get_snapshot()
    assert snapshot.from_auto_update is False  # the bundled data, not a fetched one


class ManualClock:
    def __init__(self, when: datetime) -> None:
        self.now = when.timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def custom_prices() -> Iterator[list[gp.ModelInfo]]:
    """Swap genai-prices' data for one provider whose models the test defines."""
    models: list[gp.ModelInfo] = []
    provider = gp.Provider(id="anthropic", name="Anthropic", api_pattern="x", models=models)
    data_snapshot.set_custom_snapshot(
        data_snapshot.DataSnapshot(providers=[provider], from_auto_update=False))
    try:
        yield models
    finally:
        data_snapshot.set_custom_snapshot(None)


def test_dated_price_change_is_picked_up_by_a_running_book(
        custom_prices: list[gp.ModelInfo]) -> None:
    custom_prices.append(gp.ModelInfo(id="claude-test-1", match=gp.ClauseEquals("claude-test-1"),
                                      prices=[
        gp.ConditionalPrice(prices=gp.ModelPrice(input_mtok=Decimal(1), output_mtok=Decimal(2))),
        gp.ConditionalPrice(constraint=gp.StartDateConstraint(start_date=date(2030, 1, 1)),
                            prices=gp.ModelPrice(input_mtok=Decimal(3), output_mtok=Decimal(4))),
    ]))
    clock = ManualClock(datetime(2029, 12, 31, 23, 59, tzinfo=UTC))
    book = PriceBook(clock=clock)
    before = book.price("claude", "claude-test-1", Usage(1_000_000, 1_000_000))
    assert before is not None and before.total_usd == 3.0
    clock.now += 120  # past midnight UTC
    after = book.price("claude", "claude-test-1", Usage(1_000_000, 1_000_000))
    assert after is not None and after.total_usd == 7.0


def test_prices_we_do_not_reproduce_are_left_to_genai_prices(
        custom_prices: list[gp.ModelInfo]) -> None:
    night = gp.TimeOfDateConstraint(start_time=time(0, 0), end_time=time(8, 0))
    custom_prices.extend([
        gp.ModelInfo(id="claude-fee-1", match=gp.ClauseEquals("claude-fee-1"), prices=gp.ModelPrice(
            input_mtok=Decimal(1), output_mtok=Decimal(2), requests_kcount=Decimal(5))),
        gp.ModelInfo(id="claude-night-1", match=gp.ClauseEquals("claude-night-1"), prices=[
            gp.ConditionalPrice(prices=gp.ModelPrice(input_mtok=Decimal(2),
                                                     output_mtok=Decimal(2))),
            gp.ConditionalPrice(constraint=night, prices=gp.ModelPrice(
                input_mtok=Decimal(1), output_mtok=Decimal(1)))]),
    ])
    clock = ManualClock(datetime(2030, 1, 1, 12, 0, tzinfo=UTC))
    book = PriceBook(clock=clock)
    usage = Usage(1_000_000, 0)
    fee = book.price("claude", "claude-fee-1", usage)
    assert fee is not None and fee.total_usd == pytest.approx(1.0 + 5 / 1000)  # $5 per 1K calls
    day = book.price("claude", "claude-night-1", usage)
    assert day is not None and day.total_usd == 2.0
    clock.now = datetime(2030, 1, 2, 3, 0, tzinfo=UTC).timestamp()
    night_cost = book.price("claude", "claude-night-1", usage)
    assert night_cost is not None and night_cost.total_usd == 1.0
