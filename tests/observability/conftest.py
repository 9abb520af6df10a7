"""Fixtures the recorder and store tests share: a store file, a quick back-off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from opencell.observability import recorder as recorder_module
from opencell.store.store import Store


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Store outages in these tests retry within 0.1 s, not the production 2 s cap."""
    monkeypatch.setattr(recorder_module, "BACKOFF_CAP", 0.1)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "obs.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{db}")
    yield opened
    opened.close()
