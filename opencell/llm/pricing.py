"""Prices model calls in USD from genai-prices' data, overridable by ``config/pricing.yaml``.

``PriceBook.price(provider, model, usage)`` returns a :class:`Cost`, or ``None`` when the model
is *unpriced*: never $0 and never a neighbouring model's price. An unpriced model is logged
once per (provider, model) and is meant to be recorded with a null cost and flagged.

Where prices come from, first match wins:

1. the overrides file (``config/pricing.yaml``, path given to ``PriceBook``);
2. ``offline`` provider: free ($0, source ``"free"``);
3. genai-prices' bundled data (``claude`` → ``anthropic``, ``openai`` → ``openai``,
   ``moonshot`` → ``moonshotai``). The auto-updater (``genai_prices.UpdatePrices``) is never
   started, so nothing is fetched from the network.

genai-prices matches model names loosely (prefixes such as ``claude-opus-4-1`` also match
``claude-opus-4-10``). A match is only used when it is exact or the rest of the name is a
date or version suffix (``-20250514``, ``@20250514``, ``-2024-08-06``, ``-0613``, ``-latest``,
``-preview``, fine-tune suffixes); otherwise the model is unpriced.

The first lookup of a (provider, model) costs what ``genai_prices.calc_price`` costs (about
50-120 µs); its per-million rates are then cached and later calls only multiply. Tiered prices
(one rate below a threshold of input tokens, another above it) are applied like genai-prices
does; prices that start on a date are re-resolved when that date comes; prices this module
does not reproduce (time-of-day prices, per-request fees) are computed by genai-prices on
every call.

Token conventions: ``Usage.input_tokens`` excludes cached tokens (Anthropic's convention). Cache
reads and writes are priced at their own rates; a model without a cache rate bills those tokens
at its input rate, as genai-prices does. ``Cost.input_usd`` is the uncached input only.

Overrides file format (USD per 1M tokens; ``cache_read``/``cache_write`` default to ``input``)::

    prices:
      - {provider: claude, model: claude-sonnet-4-20250514, input: 3.0, output: 15.0,
         cache_read: 0.3, cache_write: 3.75}
      - {provider: openai, model: "ft:gpt-4o-mini:*", input: 0.3, output: 1.2}

``provider`` is one of ``claude``, ``openai``, ``moonshot``, ``offline``. ``model`` is an exact
name (case-insensitive) or an ``fnmatch`` pattern (``*``, ``?``, ``[…]``); exact names are tried
first, then patterns in file order. ``${VAR}`` is expanded as in other config files. Errors are
``ConfigError`` with file, line and field.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from datetime import time as time_of_day
from decimal import Decimal
from pathlib import Path
from typing import Literal

import genai_prices
from genai_prices import types as gp
from genai_prices.data_units import unit_data
from pydantic import Field

from opencell.config import Model, Provider, validate_source
from opencell.config.source import read_yaml
from opencell.llm._model_match import matches_exactly
from opencell.llm.base import Usage

logger = logging.getLogger(__name__)

GENAI_PRICES_PROVIDERS: Mapping[str, str] = {
    "claude": "anthropic",
    "openai": "openai",
    "moonshot": "moonshotai",
}
"""Our provider names → genai-prices provider ids."""

CostSource = Literal["genai-prices", "override", "free"]


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float
    cache_write: float


@dataclass(frozen=True, slots=True)
class Cost:
    """What one model call cost, in USD, and the rates that priced it."""

    input_usd: float
    """Uncached input tokens only."""
    output_usd: float
    cache_read_usd: float
    cache_write_usd: float
    total_usd: float
    source: CostSource
    per_million: Rates
    """The rates applied (for tiered prices: the tier this call fell into)."""
    priced_as: str
    """What priced it: ``anthropic:claude-sonnet-4-0``, ``override:ft:gpt-4o-mini:*``, ``free``."""


_new = object.__new__
(_set_input, _set_output, _set_read, _set_write, _set_total, _set_source, _set_rates,
 _set_priced_as) = (getattr(Cost, name).__set__ for name in Cost.__slots__)


def _make_cost(input_usd: float, output_usd: float, read_usd: float, write_usd: float,
               source: CostSource, rates: Rates, priced_as: str) -> Cost:
    """``Cost(...)`` in half the time (hot path): a frozen dataclass' ``__init__`` calls
    ``object.__setattr__`` per field (~0.9 µs in all); setting the slots directly takes ~0.45."""
    cost: Cost = _new(Cost)
    _set_input(cost, input_usd)
    _set_output(cost, output_usd)
    _set_read(cost, read_usd)
    _set_write(cost, write_usd)
    _set_total(cost, input_usd + output_usd + read_usd + write_usd)
    _set_source(cost, source)
    _set_rates(cost, rates)
    _set_priced_as(cost, priced_as)
    return cost


class PriceOverride(Model):
    """One entry of ``config/pricing.yaml``: USD per 1M tokens for a provider's model(s)."""

    provider: Provider
    model: str = Field(min_length=1)
    """An exact model name or an fnmatch pattern."""
    input: float = Field(ge=0, allow_inf_nan=False)
    output: float = Field(ge=0, allow_inf_nan=False)
    cache_read: float | None = Field(None, ge=0, allow_inf_nan=False)
    """Defaults to ``input``."""
    cache_write: float | None = Field(None, ge=0, allow_inf_nan=False)
    """Defaults to ``input``."""


