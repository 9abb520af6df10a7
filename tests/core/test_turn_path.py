"""One turn, each thing done once: ordered sends on every platform, one fill, one failure flag."""

from __future__ import annotations

import asyncio

from opencell.adapters.base import Adapter
from opencell.config import BotConfig, LLMConfig
from opencell.context import TurnContext
from opencell.errors import ToolExecutionError
from opencell.messages import ConversationKey, IncomingMessage, Reply
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.types import Deliver, Handler
from tests.fakes.adapter import RecordingAdapter
from tests.fakes.function_llm import FunctionLLM
from tests.fakes.waiting import until

BOT = BotConfig(name="t", llm=LLMConfig(provider="offline"))
KEY = ConversationKey(bot="t", platform="test", channel="c", user="u")


def message(text: str, number: int) -> IncomingMessage:
    return IncomingMessage(key=KEY, text=text, user_id="u", message_id=str(number))


class SlowFirstSend(Adapter):
    """A platform whose first send hangs until released; records the order of sends."""

    platform = "test"

    def __init__(self, bot: BotConfig) -> None:
        super().__init__(bot)
        self.sent: list[Reply] = []
        self.calls = 0
        self.release = asyncio.Event()

    async def start(self, deliver: Deliver) -> None:
        return None

    async def stop(self) -> None:
        self.finished.set()

    async def send(self, reply: Reply) -> None:
        self.calls += 1
        if self.calls == 1:
            await self.release.wait()
        self.sent.append(reply)


async def test_a_slow_send_keeps_the_next_reply_of_the_conversation_behind_it() -> None:
    llm = FunctionLLM(lambda request: f"re: {request.messages[-1].content}")
    runtime = BotRuntime(BOT, llm=llm, observability=Observability.disabled())
    adapter = SlowFirstSend(BOT)
    first = asyncio.create_task(adapter.handle(message("one", 1), runtime.dispatch))
    await until(lambda: len(llm.requests) == 1, "the first turn's model call")
    second = asyncio.create_task(adapter.handle(message("two", 2), runtime.dispatch))
    # Queued behind the first turn, or (were sends not ordered) already answered.
    await until(lambda: len(llm.requests) == 2 or (
        KEY in runtime._turnstiles and runtime._turnstiles[KEY].users == 2), "the second turn")
    adapter.release.set()
    await asyncio.gather(first, second)
    assert [(r.text, r.in_reply_to, r.key) for r in adapter.sent] == [
        ("re: one", "1", KEY), ("re: two", "2", KEY)]
    await runtime.aclose()


async def test_a_bare_reply_is_filled_in_once_and_carries_the_turns_failure() -> None:
    class Bare:
        async def __call__(self, ctx: TurnContext, call_next: Handler) -> Reply | None:
            if ctx.message.text == "skip":
                return Reply(text="short-circuited")
            return await call_next(ctx)

    def play(request: object) -> str:
        raise RuntimeError("model down")

    runtime = BotRuntime(BOT, llm=FunctionLLM(play), middleware=[Bare()],
                         observability=Observability.disabled())
    skipped = await runtime.dispatch(message("skip", 7))
    assert skipped == Reply(text="short-circuited", key=KEY, in_reply_to="7", failed=False)
    failed = await runtime.dispatch(message("hi", 8))
    assert failed is not None and failed.failed and failed.key == KEY
    assert failed.in_reply_to == "8" and failed.text == BOT.error_message
    await runtime.aclose()


