"""The small contract every platform adapter fulfils; platform types never leave adapters/."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

from opencell.config import BotConfig
from opencell.delivery import Delivery, current_delivery
from opencell.errors import UnsupportedPlatformError
from opencell.messages import ConversationKey, IncomingMessage, Reply
from opencell.observability.feedback import FeedbackBook, TurnRef
from opencell.streaming import EDIT_INTERVAL, ReplyStream, StreamSurface
from opencell.types import Deliver

if TYPE_CHECKING:
    from opencell.store import Store

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
    stream_interval: ClassVar[float] = EDIT_INTERVAL
    """Seconds between two updates of a streamed reply on this platform."""
    shared: ClassVar[bool] = False
    """Whether a conversation's next message may reach another process serving the same bot
    (Slack behind a load balancer, Discord shards changing hands). A graceful stop then hands
    its sessions over (PostgreSQL) rather than ending them."""

    def __init__(self, bot: BotConfig) -> None:
        self.bot = bot
        self.finished = asyncio.Event()
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.accepting = True
        """False once a graceful stop has begun (``stop_accepting``)."""
        self.feedback: FeedbackBook | None = None
        """Where replies are remembered and reactions recorded (the App sets it)."""

    def use_store(self, store: Store | None) -> None:
        """The App's store, for adapters that coordinate through it (Discord shard claims)."""
        del store  # most adapters need none

    def stop_accepting(self) -> None:
        """A graceful stop begins: take no new messages. Where the platform can redeliver
        (Slack HTTP mode: a non-2xx answer makes Slack retry, and a load balancer sends the
        retry to another worker) they are refused rather than acknowledged and dropped."""
        self.accepting = False

    async def handle(self, message: IncomingMessage, deliver: Deliver) -> Reply | None:
        """Get the reply to one message, sent with ``send``; in flight until it is sent.

        The runtime sends it through the message's :class:`~opencell.delivery.Delivery`, in
        the conversation's order; a failure to send is logged, never raised. This counter is
        the one ``drain`` (a graceful stop) waits on.
        """
        self._in_flight += 1
        self._idle.clear()
        # The turn's record follows what really went out (see opencell/delivery.py).
        where = f"platform={self.platform} bot={self.bot.name} conversation={message.key}"
        stream = None
        if self.bot.stream:
            surface = self.stream_surface(message)
            if surface is not None:
                stream = ReplyStream(surface, interval=self.stream_interval, where=where)
        delivery = Delivery(self.send, where, answers=(message.key, message.message_id),
                            stream=stream)
        token = current_delivery.set(delivery)
        try:
            reply = await deliver(message)
            if reply is not None and delivery.outcome is None:  # ``deliver`` did not send it
                reply = reply.answering(message)
                await delivery.send(reply)
            return reply
        except asyncio.CancelledError:
            delivery.settle("cut_off")
            raise
        finally:
            current_delivery.reset(token)
            if stream is not None:
                await stream.close()
            delivery.settle("nothing")
            self._remember(message, delivery)  # no reply, or the turn raised: nothing was sent
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    def _remember(self, message: IncomingMessage, delivery: Delivery) -> None:
        """Remember which turn the posted reply answered (feedback, thread follow-ups)."""
        book, command = self.feedback, self.bot.feedback.command
        if book is None or delivery.outcome != "sent" or delivery.session_id is None:
            return
        if command and message.text.strip().startswith(command):
            return  # the answer to /feedback is not a turn anyone rates
        key = message.key
        book.remember(TurnRef(session_id=delivery.session_id, bot=self.bot.name,
                              turn=message.message_id, platform=key.platform,
                              channel=self.reply_channel(key), thread=key.thread,
                              user_id=key.user),
                      delivery.message_ids)

    def reply_channel(self, key: ConversationKey) -> str:
        """The channel id the bot's replies in ``key``'s conversation are posted in (what a
        reaction event names)."""
        return key.channel

    async def reacted(self, *, channel: str, message_id: str, user_id: str, reaction: str,
                      added: bool) -> None:
        """A person added or removed ``reaction`` on a message in ``channel``: feedback if
        the message is one of the bot's replies and the reaction is configured. Never
        raises."""
        book = self.feedback
        if book is None:
            return
        try:
            await book.reaction(bot=self.bot.name, platform=self.platform, channel=channel,
                                message_id=message_id, user_id=user_id, reaction=reaction,
                                added=added, reactions=self.bot.feedback.reactions)
        except Exception as exc:  # noqa: BLE001 - feedback never stops the adapter
            log.warning("reaction not recorded platform=%s bot=%s error=%s: %s",
                        self.platform, self.bot.name, type(exc).__name__, exc)

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
    async def send(self, reply: Reply) -> Sequence[str] | None:
        """Post ``reply``; returns the platform ids of the posted messages (or None)."""

    def stream_surface(self, message: IncomingMessage) -> StreamSurface | None:
        """Where a streamed answer to ``message`` appears as it is written; None (the
        default) when this platform cannot show a growing reply: it is then sent whole."""
        return None

    def unsupported(self, feature: str) -> UnsupportedPlatformError:
        """The error for a feature this platform does not offer, naming the platform."""
        return UnsupportedPlatformError(f"{self.platform} does not support {feature}")
