"""What ``opencell chat`` does only in a real terminal: line editing, a thinking indicator,
log lines held back while the user types, Markdown rendered.

- **Line editing**: lines are read with :func:`input` after importing the standard
  ``readline`` module (GNU readline or libedit), so arrow keys move the cursor, Up recalls
  earlier lines, and escape codes never reach the model. No extra dependency.
- **The prompt and log lines**: a WARNING printed while the user types would land inside
  the line being typed. While the prompt is up, log records are held and printed (dimmed)
  just before the next output instead.
- **Thinking…**: a spinner runs while the bot works on a turn.
- **The prompt at once**: :class:`EarlyPrompt` shows the prompt and reads the first line
  while the bot is still being built (importing a model SDK takes a second or more), so the
  user types while it loads.
- **Streamed replies as Markdown**: :class:`StreamedMarkdown` re-renders the growing reply
  as Markdown (rich ``Live``, a few times a second) while it arrives — the newest lines when
  it outgrows the screen — and, once it is complete, prints the whole reply rendered in
  place of the live view (what stays on screen is rendered; only Markdown still open, a
  ``**`` or a code fence, shows as typed until it closes).
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderResult
    from rich.live import Live
    from rich.status import Status


def enable_line_editing() -> bool:
    """Import ``readline`` (which upgrades :func:`input`); False where there is none."""
    try:
        import readline  # noqa: F401 - importing it is what enables line editing
    except ImportError:  # pragma: no cover - Windows without pyreadline
        return False
    return True


class HeldLogs(logging.Filter):
    """A filter on the root logger's handlers: while ``hold`` is on, records are kept
    instead of printed; :meth:`release` prints them through their own handlers."""

    def __init__(self) -> None:
        super().__init__("opencell-console-hold")
        self._lock = threading.Lock()
        self._held: list[tuple[logging.Handler, logging.LogRecord]] = []
        self._handlers: list[logging.Handler] = []
        self.holding = False

    def install(self) -> None:
        for handler in logging.getLogger().handlers:
            handler.addFilter(_Diverter(self, handler))
            self._handlers.append(handler)

    def uninstall(self) -> None:
        for handler in self._handlers:
            for each in list(handler.filters):
                if isinstance(each, _Diverter) and each.owner is self:
                    handler.removeFilter(each)
        self._handlers.clear()
        self.release()

    def keep(self, handler: logging.Handler, record: logging.LogRecord) -> bool:
        """True when the record was held (the handler must not print it now)."""
        with self._lock:
            if not self.holding:
                return False
            self._held.append((handler, record))
            return True

    def release(self) -> None:
        with self._lock:
            self.holding = False
            held, self._held = self._held, []
        for handler, record in held:
            handler.handle(record)


class _Diverter(logging.Filter):
    def __init__(self, owner: HeldLogs, handler: logging.Handler) -> None:
        super().__init__()
        self.owner = owner
        self.handler = handler

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.owner.keep(self.handler, record)


class Thinking:
    """The "thinking…" spinner of one turn (started and stopped from the event loop)."""

    def __init__(self, console: Console, label: str) -> None:
        self._console = console
        self._label = label
        self._status: Status | None = None

    def start(self) -> None:
        if self._status is None:
            self._status = self._console.status(f"[dim]{self._label} is thinking…[/]",
                                                spinner="dots")
            self._status.start()

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


def render_reply(console: Console, name: str, text: str, *, failed: bool) -> None:
    """The bot's name, then its reply as Markdown (code blocks, lists, bold …)."""
    style = "red" if failed else "cyan"
    console.print(f"[bold {style}]{name}[/]")
    console.print(_markdown(text))


def warm_up() -> None:
    """Import the Markdown renderer in the background (about 40 ms, once), so the first
    reply's first words do not wait for it."""

    def load() -> None:
        import rich.live  # noqa: F401 - importing is the point
        import rich.markdown  # noqa: F401

    threading.Thread(target=load, daemon=True, name="opencell-console-warm").start()


class StreamedMarkdown:
    """One streamed reply on the terminal: ``update(text)`` with the text so far (cheap: it
    only stores it; the live view renders it on its own refresh, at most
    ``refresh_per_second`` times), ``finish()`` once the reply is complete."""

    def __init__(self, console: Console, name: str, *, refresh_per_second: float = 8) -> None:
        self._console = console
        self._name = name
        self._rate = refresh_per_second
        self._live: Live | None = None
        self.text = ""

    def update(self, text: str) -> None:
        self.text = text
        if self._live is None:
            from rich.live import Live

            self._console.print(f"[bold cyan]{self._name}[/]")
            self._live = Live(console=self._console, transient=True,
                              refresh_per_second=self._rate, get_renderable=self._tail)
            self._live.start(refresh=True)

    def _tail(self) -> _Tail:
        return _Tail(self.text, max(1, self._console.height - 2))

    def finish(self) -> None:
        """Stop the live view and print the whole reply rendered (nothing if never shown)."""
        live, self._live = self._live, None
        if live is None:
            return
        live.stop()
        try:
            self._console.print(_markdown(self.text))
        except UnicodeEncodeError:  # the terminal's encoding cannot show some of it
            encoding = self._console.encoding or "utf-8"
            self._console.print(_markdown(self.text.encode(encoding, "replace")
                                          .decode(encoding, "replace")))


class _Tail:
    """The last ``height`` lines of ``text`` rendered as Markdown: the live view always fits
    the screen, so it can always be redrawn in place."""

    def __init__(self, text: str, height: int) -> None:
        self.text = text
        self.height = height

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        from rich.segment import Segment

        lines = console.render_lines(_markdown(self.text), options, pad=False)
        for line in lines[-self.height:]:
            yield from line
            yield Segment.line()


def _markdown(text: str) -> Any:
    from rich.markdown import Markdown

    return Markdown(text, code_theme="ansi_dark", hyperlinks=False)


class EarlyPrompt:
    """The first prompt, shown before the bot is ready; the adapter takes its line."""

    def __init__(self, prompt: str, greeting: str) -> None:
        self.prompt = prompt
        self.greeting = greeting
        self._done = threading.Event()
        self._line: str | None = None

    def start(self) -> None:
        enable_line_editing()
        threading.Thread(target=self._read, daemon=True, name="opencell-console-first").start()

    def _read(self) -> None:
        try:
            print(self.greeting, flush=True)
            self._line = input(self.prompt)
        except (EOFError, OSError, ValueError):
            self._line = None
        finally:
            self._done.set()

    def line(self) -> str | None:
        """The first line typed (waits for it); None at end of input."""
        self._done.wait()
        return self._line
