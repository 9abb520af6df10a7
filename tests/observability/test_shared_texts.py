"""A large message is stored once: its records refer to one copy, and every reader gets it back."""

from __future__ import annotations

import sqlalchemy as sa

from opencell.config import BotConfig, LLMConfig, OpenCellConfig, StoreConfig
from opencell.exporters.outbox import Outbox
from opencell.messages import ConversationKey, IncomingMessage
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.store import Store
from opencell.store.tables import events, sessions, texts
from opencell.store.texts import SHARED_MIN_CHARS
from tests.fakes.function_llm import FunctionLLM

KEY = ConversationKey(bot="echo", platform="test", channel="c", user="u")


async def test_a_large_message_and_answer_are_each_stored_once(isolated_store: str) -> None:
    big = "lorem ipsum dolor sit amet " * 20_000  # 540,000 characters
    answer = "You wrote: " + big[:50_000]
    config = OpenCellConfig(store=StoreConfig(url=isolated_store))
    obs = Observability.from_config(config)
    runtime = BotRuntime(BotConfig(name="echo", llm=LLMConfig(provider="offline")),
                         llm=FunctionLLM(lambda request: answer), observability=obs)
    reply = await runtime.dispatch(IncomingMessage(key=KEY, text=big, user_id="u"))
    assert reply is not None and reply.text == answer
    await runtime.aclose()
    assert obs.close(timeout=10)

    store = Store.open(isolated_store)
    try:
        with store.reading() as conn:
            # (the bot's version text is kept there too, once: not a message text)
            versions = sa.select(sessions.c.bot_version).where(
                sessions.c.bot_version.is_not(None))
            stored = conn.execute(sa.select(texts.c.text).where(
                texts.c.digest.not_in(versions))).scalars().all()
            data_chars = conn.execute(sa.select(sa.func.sum(sa.func.length(events.c.data))
                                                )).scalar()
        capped = big[:100_000]
        # The user's text (capped, with its marker) and the answer: once each, though each is
        # in two records (message input + model prompt; model completion + message output).
        assert sorted(len(t) for t in stored) == sorted(
            [len(answer), len(next(t for t in stored if t.startswith(capped)))])
        assert any(t.startswith(capped) and "truncated by OpenCell" in t for t in stored)
        assert data_chars < 10_000  # the events hold references, not copies

        (session,), _ = store.list_sessions(limit=5)
        timeline = store.timeline(session["id"])
        message = next(e for e in timeline if e["kind"] == "message")
        call = next(e for e in timeline if e["kind"] == "llm_call")
        assert message["input"].startswith(capped) and message["output"] == answer
        assert call["completion"] == answer
        assert call["input"]["add"][-1]["content"] == message["input"]

        exported = Outbox(store, "test").window((0, 0), 100)
        exported_message = next(e for e in exported if e.kind == "message")
        assert exported_message.data["output"] == answer
        assert exported_message.data["input"] == message["input"]
    finally:
        store.close()


async def test_short_texts_stay_inline(isolated_store: str) -> None:
    config = OpenCellConfig(store=StoreConfig(url=isolated_store))
    obs = Observability.from_config(config)
    runtime = BotRuntime(BotConfig(name="echo", llm=LLMConfig(provider="offline")),
                         llm=FunctionLLM(lambda request: "short"), observability=obs)
    await runtime.dispatch(IncomingMessage(key=KEY, text="x" * (SHARED_MIN_CHARS - 1),
                                           user_id="u"))
    await runtime.aclose()
    assert obs.close(timeout=10)
    store = Store.open(isolated_store)
    try:
        with store.reading() as conn:
            versions = sa.select(sessions.c.bot_version).where(
                sessions.c.bot_version.is_not(None))  # the bot's version text, kept once
            assert conn.execute(sa.select(sa.func.count()).select_from(texts).where(
                texts.c.digest.not_in(versions))).scalar() == 0
    finally:
        store.close()


def test_text_with_nul_stays_inline() -> None:
    from opencell.store.texts import share

    found: dict[str, str] = {}
    data = {"input": "a\x00b" * SHARED_MIN_CHARS, "output": "c" * SHARED_MIN_CHARS}
    shared = share(data, found)
    assert shared["input"] == data["input"] and list(found.values()) == [data["output"]]
