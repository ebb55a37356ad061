"""New entries on a connection of their own, each XREADGROUP sent before the reply in hand is parsed.

Why: Redis spends as long serializing an XREADGROUP reply (2.5-4 us per entry) as the consumer spends parsing it;
sent first, the next read is served while this one is parsed, so the reader thread no longer waits for Redis and
then parses in turn. One connection keeps the replies in the order sent, so batches keep the stream's order. At
most one read is outstanding: with the batch being parsed and the one being processed, at most three batches
are in memory.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import redis
from redis.connection import Connection

from shadow_pipeline.ingest.deliveries import Delivery, from_reply
from shadow_pipeline.redis_io.raw_reply import receive_raw, send_raw

log = logging.getLogger(__name__)
_NO_ENTRIES = frozenset(b"-_0")  # after '*' or '%': a nil (RESP2 '*-1'), or no streams; '_': RESP3 null


def has_entries(reply: np.ndarray) -> bool:
    """Whether an XREADGROUP reply delivered entries (not a nil within BLOCK, nor an error)."""
    return len(reply) > 1 and int(reply[0]) in b"*%" and int(reply[1]) not in _NO_ENTRIES


class ReadAhead:
    """Used from one thread at a time (the consumer's reader thread)."""

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._connection: Connection | None = None
        self.outstanding = False  # a read is sent and its reply not yet received

    def read(self, command: list[Any], more: bool, ahead: list[Any] | None = None) -> Delivery:
        """The next batch: ``command``'s reply, or that of the read already sent. With ``more``, the next read
        (``ahead``, else ``command`` again) is sent before this one is parsed, if this one had entries."""
        if self._connection is None:
            self._connection = self._pool.get_connection()
        if not self.outstanding:
            send_raw(self._connection, *command)
            self.outstanding = True
        reply = receive_raw(self._connection)
        self.outstanding = False
        if more and has_entries(reply):
            send_raw(self._connection, *(ahead or command))
            self.outstanding = True
        return from_reply(reply)

    def close(self) -> None:
        """Give the connection back. An outstanding reply is received (and dropped) first: its entries are then
        pending for this consumer, and a recovery that follows re-reads them; a broken connection is dropped."""
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            if self.outstanding:
                self.outstanding = False
                receive_raw(connection)
        except redis.exceptions.RedisError:  # receive_raw dropped the connection: Redis serves nothing more on it
            log.debug("read ahead lost with its connection", exc_info=True)
        finally:
            self._pool.release(connection)
