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
