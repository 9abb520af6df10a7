"""Ratings land in the order they were made: a person rating a turn, taking it back and
rating it again (a reaction added, removed, another added) ends with their last word stored
— on both stores, from the event loop, where the writes run off it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from opencell.config import OpenCellConfig, StoreConfig
from opencell.observability.observer import Observability
from opencell.store import feedback as rows
from opencell.store.feedback import session_feedback
from opencell.store.store import Store


async def test_a_rating_its_retraction_and_a_new_one_land_in_order(
        store_url: str, caplog: pytest.LogCaptureFixture) -> None:
    obs = Observability.from_config(OpenCellConfig(store=StoreConfig(url=store_url)))
    try:
        session = obs.start_session(bot="support", bot_type="conversational", user_id="u1",
                                    platform="discord")
        calls = [("good", "bad", None, "good", "bad")[i % 5] for i in range(40)]
        for turn in range(8):
            for value in calls:
                obs.feedback.rate(session, bot="support", turn=f"t{turn}", user_id="u1",
                                  value=value, source="reaction")
        await obs.feedback.settle()
        assert obs.store is not None
        standing = {row["turn"]: row["value"] for row in session_feedback(obs.store, session)}
        assert standing == {f"t{turn}": calls[-1] for turn in range(8)}
        assert "internal error" not in caplog.text
    finally:
        obs.close()


async def test_closing_waits_for_the_ratings_still_being_written(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bot stopping right after a reaction: the rating's write is still in the feedback
    thread. Closing used to close the store under it (the rating was lost) and leave the
    thread behind."""
    real = rows.set_feedback
    started = threading.Event()

    def slow(*args: Any, **kwargs: Any) -> None:
        started.set()
        time.sleep(0.3)
        real(*args, **kwargs)

    monkeypatch.setattr(rows, "set_feedback", slow)
    before = set(threading.enumerate())  # other tests' books may still hold threads
    obs = Observability.from_config(OpenCellConfig(store=StoreConfig(url=store_url)))
    session = obs.start_session(bot="support", bot_type="conversational", user_id="u1",
                                platform="discord")
    obs.feedback.rate(session, bot="support", turn="t1", user_id="u1", value="bad",
                      source="reaction")
    assert started.wait(5)
    obs.close()
    assert not [t for t in set(threading.enumerate()) - before
                if t.name.startswith("opencell-feedback") and (t.join(5) or t.is_alive())]
    store = Store.open(store_url)
    try:
        assert [(r["turn"], r["value"]) for r in session_feedback(store, session)] == [
            ("t1", "bad")]
    finally:
        store.close()
