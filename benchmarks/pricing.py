"""Benchmark: µs per cached PriceBook.price() vs per genai_prices.calc_price() (target < 1 µs).

Run: python benchmarks/pricing.py
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import genai_prices  # noqa: E402

from opencell.llm.base import Usage  # noqa: E402
from opencell.llm.pricing import PriceBook  # noqa: E402

TARGET_US = 1.0
CASES = [
    ("claude", "anthropic", "claude-sonnet-4-20250514"),  # flat rates
    ("claude", "anthropic", "claude-sonnet-4-5-20250929"),  # tiered rates
    ("openai", "openai", "gpt-4o"),
    ("moonshot", "moonshotai", "kimi-k2-0905-preview"),
]


def per_call_us(func: Callable[[], object], number: int) -> float:
    """Best of 5 runs, in µs per call."""
    return min(timeit.repeat(func, number=number, repeat=5)) / number * 1e6


def main() -> None:
    book = PriceBook()
    usage = Usage(input_tokens=1_500, output_tokens=800, cache_read_tokens=2_000)
    genai_usage = genai_prices.Usage(input_tokens=3_500, output_tokens=800,
                                     cache_read_tokens=2_000)
    print(f"{'model':32} {'PriceBook µs':>13} {'calc_price µs':>14} {'speed-up':>9}")
    for provider, provider_id, model in CASES:
        book.price(provider, model, usage)  # first lookup fills the cache
        cached = per_call_us(partial(book.price, provider, model, usage), 200_000)
        direct = per_call_us(
            partial(genai_prices.calc_price, genai_usage, model, provider_id=provider_id), 2_000)
        verdict = "ok" if cached < TARGET_US else f"over the {TARGET_US} µs target"
        print(f"{model:32} {cached:13.3f} {direct:14.1f} {direct / cached:8.0f}x  {verdict}")
    unknown = per_call_us(lambda: book.price("claude", "claude-imaginary-9", usage), 200_000)
    print(f"{'unpriced (cached None)':32} {unknown:13.3f}")


if __name__ == "__main__":
    main()
