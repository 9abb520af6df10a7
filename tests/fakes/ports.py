"""A free port for a server a test starts later (an ``opencell run`` worker, a fake).

Picked below the kernel's ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``,
32768–60999 by default). A port asked of the kernel with ``bind(0)`` comes from that range,
and in the seconds before the server binds it, any outgoing connection (a worker's to
PostgreSQL, the test's own to a fake) may take it as its source port: the server then fails
with "address in use". One of three workers starting at once did so in CI ("nothing listens
on 51513").
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _below_ephemeral() -> range:
    try:
        low = int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return range(max(1024, low - 12_000), low)


def free_port() -> int:
    """A port nothing listens on now, outside the range the kernel hands out."""
    ports = _below_ephemeral()
    for port in random.sample(ports, min(200, len(ports))):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {ports.start} and {ports.stop - 1}")
