"""Who owns an open session: ``host:pid`` of the process that opened it, and whether it lives.

At start-up the store closes sessions whose owner is gone (a crash or ``kill -9``) with reason
``interrupted``; these two functions decide which ones.
"""

from __future__ import annotations

import os
import socket


def process_owner() -> str:
    """``host:pid`` of this process: the owner written on the sessions it opens."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_is_alive(owner: str) -> bool:
    """Whether the process that owns a session may still be running.

    Same host: the pid is probed (gone or a zombie → dead; not ours to signal → alive).
    Another host: alive, since we cannot know. A malformed owner is judged dead.
    """
    host, sep, pid_text = owner.rpartition(":")
    if not sep or not pid_text.isdigit():
        return False
    if host != socket.gethostname():
        return True
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    # A killed child its parent has not reaped yet still answers kill(pid, 0).
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return False
