"""BotRuntime: one bot's turns — conversational or agent — behind its middleware chain."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from opencell.budgets.enforcement import BudgetedLLM
from opencell.config import BotConfig
from opencell.context import TurnContext
from opencell.delivery import current_delivery
from opencell.errors import OpenCellError
from opencell.llm import create_llm
from opencell.llm.base import ChatMessage, LLMClient, LLMRequest, LLMResponse, ToolSpec
from opencell.llm.streaming import stream_or_complete
from opencell.messages import ConversationKey, IncomingMessage, Reply
from opencell.middleware import (
    ErrorsMiddleware,
    MiddlewareChain,
    SessionMiddleware,
    user_middleware,
)
from opencell.middleware.cluster import ClusterTurns
from opencell.middleware.feedback import FeedbackCommand
from opencell.observability.instrument import RecordingLLM, RecordingTools
from opencell.observability.observer import Observability
from opencell.observability.versions import definition
from opencell.records import valid_text
from opencell.replay import Overrides, ReplayResult, Spend, ToolMode, run_replay
from opencell.replay.runner import replay_of
from opencell.sessions import EndReason, Session, SessionTracker
from opencell.tools import Toolbox, ToolInvoker
from opencell.types import Clock, Middleware

if TYPE_CHECKING:
    from opencell.budgets import BudgetLedger
    from opencell.store.store import Store

EMPTY_ANSWER = "(the model returned an empty answer)"


@dataclass(slots=True)
class _Turnstile:
    """Keeps one conversation's messages in arrival order; asyncio.Lock is FIFO."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class BotRuntime:
    """Runs one bot: builds its chain once and answers messages through it.

    Messages of one conversation are handled — and, under an adapter, their replies sent —
    in arrival order; different conversations run concurrently. ``start()`` starts the idle
    sweeper and ``aclose()`` closes the open sessions (the App calls both).
    ``start_session`` / ``process_message`` / ``end_session`` drive the same chain from
    Python, for scripts and tests.

    The chain is: sessions → errors → ``/feedback`` → ``middleware`` → the bot's YAML
    middleware → the bot.
    Without ``observability`` the process default is used (the store at
    ``OPENCELL_DATABASE_URL``), the same one ``get_agentops()`` records into.
    With ``budgets`` every model call is first reserved against the ledger's limits (see
    ``opencell.budgets``); without it nothing is checked.
    """

    def __init__(
        self,
        config: BotConfig,
        *,
        llm: LLMClient | None = None,
        tools: ToolInvoker | None = None,
        middleware: Sequence[Middleware] = (),
        observability: Observability | None = None,
        env: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        budgets: BudgetLedger | None = None,
        version: str | None = None,
    ) -> None:
        self.config = config
        self._env = env
        if observability is None:
            from opencell.observability.facade import default_observability

            observability = default_observability()
        self.observability = observability
        raw_llm = llm if llm is not None else create_llm(config.llm, bot=config.name, env=env)
        self.llm: LLMClient = RecordingLLM(raw_llm, observability)
        if budgets is not None:
            # Outside the recorder: a blocked call was never made, so it is no llm_call.
            self.llm = BudgetedLLM(self.llm, budgets, config, observability)
        raw_tools = tools if tools is not None else Toolbox.from_entries(config.tools,
                                                                         bot=config.name)
        self.toolbox = raw_tools if isinstance(raw_tools, Toolbox) else None
        """The bot's toolbox, when it was built from its YAML (started and closed here)."""
        self.tools: ToolInvoker = RecordingTools(raw_tools, observability)
        self.version = version if version is not None else definition(config,
                                                                       raw_tools.specs())
        """The bot's version text, recorded with each session (``observability.versions``)."""
        session = config.session
        tracker_clock = {"clock": clock} if clock is not None else {}
        self.sessions = SessionTracker(
            history_turns=session.history_turns, idle_timeout=session.idle_timeout,
            bot_type=config.type, tags=(*observability.default_tags, *config.tags),
            on_open=self._opened, on_close=self._session_closed,
            **tracker_clock)
        self.cluster = ClusterTurns.for_store(observability, self.sessions)
        """Turns shared with other processes (a PostgreSQL store), else None."""
        # The bot's own messages (and other bots', per each platform's ignore_bots) are
        # dropped by the adapters, before a turn exists.
        self.chain = MiddlewareChain(self.handle, [
            SessionMiddleware(self.sessions, observability, end_command=session.end_command),
            ErrorsMiddleware(),
            FeedbackCommand(config.feedback, observability.feedback),
            *middleware,
            *user_middleware(config, clock=clock),
        ])
        self.chain.build()
        self._turnstiles: dict[ConversationKey, _Turnstile] = {}
        self._api_key: ConversationKey | None = None

    @property
    def name(self) -> str:
        return self.config.name

    def _opened(self, session: Session, user_name: str) -> None:
        self.observability.session_opened(session, user_name, version=self.version,
                                          replay_of=replay_of(session.key))

    # ------------------------------------------------------------ dispatch

    async def start(self) -> None:
        """Start expiring idle sessions and connect the bot's MCP servers (the App calls
        this; so does ``start_session``)."""
        self.sessions.start_sweeper()
        if self.toolbox is not None:
            await self.toolbox.start()

    async def dispatch(self, message: IncomingMessage) -> Reply | None:
        """Run one message through the chain; the reply, or None if it was dropped.

        Under an adapter (a ``Delivery`` is current) the reply is also sent here, still in
        the conversation's turn, so replies go out in the order their messages came in.
        """
        key = message.key
        if not message.text.isascii():  # a lone surrogate from a platform: U+FFFD, once, here
            text = valid_text(message.text)
            if text is not message.text:
                message = replace(message, text=text)
        turnstile = self._turnstiles.get(key)
        if turnstile is None:
            turnstile = self._turnstiles[key] = _Turnstile()
        turnstile.users += 1
        try:
            async with turnstile.lock:  # FIFO: one conversation's messages stay in order
                if self.cluster is None:
                    return await self._turn(message)
                async with self.cluster.turn(message) as fresh:  # and across processes
                    if not fresh:
                        return None  # another process answered it (a retry, a duplicate)
                    return await self._turn(message)
        finally:
            turnstile.users -= 1
            if turnstile.users == 0:
                del self._turnstiles[key]

    async def _turn(self, message: IncomingMessage) -> Reply | None:
        delivery = current_delivery.get()
        if delivery is not None and not delivery.claim(message):
            delivery = None  # another turn's (this bot was asked from inside it)
        ctx = TurnContext(message=message, bot=self.config, delivery=delivery)
        if delivery is None:
            reply = await self.chain(ctx)
        else:  # turns started from inside this one must not see it
            token = current_delivery.set(None)
            try:
                reply = await self.chain(ctx)
            finally:
                current_delivery.reset(token)
        if reply is None:
            return None
        reply = reply.answering(message, failed=ctx.failed)
        if delivery is not None:
            await delivery.send(reply)
        return reply

    def _session_closed(self, session: Session, reason: EndReason, success: bool,
                        metadata: dict[str, Any]) -> None:
        cluster = getattr(self, "cluster", None)
        if cluster is None or cluster.should_end(session, reason):
            self.observability.session_closed(session, reason, success, metadata)

    def session_for(self, key: ConversationKey) -> Session | None:
        """The conversation's open session, if any."""
        return self.sessions.find(key)

    # ------------------------------------------------------------ the bot itself

    async def handle(self, ctx: TurnContext) -> Reply:
        """The centre of the onion: ask the model (and tools), return the answer."""
        turn = [ChatMessage(role="user", content=ctx.message.text)]
        if self.config.type == "agent":
            text = await self._agent_turn(ctx, turn)
        else:
            response = await self._ask(ctx, self._request(ctx, turn, ()))
            text = response.text or EMPTY_ANSWER
            turn.append(ChatMessage(role="assistant", content=text))
        ctx.history.add_turn(turn)
        return Reply(text=text)

    async def _agent_turn(self, ctx: TurnContext, turn: list[ChatMessage]) -> str:
        specs = self.tools.specs(user_id=ctx.message.user_id)
        for _ in range(self.config.max_iterations):
            response = await self._ask(ctx, self._request(ctx, turn, specs))
            if not response.tool_calls:
                text = response.text or EMPTY_ANSWER
                turn.append(ChatMessage(role="assistant", content=text))
                return text
            turn.append(ChatMessage(role="assistant", content=response.text,
                                    tool_calls=response.tool_calls))
            stream = ctx.delivery.stream if ctx.delivery is not None else None
            if stream is not None:  # that text was a step, not the answer
                names = ", ".join(dict.fromkeys(c.name for c in response.tool_calls))
                await stream.status(f"_using {names}…_")
            # One at a time: tools may depend on each other's side effects, and the order of
            # results then matches the order the model asked in.
            for call in response.tool_calls:
                result = await self.tools.invoke(call, user_id=ctx.message.user_id)
                # A tool's output or error may quote a credential (even the bot's own key);
                # the model would repeat it to the user, so it gets the redacted text (only
                # redacted: the recorder's capping of stored text is not for the model).
                content = valid_text(self.observability.redactor.redact(result.content))
                turn.append(ChatMessage(role="tool", content=content,
                                        tool_call_id=result.call_id, tool_name=result.name,
                                        is_error=result.is_error,
                                        attachments=result.attachments))
        text = (f"I couldn't finish this within {self.config.max_iterations} steps. "
                "Please try a simpler request.")
        turn.append(ChatMessage(role="assistant", content=text))
        return text

    async def _ask(self, ctx: TurnContext, request: LLMRequest) -> LLMResponse:
        """One model call: streamed into the reply when the turn's delivery streams."""
        stream = ctx.delivery.stream if ctx.delivery is not None else None
        if stream is None:
            return await self.llm.complete(request)
        return await stream_or_complete(self.llm, request, stream.push)

    def _request(self, ctx: TurnContext, turn: list[ChatMessage],
                 tools: Sequence[ToolSpec]) -> LLMRequest:
        llm = self.config.llm
        return LLMRequest(system=self.config.system_prompt,
                          messages=[*ctx.history.messages(), *turn],
                          max_tokens=llm.max_tokens, tools=tools, temperature=llm.temperature)

    # ------------------------------------------------------------ the Python API

    async def start_session(self, user_id: str, platform: str = "api") -> str:
        """Begin a conversation with ``user_id``; returns its session id."""
        await self.end_session()
        self._api_key = key = ConversationKey(bot=self.name, platform=platform,
                                              channel=f"{platform}:{user_id}", user=user_id)
        await self.start()
        earlier = self.sessions.find(key)  # e.g. the same user over another path
        if earlier is not None:
            self.sessions.close(earlier, "explicit")
        return self.sessions.open(key, user_name=user_id).id

    async def process_message(self, text: str) -> str:
        """Send ``text`` as the session's user and return the bot's answer."""
        if self._api_key is None:
            raise OpenCellError("call start_session(user_id, platform) before process_message")
        key = self._api_key
        reply = await self.dispatch(IncomingMessage(key=key, text=text, user_id=key.user))
        return reply.text if reply else ""

    async def end_session(self, success: bool = True) -> None:
        """End the conversation started by ``start_session`` (status from ``success``)."""
        if self._api_key is not None:
            session = self.sessions.find(self._api_key)
            if session is not None:
                self.sessions.close(session, "explicit", success=success)
            self._api_key = None

    async def replay(self, session_id: str, *, config: BotConfig | None = None,
                     model: str | None = None, system_prompt: str | None = None,
                     tools: ToolMode = "recorded", llm: LLMClient | None = None,
                     max_usd: float | None = None, spend: Spend | None = None,
                     store: Store | None = None) -> ReplayResult:
        """Rerun a recorded session's user turns against this bot, or a changed one.

        ``config`` replaces the bot's YAML, ``model`` its model, ``system_prompt`` its
        prompt; ``tools`` answers tool calls from the recording (``recorded``), runs them
        (``live``, under the bot's tool policy) or refuses them (``deny``). The replay is a
        session of its own (platform ``replay``, linked to its source) and is capped at
        ``max_usd`` (or shares ``spend`` with other replays). Returns per-turn comparisons
        and totals; raises ``StoreError`` for an unknown session or one recorded without
        content.
        """
        def make(cfg: BotConfig, invoker: ToolInvoker, client: LLMClient | None,
                 version: str) -> BotRuntime:
            return BotRuntime(cfg, llm=client, tools=invoker, observability=self.observability,
                              env=self._env, version=version)

        overrides = Overrides(config=config, model=model, system_prompt=system_prompt,
                              tools=tools, llm=llm)
        return await run_replay(self.config, self.observability, make, session_id, overrides,
                                store=store, spend=spend or Spend(max_usd))

    async def hand_over(self, platforms: Collection[str]) -> int:
        """A graceful stop with other processes on the store (PostgreSQL): leave the open
        sessions of ``platforms``' conversations open for whichever process gets their next
        message (``ClusterTurns.hand_over``) rather than ending them in ``aclose``. How many
        were handed over; 0 with a store of one process (SQLite)."""
        if self.cluster is None:
            return 0
        await self.sessions.stop_sweeper()
        return await self.cluster.hand_over(platforms)

    async def aclose(self) -> None:
        """Close open sessions as ``shutdown`` and release the model client."""
        await self.sessions.stop_sweeper()
        self.sessions.close_all("shutdown")
        if self.toolbox is not None:
            await self.toolbox.aclose()
        if self.cluster is not None:
            self.cluster.close()
        await self.llm.aclose()
