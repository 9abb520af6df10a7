"""Decides whether genai-prices' loose match of a model name is exact enough to use its price.

genai-prices matches names by prefix or substring too, so ``claude-opus-4-10`` would get
``claude-opus-4-1``'s price. ``matches_exactly`` accepts a match only if it is exact or leaves
nothing but a date, version or fine-tune suffix.
"""

from __future__ import annotations

import re

from genai_prices import types as gp

_SUFFIX = re.compile(r"(?:[-@](?:\d{8}|\d{4}-\d{2}-\d{2}|\d{4}|latest|preview))+$")
_COMPACT_DATE = re.compile(r"-(20\d{2})(\d{2})(\d{2})(?=-|:|$)")
_SEPARATORS = "-@.:_/"


def model_name_part(ref: str) -> str:
    """A model reference without its date, version or fine-tune suffix:
    ``claude-sonnet-4-20250514`` → ``claude-sonnet-4``, ``ft:gpt-4o-mini-2024-07-18:org::id``
    → ``ft:gpt-4o-mini``."""
    ref = ref.lower()
    if ref.startswith("ft:"):
        ref = "ft:" + ref[3:].split(":", 1)[0]
    ref = ref.split(".ft-", 1)[0]
    return _SUFFIX.sub("", ref)


def matches_exactly(info: gp.ModelInfo, ref: str) -> bool:
    """Whether genai-prices' match of ``ref`` to ``info`` is exact enough to use its price.

    Equality and (anchored) regular expressions are exact. A prefix or substring clause only
    counts when it covers the whole model name, leaving at most a date/version suffix, so that
    ``claude-opus-4-1`` prices ``claude-opus-4-1-20250805`` but not ``claude-opus-4-10``.
    """
    ref = ref.lower()
    if ref == info.id.lower():
        return True
    candidates = {ref, _COMPACT_DATE.sub(r"-\1-\2-\3", ref)}  # genai-prices retries this form
    return any(_clause_exact(info.match, candidate, model_name_part(candidate))
               for candidate in candidates)


def _clause_exact(clause: object, ref: str, name: str) -> bool:
    if isinstance(clause, gp.ClauseOr):
        return any(_clause_exact(child, ref, name) for child in clause.or_)
    if isinstance(clause, gp.ClauseAnd):
        return all(child.is_match(ref) for child in clause.and_) and any(
            _clause_exact(child, ref, name) for child in clause.and_)
    if isinstance(clause, gp.ClauseEquals):
        return ref == clause.equals.lower()
    if isinstance(clause, gp.ClauseRegex):
        return re.fullmatch(clause.regex, ref) is not None
    if isinstance(clause, gp.ClauseStartsWith):
        prefix = clause.starts_with.lower()
        return ref.startswith(prefix) and len(prefix.rstrip(_SEPARATORS)) >= len(name)
    if isinstance(clause, gp.ClauseContains | gp.ClauseEndsWith):
        text = (clause.contains if isinstance(clause, gp.ClauseContains)
                else clause.ends_with).lower()
        return text in (ref, name)
    return False
