"""A fake platform adapter: records every reply it is asked to send (the fake at that boundary)."""

from __future__ import annotations

from opencell.adapters.base import Adapter
from opencell.config import BotConfig
from opencell.messages import Reply
from opencell.types import Deliver


class RecordingAdapter(Adapter):
    """A platform that only records what is sent to it; ``platform`` names it."""

    platform = "test"

    def __init__(self, bot: BotConfig, platform: str | None = None) -> None:
        super().__init__(bot)
        if platform is not None:
            self.platform = platform  # type: ignore[misc]
        self.sent: list[Reply] = []

    async def start(self, deliver: Deliver) -> None:
        return None

    async def stop(self) -> None:
        self.finished.set()

    async def send(self, reply: Reply) -> None:
        self.sent.append(reply)
