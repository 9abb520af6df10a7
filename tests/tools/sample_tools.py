"""Tools of "your own" that the tools tests load through ``python: tests.tools.sample_tools:…``."""

from __future__ import annotations

import asyncio
import threading

from pydantic import BaseModel, ConfigDict

from opencell.tools import ToolContext, tool

release = threading.Event()
"""Set by tests to let ``block`` return."""

seen = {"naps_cancelled": 0, "blocks_started": 0, "blocks_returned": 0}
"""What ``nap`` and ``block`` went through: evidence of a timeout, instead of elapsed time."""


@tool
def shout(text: str) -> str:
    """Say it louder.

    Args:
        text: What to say.
    """
    return text.upper() + "!"


def whisper(text: str, times: int = 1) -> str:
    """Say it quietly."""
    return " ".join([text.lower()] * times)


def thread_id() -> int:
    """The id of the thread this runs in."""
    return threading.get_ident()


async def loop_thread_id() -> int:
    """The id of the thread this coroutine runs in."""
    return threading.get_ident()


def explode(reason: str = "boom") -> str:
    """Always fails."""
    raise ValueError(reason)


async def own_timeout() -> str:
    """Raises TimeoutError itself, as a failing network call would."""
    raise TimeoutError("upstream took too long")


async def nap(seconds: float = 10.0) -> str:
    """Sleeps."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        seen["naps_cancelled"] += 1
        raise
    return "rested"


def block() -> str:
    """Blocks its worker thread until ``release`` is set."""
    seen["blocks_started"] += 1
    release.wait(60)
    seen["blocks_returned"] += 1
    return "released"


@tool(timeout=0.05)
async def hurried() -> str:
    """Has its own short default timeout."""
    await asyncio.sleep(5)
    return "late"


def structured() -> dict[str, object]:
    """Returns something that is not a string."""
    return {"n": 1, "ok": True, "when": __import__("datetime").date(2024, 5, 1)}


class GreetOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    greeting: str = "hello"


@tool(options=GreetOptions)
def greet(name: str, ctx: ToolContext) -> str:
    """Greets someone, showing what the context carries."""
    options = ctx.options_as(GreetOptions)
    return f"{options.greeting}, {name} ({ctx.bot}/{ctx.user_id}/{ctx.call_id}/{ctx.tool})"


NOT_A_TOOL = 42
