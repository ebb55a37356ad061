"""One client connection: what it subscribed to and its writes, one at a time, bounded by the slow-reader fault."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

SLOW_CONSUMER = 1008  # policy violation: what a venue closes a client with when it does not read
_CLOSE_GRACE_S = 5.0  # for the close frame to get out behind the unread data, else the socket is cut


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
            self._closing = asyncio.create_task(self.close(SLOW_CONSUMER, "slow consumer"))
            return False
        except ConnectionClosed:
            self.closed = True
            return False
        return True

    async def close(self, code: int, reason: str) -> None:
        """Close with ``code``; the close frame waits behind data the client has not read, so the socket is cut
        if it cannot go out in time."""
        try:
            async with asyncio.timeout(_CLOSE_GRACE_S):
                await self.ws.close(code, reason)
        except TimeoutError:
            self.abort()

    def cut(self) -> None:
        """End the TCP connection without a WebSocket close frame, as a network failure does. What was already
        sent is delivered first (the transport flushes on close), so the client got exactly the frames counted; a
        client that does not read it in time is reset."""
        self.closed = True
        self.ws.transport.close()
        asyncio.get_running_loop().call_later(_CLOSE_GRACE_S, self.ws.transport.abort)  # a no-op once closed

    def abort(self) -> None:
        """Reset the TCP connection at once, unsent data and all: for a close that could not get out."""
        self.closed = True
        self.ws.transport.abort()
