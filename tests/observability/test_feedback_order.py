"""Ratings land in the order they were made: a person rating a turn, taking it back and
rating it again (a reaction added, removed, another added) ends with their last word stored
— on both stores, from the event loop, where the writes run off it."""

from __future__ import annotations

import pytest

from opencell.config import OpenCellConfig, StoreConfig
from opencell.observability.observer import Observability
from opencell.store.feedback import session_feedback


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
