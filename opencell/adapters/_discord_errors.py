"""What a failed Discord login or gateway connection means, said so a user can fix it."""

from __future__ import annotations

import asyncio

import aiohttp
import discord

from opencell.errors import PlatformError


def login_error(exc: BaseException, name: str) -> BaseException:
    """What a failed login means for bot ``name``, with what to do (or ``exc`` itself)."""
    if isinstance(exc, discord.LoginFailure):
        return PlatformError(
            f"Discord rejected the bot token for bot '{name}' (401): check DISCORD_TOKEN "
            "(or platforms.discord.token); Developer Portal → your app → Bot → Reset Token")
    if isinstance(exc, discord.HTTPException):
        return PlatformError(f"Discord answered {exc.status} while logging in bot "
                             f"'{name}': {exc.text or exc}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return PlatformError(f"could not reach Discord at {discord.http.Route.BASE} for "
                             f"bot '{name}': {exc or type(exc).__name__}")
    return exc


def gateway_error(name: str, ready_timeout: float, task: asyncio.Task[None] | None
                  ) -> PlatformError:
    """Why bot ``name`` did not become ready: ``task`` is the gateway connection if it ended
    (None: it did not end within ``ready_timeout``)."""
    if task is None:
        return PlatformError(f"bot '{name}' did not become ready on Discord within "
                             f"{ready_timeout:g}s; check the network, "
                             "or raise platforms.discord.ready_timeout")
    exc = None if task.cancelled() else task.exception()
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        return PlatformError(
            f"Discord refused bot '{name}' the Message Content intent: enable it in the "
            "Developer Portal → your app → Bot → Privileged Gateway Intents")
    if isinstance(exc, discord.ConnectionClosed) and exc.code == 4004:
        return PlatformError(f"Discord rejected the bot token for bot '{name}' at the "
                             "gateway (4004): check DISCORD_TOKEN")
    if isinstance(exc, discord.ConnectionClosed):
        return PlatformError(f"Discord closed the gateway for bot '{name}' "
                             f"(code {exc.code}): {exc.reason or 'no reason given'}")
    what = f"{type(exc).__name__}: {exc}" if exc else "it closed"
    return PlatformError(f"the Discord gateway connection for bot '{name}' failed: {what}")
