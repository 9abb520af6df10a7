"""The old liveness judgement, by ``host:pid``: kept for owners written by older OpenCells.

Owners are now ``host:pid/token`` and judged by a lock (``cluster.py``); this probe is wrong
across PID namespaces, hosts and PID reuse (SCALE-OUT.md D1, D2), so it only decides for rows
whose owner has no token.
"""

from __future__ import annotations

import os
import socket


def owner_is_alive(owner: str) -> bool:
    """Whether the process that owns a session may still be running.

    Same host: the pid is probed (gone or a zombie → dead; not ours to signal → alive).
    Another host: alive, since we cannot know. A malformed owner is judged dead.
    """
    host, sep, pid_text = owner.partition("/")[0].rpartition(":")
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
