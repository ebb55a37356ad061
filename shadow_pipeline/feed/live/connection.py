"""How the feed holds a connection: opening it, why it ended, when to try again, and when a book went quiet.

Every venue drops connections now and then (Binance after 24 h at the latest; Bybit users report one every 6-12
h), so ending a connection is routine: the feed reconnects with capped exponential backoff and full jitter (a
delay drawn uniformly from 0 to ``min(cap, initial * 2**attempt)``), so that many feeds cut off at once do not
come back in step, and resubscribes. A connection that stays open but stops delivering one book is caught per
book (``Watchdog``): a connection-level check would miss a single silent book among busy ones.
"""

from __future__ import annotations

import asyncio
import random
import socket
import urllib.request
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

MAX_FRAME_BYTES = 1 << 24  # a 1000-level REST-sized frame is ~100 kB; a larger one is not the venue's
MAX_SNAPSHOT_BYTES = 1 << 24
CLOSE_TIMEOUT_SECONDS = 1.0


def backoff_delay(attempt: int, initial: float, cap: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, initial * 2**attempt)] (attempt 0 after a connection that worked)."""
    return rng.uniform(0.0, min(cap, initial * 2.0 ** min(attempt, 62)))


async def open_connection(
    url: str, open_timeout: float, receive_buffer: int | None = None, compression: bool = False
) -> ClientConnection:
    """The WebSocket, with the client's own keepalive off: Bybit wants its JSON ping (sent by the feed), Binance
    pings from the server and ``websockets`` answers those by itself. ``receive_buffer`` caps the socket's
    receive buffer (``FeedConfig.receive_buffer_bytes``): set before connecting, as the kernel sizes the TCP window
    from it then."""
    options: dict[str, Any] = {}
    async with asyncio.timeout(open_timeout):
        if receive_buffer is not None:
            options["sock"] = await _small_buffer_socket(url, receive_buffer)
            if url.startswith("wss://"):
                options["server_hostname"] = urlsplit(url).hostname
        return await connect(
            url,
            open_timeout=open_timeout,
            ping_interval=None,
            close_timeout=CLOSE_TIMEOUT_SECONDS,
            max_size=MAX_FRAME_BYTES,
            compression="deflate" if compression else None,
            **options,
        )


async def _small_buffer_socket(url: str, receive_buffer: int) -> socket.socket:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    loop = asyncio.get_running_loop()
    family, kind, proto, _, address = (await loop.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM))[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        await loop.sock_connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


def close_cause(exc: ConnectionClosed) -> str:
    """The reconnect cause of a connection the other side ended: a clean close by the venue (1000, e.g. its
    connection age limit), a policy close (1008: the venue's verdict on a reader that does not keep up), another
    close code, or a connection lost without a close frame (a TCP reset, a dropped network)."""
    received = exc.rcvd
    if received is None:
        return "connection_lost"
    if received.code == 1000:
        return "closed_by_venue"
    if received.code == 1008:
        return "policy_close"
    return f"close_{received.code}"


def http_get(url: str, timeout: float) -> str:
    """A REST body (the depth snapshot), run in a thread: one request per resync does not need an async client."""
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        body: bytes = reply.read(MAX_SNAPSHOT_BYTES + 1)
    if len(body) > MAX_SNAPSHOT_BYTES:
        raise OSError(f"a REST snapshot larger than {MAX_SNAPSHOT_BYTES} bytes")
    return body.decode()


class Watchdog:
    """Each subscribed book's last change (monotonic seconds); a book unchanged for longer than ``timeout`` is
    stale. A book that is resyncing does not change either, so one that never comes back is caught here too."""

    def __init__(self, books: Iterable[str], now: float, timeout: float) -> None:
        self.changed = dict.fromkeys(books, now)
        self.timeout = timeout

    def saw(self, books: Iterable[str], now: float) -> None:
        for book in books:
            self.changed[book] = now

    def stale(self, now: float) -> list[str]:
        return [book for book, at in self.changed.items() if now - at > self.timeout]

    def next_deadline(self) -> float:
        return min(self.changed.values(), default=float("inf")) + self.timeout
