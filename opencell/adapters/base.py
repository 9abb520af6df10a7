"""The small contract every platform adapter fulfils; platform types never leave adapters/."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from dataclasses import replace
from typing import ClassVar

from opencell.config import BotConfig
from opencell.delivery import Delivery, current_delivery
from opencell.errors import UnsupportedPlatformError
from opencell.messages import IncomingMessage, Reply
from opencell.types import Deliver

log = logging.getLogger("opencell.adapters")


class Adapter(ABC):
    """Connects one bot to one platform.

    ``start(deliver)`` begins receiving and returns once connected; each incoming message is
    translated to an ``IncomingMessage`` and passed to ``handle(message, deliver)``, which
    gets the reply and sends it with ``send``. ``finished`` is set when the platform side has
    ended for good (a console reaching end of input); network adapters only finish when
    stopped. ``drain`` waits for turns in flight, so a graceful stop still sends their replies.
    """

    platform: ClassVar[str]

    def __init__(self, bot: BotConfig) -> None:
        self.bot = bot
        self.finished = asyncio.Event()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def handle(self, message: IncomingMessage, deliver: Deliver) -> Reply | None:
        """Get the reply to one message and send it; in flight until it is sent.

        A failure to send is logged, never raised: one bad channel must not stop the adapter.
        """
        self._in_flight += 1
        self._idle.clear()
        # The turn's record follows what really went out (see opencell/delivery.py).
        delivery = Delivery()
        token = current_delivery.set(delivery)
        try:
            reply = await deliver(message)
            if reply is not None and reply.key is None:  # e.g. a middleware's bare Reply("…")
                reply = replace(reply, key=message.key,
                                in_reply_to=reply.in_reply_to or message.message_id)
            if reply is not None and reply.text:
                try:
                    await self.send(reply)
                except Exception as exc:  # noqa: BLE001 - keep serving other conversations
                    log.warning("send failed platform=%s bot=%s conversation=%s error=%s: %s",
                                self.platform, self.bot.name, message.key,
                                type(exc).__name__, exc)
                    delivery.settle("send_failed", error=exc)
                else:
                    delivery.settle("sent", text=reply.text)
            return reply
        except asyncio.CancelledError:
            delivery.settle("cut_off")
            raise
        finally:
            current_delivery.reset(token)
            delivery.settle("nothing")  # no reply, or the turn raised: nothing was sent
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    async def drain(self, timeout: float) -> bool:
        """Wait until no turn is in flight (True) or ``timeout`` passes (False)."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @abstractmethod
    async def start(self, deliver: Deliver) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def send(self, reply: Reply) -> None: ...

    def unsupported(self, feature: str) -> UnsupportedPlatformError:
        """The error for a feature this platform does not offer, naming the platform."""
        return UnsupportedPlatformError(f"{self.platform} does not support {feature}")
