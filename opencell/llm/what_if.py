"""What-if pricing: recorded token counts priced as if another model had answered them.

Works on cost totals (rollup rows or a session's row: ``calls``, ``input_tokens``,
``output_tokens``, ``cache_read_tokens``, ``cache_write_tokens``), never on events. Each
row is priced as ``calls`` × the price of its average call, so a tiered price (one rate
under 200k input tokens, another above) applies the tier an average call falls in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from opencell.errors import ConfigError
from opencell.llm.base import Usage
from opencell.llm.pricing import PriceBook

PROVIDERS = ("claude", "openai", "moonshot", "offline")
_GUESS = (("claude", "claude"), ("gpt", "openai"), ("o1", "openai"), ("o3", "openai"),
          ("o4", "openai"), ("chatgpt", "openai"), ("kimi", "moonshot"),
          ("moonshot", "moonshot"), ("offline", "offline"))


@dataclass(frozen=True, slots=True)
class WhatIfModel:
    """The model to price under: our provider name and the model id."""

    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


def parse_model(text: str) -> WhatIfModel:
    """``provider:model`` (or ``provider/model``), or a bare model whose provider is clear
    from its name (``claude-…``, ``gpt-…``, ``o3…``, ``kimi-…``)."""
    text = text.strip()
    for sep in (":", "/"):
        head, found, tail = text.partition(sep)
        if found and head in PROVIDERS and tail:
            return WhatIfModel(head, tail)
    lowered = text.lower()
    for prefix, provider in _GUESS:
        if lowered.startswith(prefix):
            return WhatIfModel(provider, text)
    raise ConfigError(f"cannot tell the provider of model '{text}'; write it as "
                      f"provider:model with provider one of {', '.join(PROVIDERS)}",
                      field="--what-if")


def what_if_cost(row: Mapping[str, Any], prices: PriceBook, model: WhatIfModel
                 ) -> float | None:
    """The row's tokens priced under ``model``; None when the model has no price."""
    calls = int(row.get("calls") or row.get("llm_calls") or 0)
    counts = [int(row.get(name) or 0) for name in
              ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")]
    if calls <= 0:
        if not any(counts):
            return 0.0
        calls = 1
    average = Usage(*(round(c / calls) for c in counts))
    cost = prices.price(model.provider, model.model, average)
    return None if cost is None else cost.total_usd * calls


def flat_rates(prices: PriceBook, model: WhatIfModel) -> tuple[float, ...] | None:
    """The model's four rates (USD per token) when its price is the same for a small and a
    huge call (no tiers), else None: then each row is priced on its own."""
    small = prices.price(model.provider, model.model, Usage(1000, 1000, 1000, 1000))
    huge = prices.price(model.provider, model.model, Usage(10**7, 1000, 1000, 1000))
    if small is None or huge is None or small.per_million != huge.per_million:
        return None
    r = small.per_million
    return tuple(rate / 1_000_000 for rate in (r.input, r.output, r.cache_read, r.cache_write))


def with_what_if(rows: Iterable[Mapping[str, Any]], prices: PriceBook, model: WhatIfModel
                 ) -> list[dict[str, Any]]:
    """Each row with ``what_if_usd`` (None: unpriced) added. A flat price is four
    multiplications a row (linear in the tokens, so the totals need no averaging)."""
    rates = flat_rates(prices, model)
    if rates is None:
        return [{**row, "what_if_usd": what_if_cost(row, prices, model)} for row in rows]
    i, o, r, w = rates
    out = []
    for row in rows:
        priced = dict(row)
        priced["what_if_usd"] = ((row.get("input_tokens") or 0) * i
                                 + (row.get("output_tokens") or 0) * o
                                 + (row.get("cache_read_tokens") or 0) * r
                                 + (row.get("cache_write_tokens") or 0) * w)
        out.append(priced)
    return out


def total_what_if(rows: Iterable[Mapping[str, Any]], sums: Mapping[str, Any],
                  prices: PriceBook, model: WhatIfModel, *, complete: bool) -> float | None:
    """What all keys would have cost: a flat price applied to ``sums``; a tiered one summed
    over ``rows`` (then ``complete`` must say the rows are all the keys, else None)."""
    rates = flat_rates(prices, model)
    if rates is not None:
        return sum((sums.get(name) or 0) * rate for name, rate in zip(
            ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"),
            rates, strict=True))
    if not complete:
        return None
    costs = [what_if_cost(row, prices, model) for row in rows]
    return None if any(c is None for c in costs) else sum(c or 0.0 for c in costs)
