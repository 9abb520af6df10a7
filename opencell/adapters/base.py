"""The small contract every platform adapter fulfils; platform types never leave adapters/."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import ClassVar

from opencell.config import BotConfig
from opencell.errors import UnsupportedPlatformError
from opencell.messages import Reply
from opencell.types import Deliver


class Adapter(ABC):
    """Connects one bot to one platform.

    ``start(deliver)`` begins receiving and returns once connected; each incoming message is
    translated to an ``IncomingMessage`` and handed to ``deliver``, whose reply the adapter
    sends with ``send``. ``finished`` is set when the platform side has ended for good (a
    console reaching end of input); network adapters only finish when stopped.
    """

    platform: ClassVar[str]

    def __init__(self, bot: BotConfig) -> None:
        self.bot = bot
        self.finished = asyncio.Event()

    @abstractmethod
    async def start(self, deliver: Deliver) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    async def send(self, reply: Reply) -> None: ...

    def unsupported(self, feature: str) -> UnsupportedPlatformError:
        """The error for a feature this platform does not offer, naming the platform."""
        return UnsupportedPlatformError(f"{self.platform} does not support {feature}")