class PricingFile(Model):
    """The whole overrides file."""

    prices: list[PriceOverride] = []


# ---------------------------------------------------------------- cached price entries

_PER_MILLION = 1_000_000.0
_FOREVER = float("inf")


class _Price:
    """A cached price for one (provider, model)."""

    __slots__ = ("priced_as", "valid_until", "expires")

    def __init__(self, priced_as: str, valid_until: float = _FOREVER) -> None:
        self.priced_as = priced_as
        self.valid_until = valid_until
        """Epoch seconds at which genai-prices' data switches to another price."""
        self.expires = valid_until != _FOREVER

    def cost(self, usage: Usage) -> Cost | None:
        raise NotImplementedError


class _FlatPrice(_Price):
    """Fixed rates: the cost is four multiplications."""

    __slots__ = ("rates", "source")

    def __init__(self, rates: Rates, source: CostSource, priced_as: str,
                 valid_until: float = _FOREVER) -> None:
        super().__init__(priced_as, valid_until)
        self.rates = rates
        self.source: CostSource = source

    def cost(self, usage: Usage) -> Cost:
        rates = self.rates
        input_usd = usage.input_tokens * rates.input / _PER_MILLION
        output_usd = usage.output_tokens * rates.output / _PER_MILLION
        read_usd = usage.cache_read_tokens * rates.cache_read / _PER_MILLION
        write_usd = usage.cache_write_tokens * rates.cache_write / _PER_MILLION
        return _make_cost(input_usd, output_usd, read_usd, write_usd, self.source, rates,
                          self.priced_as)


Steps = tuple[tuple[int, float], ...]
"""Tier thresholds, highest first, ending with ``(-1, base)``."""


class _TieredPrice(_Price):
    """Rates that step up once the call's total input tokens pass a threshold (genai-prices'
    "cliff" model: crossing a tier applies that tier's rate to all tokens)."""

    __slots__ = ("steps", "base", "lowest_threshold")

    def __init__(self, steps: tuple[Steps, Steps, Steps, Steps], priced_as: str,
                 valid_until: float) -> None:
        super().__init__(priced_as, valid_until)
        self.steps = steps
        self.base = _FlatPrice(Rates(*(s[-1][1] for s in steps)), "genai-prices", priced_as)
        self.lowest_threshold = min(s[-2][0] if len(s) > 1 else _FOREVER for s in steps)

    def cost(self, usage: Usage) -> Cost:
        # genai-prices' input_tokens (the tier threshold) includes cached tokens.
        total_input = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
        if total_input <= self.lowest_threshold:
            return self.base.cost(usage)
        rates = Rates(*(_step(steps, total_input) for steps in self.steps))
        return _FlatPrice(rates, "genai-prices", self.priced_as).cost(usage)


def _step(steps: Steps, total_input: int) -> float:
    for start, price in steps:
        if total_input > start:
            return price
    return steps[-1][1]


class _CalcPrice(_Price):
    """Prices genai-prices computes in ways we do not reproduce (time-of-day prices,
    per-request fees): ask it on every call."""

    __slots__ = ("model", "provider", "clock")

    def __init__(self, model: gp.ModelInfo, provider: gp.Provider, priced_as: str,
                 clock: Callable[[], float]) -> None:
        super().__init__(priced_as)
        self.model = model
        self.provider = provider
        self.clock = clock

    def cost(self, usage: Usage) -> Cost | None:
        try:
            when = datetime.fromtimestamp(self.clock(), tz=UTC)
            calc = self.model.calc_price(_genai_usage(usage), self.provider,
                                         genai_request_timestamp=when)
        except ValueError as exc:  # usage genai-prices refuses, e.g. negative counts
            logger.warning("pricing.failed priced_as=%s error=%s", self.priced_as, exc)
            return None
        price = calc.model_price
        rates = Rates(*(_base_rate(getattr(price, key, None)) for key in _OUR_PRICE_KEYS))
        # genai-prices sums all input into input_price (cache included) and per-request fees
        # into total_price only, so the parts are not split further here.
        return Cost(float(calc.input_price), float(calc.output_price), 0.0, 0.0,
                    float(calc.total_price), "genai-prices", rates, self.priced_as)


