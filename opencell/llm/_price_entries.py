"""How one model's price is held once looked up: flat, tiered or computed by genai-prices.

Private to ``pricing.py``: the price book caches one entry per (provider, model); an entry
turns a :class:`~opencell.llm.base.Usage` into a :class:`Cost` with a few multiplications.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from datetime import time as time_of_day
from decimal import Decimal
from typing import Literal

import genai_prices
from genai_prices import types as gp
from genai_prices.data_units import unit_data

from opencell.llm.base import Usage

logger = logging.getLogger("opencell.llm.pricing")

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


# ---------------------------------------------------------------- cached price entries

PER_MILLION = 1_000_000.0
_FOREVER = float("inf")


class Price:
    """A cached price for one (provider, model)."""

    __slots__ = ("priced_as", "valid_until", "expires")

    def __init__(self, priced_as: str, valid_until: float = _FOREVER) -> None:
        self.priced_as = priced_as
        self.valid_until = valid_until
        """Epoch seconds at which genai-prices' data switches to another price."""
        self.expires = valid_until != _FOREVER

    def cost(self, usage: Usage) -> Cost | None:
        raise NotImplementedError


class FlatPrice(Price):
    """Fixed rates: the cost is four multiplications."""

    __slots__ = ("rates", "source")

    def __init__(self, rates: Rates, source: CostSource, priced_as: str,
                 valid_until: float = _FOREVER) -> None:
        super().__init__(priced_as, valid_until)
        self.rates = rates
        self.source: CostSource = source

    def cost(self, usage: Usage) -> Cost:
        rates = self.rates
        input_usd = usage.input_tokens * rates.input / PER_MILLION
        output_usd = usage.output_tokens * rates.output / PER_MILLION
        read_usd = usage.cache_read_tokens * rates.cache_read / PER_MILLION
        write_usd = usage.cache_write_tokens * rates.cache_write / PER_MILLION
        return _make_cost(input_usd, output_usd, read_usd, write_usd, self.source, rates,
                          self.priced_as)


Steps = tuple[tuple[int, float], ...]
"""Tier thresholds, highest first, ending with ``(-1, base)``."""


class TieredPrice(Price):
    """Rates that step up once the call's total input tokens pass a threshold (genai-prices'
    "cliff" model: crossing a tier applies that tier's rate to all tokens)."""

    __slots__ = ("steps", "base", "lowest_threshold")

    def __init__(self, steps: tuple[Steps, Steps, Steps, Steps], priced_as: str,
                 valid_until: float) -> None:
        super().__init__(priced_as, valid_until)
        self.steps = steps
        self.base = FlatPrice(Rates(*(s[-1][1] for s in steps)), "genai-prices", priced_as)
        self.lowest_threshold = min(s[-2][0] if len(s) > 1 else _FOREVER for s in steps)

    def cost(self, usage: Usage) -> Cost:
        # genai-prices' input_tokens (the tier threshold) includes cached tokens.
        total_input = usage.input_tokens + usage.cache_read_tokens + usage.cache_write_tokens
        if total_input <= self.lowest_threshold:
            return self.base.cost(usage)
        rates = Rates(*(_step(steps, total_input) for steps in self.steps))
        return FlatPrice(rates, "genai-prices", self.priced_as).cost(usage)


def _step(steps: Steps, total_input: int) -> float:
    for start, price in steps:
        if total_input > start:
            return price
    return steps[-1][1]


class CalcPrice(Price):
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


FREE = FlatPrice(Rates(0.0, 0.0, 0.0, 0.0), "free", "free")
NOT_LOOKED_UP = Price("<not looked up>")  # a sentinel: None means "unpriced"


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


def entry_for(info: gp.ModelInfo, gp_provider: gp.Provider, provider: str, model: str,
               clock: Callable[[], float]) -> Price | None:
    priced_as = f"{gp_provider.id}:{info.id}"
    now = datetime.fromtimestamp(clock(), tz=UTC)
    valid_until = _FOREVER
    if isinstance(info.prices, list):
        if any(isinstance(c.constraint, gp.TimeOfDateConstraint) for c in info.prices):
            return CalcPrice(info, gp_provider, priced_as, clock)
        valid_until = _next_price_change(info.prices, now)
    price = info.get_prices(now)
    values = {key: value for key, value in vars(price).items()
              if value is not None and not key.startswith("_")}
    if "input_mtok" not in values or "output_mtok" not in values:
        return unpriced(provider, model, f"no_token_prices priced_as={priced_as}")
    if not all(key in _OUR_PRICE_KEYS or _never_counted(key) for key in values):
        return CalcPrice(info, gp_provider, priced_as, clock)
    # Without its own cache rate a cache token is billed at the input rate (genai-prices).
    chosen = [values.get(key, values["input_mtok"]) for key in _OUR_PRICE_KEYS]
    if all(isinstance(value, Decimal) for value in chosen):
        rates = Rates(*(float(value) for value in chosen))
        return FlatPrice(rates, "genai-prices", priced_as, valid_until)
    steps = tuple(_steps(value) for value in chosen)
    return TieredPrice((steps[0], steps[1], steps[2], steps[3]), priced_as, valid_until)


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

def unpriced(provider: str, model: str, reason: str) -> Price | None:
    """Log (once per model: the ``None`` is cached) why a model has no price."""
    logger.warning(
        "pricing.unpriced provider=%s model=%s reason=%s "
        "fix='add a price for it to config/pricing.yaml'", provider, model, reason)
    return None