async def test_a_broken_tool_fails_the_turn_through_the_one_flag() -> None:
    from opencell.llm.base import ToolCall, ToolSpec
    from opencell.tools import ToolResult

    class BrokenTools:
        def specs(self, *, user_id: str | None = None) -> list[ToolSpec]:
            return [ToolSpec(name="lookup", description="", parameters={})]

        async def invoke(self, call: ToolCall, *, user_id: str) -> ToolResult:
            return ToolResult(call_id=call.id, name=call.name, content="lookup broke",
                              is_error=True, error=ToolExecutionError("lookup broke",
                                                                      tool=call.name),
                              duration_ms=1.0)

    calls = iter([[ToolCall(id="c1", name="lookup", arguments={})], []])

    def play(request: object) -> object:
        from tests.fakes.function_llm import answer

        return answer("done", calls=next(calls))

    agent = BotConfig(name="t", type="agent", llm=LLMConfig(provider="offline"))
    obs = Observability.disabled()
    runtime = BotRuntime(agent, llm=FunctionLLM(play), tools=BrokenTools(), observability=obs)
    reply = await runtime.dispatch(message("look it up", 9))
    assert reply is not None and reply.text == "done" and reply.failed
    session = runtime.session_for(KEY)
    assert session is not None and session.last_failed
    await runtime.aclose()


async def test_a_bot_asked_inside_a_turn_does_not_answer_through_its_adapter(
        isolated_store: str) -> None:
    helper = BotRuntime(BotConfig(name="helper", llm=LLMConfig(provider="offline")),
                        llm=FunctionLLM(lambda request: "helper says hi"),
                        observability=Observability.disabled())

    class AskHelper:
        async def __call__(self, ctx: TurnContext, call_next: Handler) -> Reply | None:
            await helper.start_session("assistant")
            ctx.extras["helper"] = await helper.process_message("hello?")
            return await call_next(ctx)

    runtime = BotRuntime(BOT, llm=FunctionLLM(lambda request: "main answer"),
                         middleware=[AskHelper()], observability=Observability.disabled())
    adapter = RecordingAdapter(BOT)
    reply = await adapter.handle(message("hi", 1), runtime.dispatch)
    assert reply is not None and reply.text == "main answer"
    assert [(r.text, r.key) for r in adapter.sent] == [("main answer", KEY)]
    await helper.aclose()
    await runtime.aclose()


async def test_a_failed_reply_from_a_middleware_fails_the_turn() -> None:
    class Refuse:
        async def __call__(self, ctx: TurnContext, call_next: Handler) -> Reply | None:
            return Reply(text="nope", failed=True)

    runtime = BotRuntime(BOT, llm=FunctionLLM(lambda request: "unused"), middleware=[Refuse()],
                         observability=Observability.disabled())
    reply = await runtime.dispatch(message("x", 3))
    assert reply is not None and reply.failed and reply.key == KEY
    session = runtime.session_for(KEY)
    assert session is not None and session.last_failed
    await runtime.aclose()


async def test_a_reply_the_platform_refused_fails_the_session() -> None:
    class Refusing(RecordingAdapter):
        async def send(self, reply: Reply) -> None:
            raise RuntimeError("channel not found")

    runtime = BotRuntime(BOT, llm=FunctionLLM(lambda request: "fine"),
                         observability=Observability.disabled())
    adapter = Refusing(BOT)
    await adapter.handle(message("x", 4), runtime.dispatch)
    session = runtime.session_for(KEY)
    assert session is not None and session.last_failed and not session.busy
    await runtime.aclose()


async def test_a_recorded_answer_keeps_every_field_and_carries_its_cost() -> None:
    import dataclasses

    from opencell.context import current_turn
    from opencell.llm.base import LLMRequest, LLMResponse, ToolCall, Usage
    from opencell.observability.instrument import RecordingLLM
    from opencell.sessions import SessionTracker

    original = LLMResponse(text="t", usage=Usage(3, 4), model="m",
                           tool_calls=(ToolCall(id="c", name="n", arguments={"a": 1}),),
                           stop_reason="tool_use", request_id="r", raw_finish={"x": 1})
    wrapped = RecordingLLM(FunctionLLM(lambda request: original), Observability.disabled())
    tracker = SessionTracker(history_turns=1, idle_timeout=60, bot_type="conversational")
    ctx = TurnContext(message=message("q", 1), bot=BOT, session=tracker.acquire(KEY))
    token = current_turn.set(ctx)
    try:
        answer = await wrapped.complete(LLMRequest(system="", messages=(), max_tokens=5))
    finally:
        current_turn.reset(token)
    assert answer.priced and answer.cost_usd == 0.0
    assert dataclasses.replace(answer, priced=False, cost_usd=None) == original