def _base_rate(price: object) -> float:
    if isinstance(price, gp.TieredPrices):
        return float(price.base)
    return float(price) if isinstance(price, Decimal) else 0.0


def _genai_usage(usage: Usage) -> genai_prices.Usage:
    # genai-prices' input_tokens includes cached tokens; ours does not.
    return genai_prices.Usage(
        input_tokens=usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens,
        output_tokens=usage.output_tokens,
        cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
    )


_FREE = _FlatPrice(Rates(0.0, 0.0, 0.0, 0.0), "free", "free")
_NOT_LOOKED_UP = _Price("<not looked up>")  # a sentinel: None means "unpriced"


# ---------------------------------------------------------------- the price book


class PriceBook:
    """Prices model calls; thread-safe; a lookup after the first is a dict hit.

    ``overrides_path`` is the overrides file (see the module docstring); a missing or invalid
    file raises ``ConfigError`` here, at start-up. ``env`` expands ``${VAR}`` in it (default
    ``os.environ``); ``clock`` gives epoch seconds (tests pass a manual clock).
    """

    def __init__(self, overrides_path: str | Path | None = None, *,
                 env: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._exact: dict[tuple[str, str], PriceOverride] = {}
        self._patterns: list[PriceOverride] = []
        if overrides_path is not None:
            for entry in load_overrides(overrides_path, env):
                name = entry.model.lower()
                if _is_pattern(name):
                    self._patterns.append(entry)
                else:
                    self._exact.setdefault((entry.provider, name), entry)
        self._cache: dict[tuple[str, str], _Price | None] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def price(self, provider: str, model: str, usage: Usage) -> Cost | None:
        """The cost of one call, or ``None`` if this model has no known price.

        ``provider`` is ours (``claude``, ``openai``, ``moonshot``, ``offline``); ``model`` is
        the model as the provider answered it. Never raises for unknown names. A negative
        count (a client that does not check what its provider said) is priced as 0: a cost
        is never negative.
        """
        if min(usage.input_tokens, usage.output_tokens, usage.cache_read_tokens,
               usage.cache_write_tokens) < 0:
            usage = replace(usage, input_tokens=max(usage.input_tokens, 0),
                            output_tokens=max(usage.output_tokens, 0),
                            cache_read_tokens=max(usage.cache_read_tokens, 0),
                            cache_write_tokens=max(usage.cache_write_tokens, 0))
        entry = self._cache.get((provider, model), _NOT_LOOKED_UP)
        if entry is None:
            return None
        if entry is _NOT_LOOKED_UP or (entry.expires and entry.valid_until <= self._clock()):
            entry = self._resolve(provider, model)
            if entry is None:
                return None
        return entry.cost(usage)

    def _resolve(self, provider: str, model: str) -> _Price | None:
        with self._lock:
            entry = self._cache.get((provider, model), _NOT_LOOKED_UP)
            if entry is _NOT_LOOKED_UP or (entry is not None
                                           and entry.valid_until <= self._clock()):
                entry = self._lookup(provider, model)
                self._cache[(provider, model)] = entry
            return entry

    def _lookup(self, provider: str, model: str) -> _Price | None:
        override = self._override(provider, model)
        if override is not None:
            rates = Rates(override.input, override.output,
                          override.input if override.cache_read is None else override.cache_read,
                          override.input if override.cache_write is None else override.cache_write)
            return _FlatPrice(rates, "override", f"override:{override.model}")
        if provider == "offline":
            return _FREE
        provider_id = GENAI_PRICES_PROVIDERS.get(provider)
        if provider_id is None:
            return _unpriced(provider, model, "unknown_provider")
        try:
            calc = genai_prices.calc_price(genai_prices.Usage(), model, provider_id=provider_id)
            if not matches_exactly(calc.model, model):
                return _unpriced(provider, model, f"inexact_match nearest={calc.model.id}")
            return _entry_for(calc.model, calc.provider, provider, model, self._clock)
        except LookupError:
            return _unpriced(provider, model, "unknown_model")
        except Exception as exc:  # genai-prices data we cannot read must not break a bot
            return _unpriced(provider, model, f"genai_prices_error error={type(exc).__name__}")

    def _override(self, provider: str, model: str) -> PriceOverride | None:
        name = model.lower()
        exact = self._exact.get((provider, name))
        if exact is not None:
            return exact
        for entry in self._patterns:
            if entry.provider == provider and fnmatch.fnmatchcase(name, entry.model.lower()):
                return entry
        return None


def load_overrides(path: str | Path, env: Mapping[str, str] | None = None
                   ) -> list[PriceOverride]:
    """Read and validate an overrides file; raise a located ``ConfigError`` if it is wrong."""
    source = read_yaml(Path(path), os.environ if env is None else env)
    if isinstance(source.data, dict) and source.data.get("prices") is None:
        source.data = {**source.data, "prices": []}  # `prices:` with nothing under it
    entries = validate_source(source, PricingFile, "pricing").prices
    seen: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(entries):
        key = (entry.provider, entry.model.lower())
        if key in seen:
            first = source.line_of(("prices", seen[key]))
            raise source.error(("prices", index, "model"),
                               f"{entry.provider} {entry.model} is priced twice "
                               f"(first on line {first}); keep one entry")
        seen[key] = index
    return entries


def _is_pattern(name: str) -> bool:
    return any(char in name for char in "*?[")


def _unpriced(provider: str, model: str, reason: str) -> _Price | None:
    """Log (once per model: the ``None`` is cached) why a model has no price."""
    logger.warning(
        "pricing.unpriced provider=%s model=%s reason=%s "
        "fix='add a price for it to config/pricing.yaml'", provider, model, reason)
    return None


# ---------------------------------------------------------------- genai-prices data → entry

_OUR_UNITS = {key: unit_data[key]["dimensions"] for key in
              ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")}
_OUR_PRICE_KEYS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
_UNIT_BY_PRICE_KEY = {unit["price_key"]: (key, unit["dimensions"])
                      for key, unit in unit_data.items()}


def _never_counted(price_key: str) -> bool:
    """True if a price key can only count usage our ``Usage`` never has (images, audio, web
    searches …), so it adds nothing; per-request fees and unknown keys are not."""
    found = _UNIT_BY_PRICE_KEY.get(price_key)
    if found is None or found[0] == "requests":
        return False
    dimensions = found[1].items()
    # A unit that is one of ours or contains ours would count our tokens.
    return not any(dimensions <= ours.items() for ours in _OUR_UNITS.values())


def _entry_for(info: gp.ModelInfo, gp_provider: gp.Provider, provider: str, model: str,
               clock: Callable[[], float]) -> _Price | None:
    priced_as = f"{gp_provider.id}:{info.id}"
    now = datetime.fromtimestamp(clock(), tz=UTC)
    valid_until = _FOREVER
    if isinstance(info.prices, list):
        if any(isinstance(c.constraint, gp.TimeOfDateConstraint) for c in info.prices):
            return _CalcPrice(info, gp_provider, priced_as, clock)
        valid_until = _next_price_change(info.prices, now)
    price = info.get_prices(now)
    values = {key: value for key, value in vars(price).items()
              if value is not None and not key.startswith("_")}
    if "input_mtok" not in values or "output_mtok" not in values:
        return _unpriced(provider, model, f"no_token_prices priced_as={priced_as}")
    if not all(key in _OUR_PRICE_KEYS or _never_counted(key) for key in values):
        return _CalcPrice(info, gp_provider, priced_as, clock)
    # Without its own cache rate a cache token is billed at the input rate (genai-prices).
    chosen = [values.get(key, values["input_mtok"]) for key in _OUR_PRICE_KEYS]
    if all(isinstance(value, Decimal) for value in chosen):
        rates = Rates(*(float(value) for value in chosen))
        return _FlatPrice(rates, "genai-prices", priced_as, valid_until)
    steps = tuple(_steps(value) for value in chosen)
    return _TieredPrice((steps[0], steps[1], steps[2], steps[3]), priced_as, valid_until)


def _steps(value: object) -> Steps:
    if isinstance(value, gp.TieredPrices):
        tiers = sorted(value.tiers, key=lambda tier: tier.start, reverse=True)
        return (*((tier.start, float(tier.price)) for tier in tiers), (-1, float(value.base)))
    if isinstance(value, Decimal):
        return ((-1, float(value)),)
    raise TypeError(f"unexpected genai-prices price value {value!r}")


def _next_price_change(prices: list[gp.ConditionalPrice], now: datetime) -> float:
    """When the active one of date-conditional prices changes next (epoch seconds)."""
    today = now.date()
    upcoming = [c.constraint.start_date for c in prices
                if isinstance(c.constraint, gp.StartDateConstraint)
                and c.constraint.start_date > today]
    if not upcoming:
        return _FOREVER
    return datetime.combine(min(upcoming), time_of_day(0), tzinfo=UTC).timestamp()


__all__ = [
    "Cost", "Rates", "CostSource", "PriceBook", "PriceOverride", "PricingFile",
    "GENAI_PRICES_PROVIDERS", "load_overrides",
]
