"""One ``opencell doctor`` verdict (a module of its own: the checks and the live credential
checks both make them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Check:
    """One check's verdict. ``ok=None`` is information (nothing to check, e.g. an exporter
    that is off)."""

    name: str
    ok: bool | None
    detail: str
    fix: str = ""
