"""One client connection: what it subscribed to and its writes, one at a time, bounded by the slow-reader fault."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

SLOW_CONSUMER = 1008  # policy violation: what a venue closes a client with when it does not read
_CLOSE_GRACE_S = 1.0  # a client that does not read never answers the close frame either


class Session:
    """Writes go through ``lock`` so that a subscription's ack and snapshot cannot interleave with market frames
    the replay sends it; ``sent`` counts market frames only."""

    def __init__(self, ws: ServerConnection, slow_reader_seconds: float | None, on_slow: Callable[[], None]) -> None:
        self.ws = ws
        self.conn_id = f"{secrets.token_hex(10)}-{secrets.token_hex(3)[:5]}"
        self.topics: set[str] = set()
        self.lock = asyncio.Lock()
        self.sent = 0
        self.closed = False
        self._slow_reader_seconds = slow_reader_seconds
        self._on_slow = on_slow
        self._closing: asyncio.Task[None] | None = None

    async def send(self, text: str) -> bool:
        """Whether ``text`` went out (False: the connection is gone, or was just closed as a slow consumer)."""
        async with self.lock:
            return await self.send_locked(text)

    async def send_locked(self, text: str) -> bool:
        if self.closed:
            return False
        try:
            async with asyncio.timeout(self._slow_reader_seconds):
                await self.ws.send(text)
        except TimeoutError:
            self._on_slow()
            self.closed = True
            self._closing = asyncio.create_task(self._close_slow())
            return False
        except ConnectionClosed:
            self.closed = True
            return False
        return True

    async def _close_slow(self) -> None:
        """Close with 1008; the close frame waits behind unread data, so the socket is cut if it cannot go out."""
        try:
            async with asyncio.timeout(_CLOSE_GRACE_S):
                await self.ws.close(SLOW_CONSUMER, "slow consumer")
        except TimeoutError:
            self.abort()

    def abort(self) -> None:
        """Cut the TCP connection without a close frame, as a network failure or a crashed venue process does."""
        self.closed = True
        with contextlib.suppress(AttributeError):  # no transport: the connection is already gone
            self.ws.transport.abort()
