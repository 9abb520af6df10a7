"""The onion middleware chain: order, short-circuit, built once, errors become replies."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opencell.config import BotConfig, LLMConfig, RateLimitConfig
from opencell.context import TurnContext
from opencell.errors import ConfigError, LLMRateLimitError, MiddlewareError
from opencell.history import ConversationHistory
from opencell.loading import load_bot
from opencell.messages import ConversationKey, IncomingMessage, Reply
from opencell.middleware import (
    ErrorsMiddleware,
    MiddlewareChain,
    RateLimitMiddleware,
)
from opencell.middleware.errors import BUSY
from opencell.observability.observer import Observability
from opencell.types import Handler

BOT = BotConfig(name="t", llm=LLMConfig(provider="offline"))
KEY = ConversationKey(bot="t", platform="test", channel="c", user="u")


def ctx_for(text: str = "hi", **kw: object) -> TurnContext:
    message = IncomingMessage(key=KEY, text=text, user_id="u", **kw)  # type: ignore[arg-type]
    return TurnContext(message=message, bot=BOT, history=ConversationHistory(5))


class Tracer:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> Reply | None:
        self.log.append(f"{self.name}>")
        reply = await call_next(ctx)
        self.log.append(f"<{self.name}")
        return reply


async def test_first_added_is_outermost() -> None:
    log: list[str] = []

    async def handler(ctx: TurnContext) -> Reply:
        log.append("bot")
        return Reply(text="ok")

    chain = MiddlewareChain(handler, [Tracer("a", log), Tracer("b", log)])
    reply = await chain(ctx_for())
    assert reply is not None and reply.text == "ok"
    assert log == ["a>", "b>", "bot", "<b", "<a"]


async def test_adding_after_start_is_an_error() -> None:
    async def handler(ctx: TurnContext) -> Reply:
        return Reply(text="ok")

    chain = MiddlewareChain(handler)
    chain.add(Tracer("a", []))
    await chain(ctx_for())
    with pytest.raises(MiddlewareError, match="already running"):
        chain.add(Tracer("b", []))


async def test_errors_middleware_turns_exceptions_into_polite_replies() -> None:
    async def boom(ctx: TurnContext) -> Reply:
        raise ZeroDivisionError("secret internals")

    ctx = ctx_for()
    reply = await MiddlewareChain(boom, [ErrorsMiddleware()])(ctx)
    assert reply is not None and ctx.failed
    assert reply.text == BOT.error_message
    assert "secret internals" not in reply.text
    assert isinstance(ctx.error, ZeroDivisionError)


async def test_rate_limited_model_gets_a_specific_apology() -> None:
    async def busy(ctx: TurnContext) -> Reply:
        raise LLMRateLimitError("429", provider="claude", status=429)

    reply = await MiddlewareChain(busy, [ErrorsMiddleware()])(ctx_for())
    assert reply is not None and reply.text == BUSY != BOT.error_message


async def test_rate_limit_refills_with_time() -> None:
    now = [0.0]
    calls: list[str] = []

    async def handler(ctx: TurnContext) -> Reply:
        calls.append(ctx.message.text)
        return Reply(text="ok")

    limiter = RateLimitMiddleware(RateLimitConfig(per_user="2/min"), clock=lambda: now[0])
    chain = MiddlewareChain(handler, [limiter])
    texts = [(await chain(ctx_for(str(i)))) for i in range(3)]
    assert [r.text for r in texts if r] == ["ok", "ok", limiter.message]
    assert calls == ["0", "1"]
    now[0] = 30.0  # half a minute refills one message
    reply = await chain(ctx_for("3"))
    assert reply is not None and reply.text == "ok"
    assert calls == ["0", "1", "3"]


def test_user_middleware_from_yaml_gets_its_kwargs(tmp_path: Path) -> None:
    from opencell.runtime import BotRuntime
    from tests.fakes.function_llm import FunctionLLM

    path = tmp_path / "bot.yaml"
    path.write_text("name: mw\nllm: {provider: offline}\nmiddleware:\n"
                    "  - python: tests.core.sample_middleware:Suffix\n"
                    "    kwargs: {suffix: ' (checked)'}\n")
    runtime = BotRuntime(load_bot(path, env={}), llm=FunctionLLM(lambda r: "hi"),
                         observability=Observability.disabled())
    reply = asyncio.run(runtime.dispatch(ctx_for().message))
    assert reply is not None and reply.text == "hi (checked)"


@pytest.mark.parametrize(("target", "kwargs", "fragment"), [
    ("tests.core.sample_middleware:Missing", "", "cannot import"),
    ("tests.core.nope:Suffix", "", "cannot import"),
    ("tests.core.sample_middleware:Suffix", "    kwargs: {wrong: 1}\n", "did not accept"),
    ("tests.core.sample_middleware:NotMiddleware", "", "is not a middleware"),
])
def test_bad_user_middleware_is_a_located_config_error(tmp_path: Path, target: str,
                                                       kwargs: str, fragment: str) -> None:
    from opencell.runtime import BotRuntime

    path = tmp_path / "bot.yaml"
    path.write_text(f"name: mw\nllm: {{provider: offline}}\nmiddleware:\n"
                    f"  - python: {target}\n{kwargs}")
    with pytest.raises(ConfigError) as caught:
        BotRuntime(load_bot(path, env={}), observability=Observability.disabled())
    assert caught.value.located().startswith(f"{path}:")
    assert "middleware[0]" in caught.value.located() and fragment in caught.value.located()
