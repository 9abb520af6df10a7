"""The terminal adapter: stdin lines in, replies out; interactive on a TTY, plain when piped.

A terminal can send any bytes: input is read as bytes and decoded with invalid sequences
replaced (U+FFFD), whatever ``PYTHONIOENCODING`` says, so a bad byte is answered like any
other line and can never end the chat; output that the terminal's encoding cannot hold is
written with replacements rather than lost.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import TextIO

from rich.console import Console

from opencell.adapters.base import Adapter
from opencell.config import BotConfig
from opencell.messages import ConversationKey, IncomingMessage, Reply
from opencell.records import valid_text
from opencell.types import Deliver

log = logging.getLogger("opencell.console")


class ConsoleAdapter(Adapter):
    """One conversation with one local user.

    Lines are read by a daemon thread (a blocked read must never keep the process alive) and
    answered one at a time, in order. At end of input the adapter is ``finished``.
    """

    platform = "console"
    stream_interval = 0.0  # a terminal takes every piece as it comes

    def __init__(self, bot: BotConfig, *, user: str | None = None,
                 stdin: TextIO | None = None, stdout: TextIO | None = None) -> None:
        super().__init__(bot)
        settings = bot.platforms.console
        self.user = user or (settings.user if settings else "you")
        self.prompt = settings.prompt if settings else "you> "
        self._stdin = stdin or sys.stdin
        self._stdout = stdout or sys.stdout
        self.interactive = self._stdin.isatty() and self._stdout.isatty()
        self._console = Console(file=self._stdout, highlight=False)
        self.key = ConversationKey(bot=bot.name, platform="console", channel="console",
                                   user=self.user)
        self._task: asyncio.Task[None] | None = None
        self._counter = 0
        self._surface: _ConsoleSurface | None = None

    async def start(self, deliver: Deliver) -> None:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._read_lines, args=(loop, queue), daemon=True,
                         name="opencell-console-stdin").start()
        if self.interactive:
            self._console.print(f"[bold]{self.bot.name}[/] is listening. "
                                "Type a message; Ctrl-D or Ctrl-C to leave.")
            self._show_prompt()
        self._task = asyncio.create_task(self._serve(queue, deliver), name="console-adapter")

    def _read_lines(self, loop: asyncio.AbstractEventLoop,
                    queue: asyncio.Queue[str | None]) -> None:
        try:
            for line in self._lines():
                loop.call_soon_threadsafe(queue.put_nowait, line.rstrip("\r\n"))
        except (OSError, ValueError) as exc:
            # stdin closed under us: the same as end of input, but said, never silent.
            log.warning("console input ended error=%s: %s", type(exc).__name__, exc)
        finally:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, None)
            except RuntimeError:
                pass  # the loop is already closed: nobody is waiting any more

    def _lines(self) -> Iterator[str]:
        """stdin's lines as valid text: bytes decoded with replacement when stdin has them."""
        raw = getattr(self._stdin, "buffer", None)
        if raw is None:
            for line in self._stdin:
                yield valid_text(line)
            return
        encoding = getattr(self._stdin, "encoding", None) or "utf-8"
        for data in raw:
            yield valid_text(data.decode(encoding, "replace"))

    async def _serve(self, queue: asyncio.Queue[str | None], deliver: Deliver) -> None:
        try:
            while (line := await queue.get()) is not None:
                if not line.strip():
                    self._show_prompt()
                    continue
                self._counter += 1
                message = IncomingMessage(key=self.key, text=line, user_id=self.user,
                                          user_name=self.user, message_id=str(self._counter))
                await self.handle(message, deliver)
                surface, self._surface = self._surface, None
                if surface is not None and surface.printed:
                    self._write("\n")
                self._show_prompt()
        finally:
            self.finished.set()

    def _show_prompt(self) -> None:
        if self.interactive:
            self._console.print(self.prompt, end="")

    def stream_surface(self, message: IncomingMessage) -> _ConsoleSurface | None:
        """An interactive terminal prints the answer as it is written; piped output keeps
        one whole reply per line (scripts read it line by line)."""
        if not self.interactive:
            return None
        self._surface = _ConsoleSurface(self)
        return self._surface

    def _write(self, text: str) -> None:
        try:
            self._stdout.write(text)
        except UnicodeEncodeError:
            self._stdout.write(self._printable(text))
        self._stdout.flush()

    async def send(self, reply: Reply) -> Sequence[str] | None:
        text = valid_text(reply.text)
        if self.interactive:
            style = "red" if reply.failed else "cyan"
            try:
                self._console.print(f"[bold {style}]{self.bot.name}[/] ", end="")
                self._console.print(text, markup=False)
            except UnicodeEncodeError:  # the terminal's encoding cannot show some of it
                self._console.print(self._printable(text), markup=False)
        else:
            try:
                self._stdout.write(text + "\n")
            except UnicodeEncodeError:
                self._stdout.write(self._printable(text) + "\n")
            self._stdout.flush()
        return None

    def _printable(self, text: str) -> str:
        """``text`` with what stdout's encoding cannot hold replaced by ``?``."""
        encoding = getattr(self._stdout, "encoding", None) or "utf-8"
        return text.encode(encoding, "replace").decode(encoding, "replace")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


class _ConsoleSurface:
    """A streamed answer on the terminal: each new piece is written as it arrives (a
    terminal cannot edit, so a status line that the answer replaces stays on its own line)."""

    message_ids: Sequence[str] = ()

    def __init__(self, adapter: ConsoleAdapter) -> None:
        self._adapter = adapter
        self.printed = ""

    async def show(self, text: str) -> None:
        adapter = self._adapter
        text = valid_text(text)
        if not self.printed and adapter.interactive:
            adapter._console.print(f"[bold cyan]{adapter.bot.name}[/] ", end="")
        if text.startswith(self.printed):
            adapter._write(text[len(self.printed):])
        else:
            adapter._write("\n" + text)
        self.printed = text
