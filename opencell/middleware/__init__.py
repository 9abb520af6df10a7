"""Built-in middleware and the loader for the ``middleware:`` list of a bot's YAML."""

from __future__ import annotations

import importlib
import inspect
from typing import Any, cast

from opencell.config import BotConfig, MiddlewareEntry
from opencell.middleware.chain import MiddlewareChain
from opencell.middleware.errors import ErrorsMiddleware
from opencell.middleware.rate_limit import RateLimitMiddleware
from opencell.middleware.sessions import SessionMiddleware
from opencell.types import Clock, Middleware


def import_object(path: str) -> Any:
    """``package.module:attr.sub`` → the object; ImportError/AttributeError say which part."""
    module_name, _, attr = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def user_middleware(bot: BotConfig, *, clock: Clock | None = None) -> list[Middleware]:
    """Instantiate the bot's ``middleware:`` entries, in YAML order."""
    built: list[Middleware] = []
    for index, entry in enumerate(bot.middleware):
        built.append(_build(entry, bot, index, clock))
    return built


def _build(entry: MiddlewareEntry, bot: BotConfig, index: int, clock: Clock | None) -> Middleware:
    if entry.rate_limit is not None:
        return (RateLimitMiddleware(entry.rate_limit, clock=clock) if clock
                else RateLimitMiddleware(entry.rate_limit))
    path = entry.python or ""
    try:
        obj = import_object(path)
    except (ImportError, AttributeError) as exc:
        raise bot.locate(("middleware", index, "python"),
                         f"cannot import '{entry.python}': {exc}") from None
    try:
        instance = obj(**entry.kwargs) if inspect.isclass(obj) else obj
    except TypeError as exc:
        raise bot.locate(("middleware", index, "kwargs"),
                         f"{entry.python} did not accept these kwargs: {exc}") from None
    is_async = inspect.iscoroutinefunction(instance) or (
        callable(instance) and inspect.iscoroutinefunction(type(instance).__call__))
    if not is_async:
        raise bot.locate(("middleware", index, "python"),
                         f"{entry.python} is not a middleware: it needs "
                         "`async def __call__(self, ctx, call_next)`")
    return cast(Middleware, instance)


__all__ = [
    "ErrorsMiddleware", "MiddlewareChain", "RateLimitMiddleware", "SessionMiddleware",
    "import_object", "user_middleware",
]
