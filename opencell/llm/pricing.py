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
from dataclasses import replace
from pathlib import Path

import genai_prices
from pydantic import Field

from opencell.config import Model, Provider, validate_source
from opencell.config.source import read_yaml
from opencell.llm._model_match import matches_exactly
from opencell.llm._price_entries import (
    FREE,
    NOT_LOOKED_UP,
    Cost,
    CostSource,
    FlatPrice,
    Price,
    Rates,
    entry_for,
    unpriced,
)
from opencell.llm.base import Usage

__all__ = ["GENAI_PRICES_PROVIDERS", "Cost", "CostSource", "PriceBook", "PriceOverride",
           "PricingFile", "Rates", "load_overrides"]

logger = logging.getLogger(__name__)

GENAI_PRICES_PROVIDERS: Mapping[str, str] = {
    "claude": "anthropic",
    "openai": "openai",
    "moonshot": "moonshotai",
}
"""Our provider names → genai-prices provider ids."""



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
        self._cache: dict[tuple[str, str], Price | None] = {}
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
        entry = self._cache.get((provider, model), NOT_LOOKED_UP)
        if entry is None:
            return None
        if entry is NOT_LOOKED_UP or (entry.expires and entry.valid_until <= self._clock()):
            entry = self._resolve(provider, model)
            if entry is None:
                return None
        return entry.cost(usage)

    def _resolve(self, provider: str, model: str) -> Price | None:
        with self._lock:
            entry = self._cache.get((provider, model), NOT_LOOKED_UP)
            if entry is NOT_LOOKED_UP or (entry is not None
                                           and entry.valid_until <= self._clock()):
                entry = self._lookup(provider, model)
                self._cache[(provider, model)] = entry
            return entry

    def _lookup(self, provider: str, model: str) -> Price | None:
        override = self._override(provider, model)
        if override is not None:
            rates = Rates(override.input, override.output,
                          override.input if override.cache_read is None else override.cache_read,
                          override.input if override.cache_write is None else override.cache_write)
            return FlatPrice(rates, "override", f"override:{override.model}")
        if provider == "offline":
            return FREE
        provider_id = GENAI_PRICES_PROVIDERS.get(provider)
        if provider_id is None:
            return unpriced(provider, model, "unknown_provider")
        try:
            calc = genai_prices.calc_price(genai_prices.Usage(), model, provider_id=provider_id)
            if not matches_exactly(calc.model, model):
                return unpriced(provider, model, f"inexact_match nearest={calc.model.id}")
            return entry_for(calc.model, calc.provider, provider, model, self._clock)
        except LookupError:
            return unpriced(provider, model, "unknown_model")
        except Exception as exc:  # genai-prices data we cannot read must not break a bot
            return unpriced(provider, model, f"genai_prices_error error={type(exc).__name__}")

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


