"""Running one replay: read the source, build the changed bot, run its turns, compare."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from opencell.config import BotConfig
from opencell.errors import StoreError
from opencell.llm.base import LLMClient
from opencell.messages import ConversationKey, IncomingMessage, Reply
from opencell.observability.observer import Observability
from opencell.observability.versions import definition
from opencell.replay.meter import Meter, Spend
from opencell.replay.recording import Recording, read_recording
from opencell.replay.result import ReplayResult, TurnComparison
from opencell.replay.tools import ReplayTools, ToolMode
from opencell.sessions import SessionTracker
from opencell.tools import Toolbox, ToolInvoker

if TYPE_CHECKING:
    from opencell.store.store import Store

REPLAY_PLATFORM = "replay"
CHANNEL_PREFIX = "replay:"
"""A replay's conversation channel is ``replay:<source session id>``."""


class Replaying(Protocol):
    """What a replay needs of the runtime it builds (``BotRuntime``)."""

    llm: LLMClient
    sessions: SessionTracker
    version: str

    async def dispatch(self, message: IncomingMessage) -> Reply | None: ...

    async def aclose(self) -> None: ...


MakeRuntime = Callable[[BotConfig, ToolInvoker, LLMClient | None, str], Replaying]
"""(config, tools, llm or None for the config's own, version text) → a runtime."""


@dataclass(frozen=True, slots=True)
class Overrides:
    """What to change about the bot for the replay (None: as configured)."""

    config: BotConfig | None = None
    model: str | None = None
    system_prompt: str | None = None
    tools: ToolMode = "recorded"
    llm: LLMClient | None = None
    """A client to use instead of the config's (tests, scripts); left open afterwards."""


def replay_config(base: BotConfig, overrides: Overrides) -> BotConfig:
    """The bot as the replay runs it."""
    config = overrides.config or base
    update: dict[str, Any] = {}
    if overrides.model:
        update["llm"] = config.llm.model_copy(update={"model": overrides.model})
    if overrides.system_prompt is not None:
        update["system_prompt"] = overrides.system_prompt
    return config.model_copy(update=update) if update else config


def replay_of(key: ConversationKey) -> str | None:
    """The source session of a replay's conversation, else None."""
    if key.platform == REPLAY_PLATFORM and key.channel.startswith(CHANNEL_PREFIX):
        return key.channel[len(CHANNEL_PREFIX):] or None
    return None


async def load(store: Store, session_id: str) -> Recording:
    """The recording of ``session_id`` (an id or a unique prefix or tail)."""
    session = await asyncio.to_thread(store.get_session, session_id)
    if session is None:
        raise StoreError(f"no session '{session_id}'; list them with `opencell sessions`")
    events = await asyncio.to_thread(store.timeline, session["id"])
    return read_recording(session, events)


async def run_replay(base: BotConfig, observability: Observability, make: MakeRuntime,
                     session_id: str, overrides: Overrides = Overrides(), *,
                     store: Store | None = None, spend: Spend | None = None,
                     recording: Recording | None = None) -> ReplayResult:
    """Replay ``session_id`` (see the package docstring)."""
    store = store or observability.store
    if recording is None:
        if store is None:
            raise StoreError("replay reads the session from the store, and this runtime "
                             "records into none; pass store=")
        recording = await load(store, session_id)
    config = replay_config(base, overrides)
    tools = ReplayTools(Toolbox.from_entries(config.tools, bot=config.name), overrides.tools,
                        recording.answers)

    version_text = definition(config, tools.specs())
    # Rate limits guard a live bot from its users; a replay sends its turns back to back.
    running = config.model_copy(update={"middleware": [
        m for m in config.middleware if m.rate_limit is None]})
    runtime = make(running, tools, overrides.llm, version_text)
    meter = Meter(runtime.llm, spend or Spend())
    runtime.llm = meter
    source = recording.session
    key = ConversationKey(bot=config.name, platform=REPLAY_PLATFORM,
                          channel=CHANNEL_PREFIX + source["id"],
                          user=source.get("user_id") or "replay")
    session = runtime.sessions.open(key, user_name=source.get("user_name") or "")
    result = ReplayResult(source["id"], session.id, config.name, config.llm.provider,
                          config.llm.model, overrides.tools, observability.version_of(
                              version_text), source.get("bot_version"))
    try:
        for turn in recording.turns:
            started = time.perf_counter()
            reply = await runtime.dispatch(IncomingMessage(key=key, text=turn.text,
                                                           user_id=key.user))
            latency = (time.perf_counter() - started) * 1000.0
            tally, _ = meter.take()
            failed = reply is None or reply.failed
            result.add(TurnComparison(
                turn.number, turn.text, turn.reply, reply.text if reply else "",
                turn.failed, failed, turn.tally, tally, turn.duration_ms, latency,
                list(turn.tools), tools.take(),
                error=(reply.text if reply else "no reply") if failed else None))
    finally:
        open_session = runtime.sessions.find(key)
        if open_session is not None:
            runtime.sessions.close(open_session, "explicit", success=result.ok)
        if overrides.llm is None:
            await runtime.aclose()
        else:
            await runtime.sessions.stop_sweeper()
    return result
