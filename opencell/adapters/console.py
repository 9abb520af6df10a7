"""The terminal adapter: stdin lines in, replies out; interactive on a TTY, plain when piped.

In a terminal (see ``_console_tty.py``): line editing and history, a "thinking…" spinner,
replies rendered as Markdown (streamed ones re-rendered as they arrive), log lines held back
while the user types, and a word when Ctrl-C has to wait for a turn. Piped: plain text, each
reply as it is followed by a newline (a reply may span lines), or with ``json_lines`` one
JSON object per reply (``{"reply": …, "failed": …}``), which stays one line whatever the
reply holds.

A terminal can send any bytes: input is read as bytes and decoded with invalid sequences
replaced (U+FFFD), whatever ``PYTHONIOENCODING`` says, so a bad byte is answered like any
other line and can never end the chat; output that the terminal's encoding cannot hold is
written with replacements rather than lost.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import TextIO

from rich.console import Console

from opencell.adapters._console_tty import (
    EarlyPrompt,
    HeldLogs,
    StreamedMarkdown,
    Thinking,
    enable_line_editing,
    render_reply,
    warm_up,
)
from opencell.adapters.base import Adapter
from opencell.config import BotConfig
from opencell.messages import ConversationKey, IncomingMessage, Reply
from opencell.records import valid_text
from opencell.types import Deliver

__all__ = ["ConsoleAdapter", "EarlyPrompt", "greeting"]

log = logging.getLogger("opencell.console")


def greeting(bot: str) -> str:
    return f"\x1b[1m{bot}\x1b[0m is listening. Type a message; Ctrl-D or Ctrl-C to leave."


class ConsoleAdapter(Adapter):
    """One conversation with one local user.

    Lines are read by a daemon thread (a blocked read must never keep the process alive) and
    answered one at a time, in order. At end of input the adapter is ``finished``.
    """

    platform = "console"
    stream_interval = 0.0  # a terminal takes every piece as it comes

    def __init__(self, bot: BotConfig, *, user: str | None = None,
                 stdin: TextIO | None = None, stdout: TextIO | None = None,
                 json_lines: bool = False, early: EarlyPrompt | None = None) -> None:
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
        self.json_lines = json_lines
        self._early = early if self.interactive else None
        """The first prompt, already shown while the bot was being built (``opencell chat``)."""
        self._may_read = threading.Event()
        """Interactive: set when the prompt may be shown (no turn running)."""
        self._held = HeldLogs()
        self._thinking = Thinking(self._console, bot.name)
        self._surface: _ConsoleSurface | None = None

    async def start(self, deliver: Deliver) -> None:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._read_lines, args=(loop, queue), daemon=True,
                         name="opencell-console-stdin").start()
        if self.interactive:
            enable_line_editing()
            warm_up()
            self._held.install()
            if self._early is None:
                self._console.print(greeting(self.bot.name))
            # The prompt after whatever the starting command prints once every adapter has
            # started (`opencell run`'s "running …" and dashboard lines), not under it.
            loop.call_soon(self._may_read.set)
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
        if self.interactive:
            yield from self._prompted_lines()
            return
        raw = getattr(self._stdin, "buffer", None)
        if raw is None:
            for line in self._stdin:
                yield valid_text(line)
            return
        encoding = getattr(self._stdin, "encoding", None) or "utf-8"
        for data in raw:
            yield valid_text(data.decode(encoding, "replace"))

    def _prompted_lines(self) -> Iterator[str]:
        """Lines typed at the prompt, with line editing; the prompt shows once the previous
        turn has answered, and log lines wait until Enter is pressed."""
        while True:
            self._may_read.wait()
            self._may_read.clear()
            self._held.holding = True
            try:
                if self._early is not None:
                    first, self._early = self._early.line(), None
                    if first is None:
                        raise EOFError
                    line = first
                else:
                    line = self._ask()
            except EOFError:
                self._held.release()
                self._console.print()  # the shell's prompt starts on a line of its own
                return
            self._held.release()
            yield valid_text(line)

    def _ask(self) -> str:
        """One line typed at the prompt: through ``input`` (readline's line editing) when
        the terminal is the process's own, else read from the streams this adapter was given."""
        if self._stdin is sys.stdin and self._stdout is sys.stdout:
            return input(self.prompt)
        self._write(self.prompt)
        line = self._stdin.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    async def _serve(self, queue: asyncio.Queue[str | None], deliver: Deliver) -> None:
        try:
            while self.accepting and (line := await queue.get()) is not None:
                if not line.strip():
                    self._show_prompt()
                    continue
                self._counter += 1
                message = IncomingMessage(key=self.key, text=line, user_id=self.user,
                                          user_name=self.user, message_id=str(self._counter))
                if self.interactive:
                    self._thinking.start()
                try:
                    await self.handle(message, deliver)
                finally:
                    self._thinking.stop()
                surface, self._surface = self._surface, None
                if surface is not None:
                    surface.finish()
                self._show_prompt()
        finally:
            self.finished.set()

    def _show_prompt(self) -> None:
        if self.interactive:
            self._may_read.set()

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
            self._thinking.stop()
            try:
                render_reply(self._console, self.bot.name, text, failed=reply.failed)
            except UnicodeEncodeError:  # the terminal's encoding cannot show some of it
                render_reply(self._console, self.bot.name, self._printable(text),
                             failed=reply.failed)
        elif self.json_lines:
            line = json.dumps({"reply": text, "failed": reply.failed}, ensure_ascii=False)
            try:
                self._stdout.write(line + "\n")
            except UnicodeEncodeError:
                self._stdout.write(json.dumps({"reply": text, "failed": reply.failed}) + "\n")
            self._stdout.flush()
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

    async def drain(self, timeout: float) -> bool:
        if self.interactive and self.in_flight:
            self._thinking.stop()
            self._console.print(f"\n[yellow]stopping:[/] letting the current turn finish "
                                f"(up to {timeout:.0f}s; Ctrl-C again quits at once)")
        return await super().drain(timeout)

    async def stop(self) -> None:
        if self.interactive:
            self._thinking.stop()
            if self._surface is not None:
                self._surface.finish()
            self._held.uninstall()
            self._console.print()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass


class _ConsoleSurface:
    """A streamed answer on the terminal, rendered as Markdown as it is written (a status
    line that the answer replaces is redrawn away, as on Discord or Slack), then printed
    whole once the turn is over (see ``StreamedMarkdown``)."""

    message_ids: Sequence[str] = ()

    def __init__(self, adapter: ConsoleAdapter) -> None:
        self._adapter = adapter
        self._view = StreamedMarkdown(adapter._console, adapter.bot.name)
        self.printed = ""

    async def show(self, text: str) -> None:
        if not self.printed:
            self._adapter._thinking.stop()  # the answer itself now shows the bot is working
        self.printed = valid_text(text)
        self._view.update(self.printed)

    def finish(self) -> None:
        """The reply is complete (or the chat stops): leave it rendered on screen."""
        self._view.finish()
