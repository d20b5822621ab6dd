"""Finding free local ports, and checking that a wanted one is free before we promise it."""

from __future__ import annotations

import random
import socket
from pathlib import Path

# The ports the kernel hands out as the local ports of outgoing connections (Linux).
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10_000


def free_port() -> int:
    """A port nothing holds now, for a server we are about to start.

    Chosen below the kernel's range for outgoing connections where that range is known: a port
    from inside it may become, before our server binds it, the local port of a connection some
    process opens meanwhile (a service's link to RabbitMQ, say), and the server would not start.
    """
    below = _ephemeral_low()
    if below is not None and below > LOWEST:
        for port in random.sample(range(LOWEST, below), k=min(100, below - LOWEST)):
            if is_free("127.0.0.1", port):
                return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ephemeral_low() -> int | None:
    try:
        return int(EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def is_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True
