"""Run ``opencell`` in a real pseudo-terminal of a given width and read what a person sees."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
from collections.abc import Mapping

from tests.conftest import REPO
from tests.fakes.waiting import WAIT

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def in_terminal(*args: str, columns: int, env: Mapping[str, str]) -> tuple[int, str]:
    """Exit code and screen text (colours stripped) of ``opencell ARGS`` at ``columns``."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 60, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "opencell", *args], stdin=slave, stdout=slave, stderr=slave,
        env={**env, "COLUMNS": str(columns), "TERM": "xterm-256color"}, cwd=REPO,
        close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    code = process.wait(WAIT)
    os.close(master)
    return code, ANSI.sub("", b"".join(chunks).decode(errors="replace")).replace("\r", "")


class Session:
    """An interactive ``opencell`` in a pseudo-terminal: type into it, wait for its screen."""

    def __init__(self, *args: str, columns: int, env: Mapping[str, str]) -> None:
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "opencell", *args], stdin=slave, stdout=slave, stderr=slave,
            env={**env, "COLUMNS": str(columns), "TERM": "xterm-256color"}, cwd=REPO,
            close_fds=True, preexec_fn=_own_terminal)
        os.close(slave)
        self.raw = b""

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw.decode(errors="replace")).replace("\r", "")

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait_for(self, wanted: str, after: int = 0) -> str:
        """The screen text once ``wanted`` appears in it past offset ``after``."""
        import select
        import time

        deadline = time.monotonic() + WAIT
        while wanted not in self.text[after:]:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{wanted!r} did not appear; screen:\n{self.text}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    self.raw += os.read(self.master, 65536)
                except OSError:
                    raise AssertionError(f"the terminal closed before {wanted!r}:\n"
                                         f"{self.text}") from None
        return self.text

    def close(self) -> int:
        import signal

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        code = self.process.wait(WAIT)
        os.close(self.master)
        return code


def _own_terminal() -> None:
    """In the child: a session of its own whose controlling terminal is the pty (stdin), so
    Ctrl-C typed into it is SIGINT to the program, as in a real terminal."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
