"""Failed processing attempts per entry: what makes an entry poison, counted by the consumer itself.

Redis's delivery counter cannot tell a poison entry from a valid tick. It also counts a restarted consumer's
re-read of the ticks it held in its reorder buffer (valid ticks that waited for a newer one), and every claim;
so on a quiet stream, or after a few crashes, valid ticks would be dead-lettered as over-delivered. Only an
entry whose own processing fails is poison. So before a redelivered entry is processed, its mark in a hash is
incremented, and once its tick is accepted (in the reorder buffer, or dead-lettered with its reason) the mark is
deleted: a mark that outlives a processing is a processing that died or raised on that entry. The consumer
processes an entry with a mark alone, and dead-letters it once processing it alone failed ``max_deliveries``
times: a kill from outside that merely hits a batch makes its entries suspects, not poison. Landing is not
part of an entry's processing (a full disk is nobody's entry's fault), nor is a lost Redis connection (the
consumer deletes the marks it set before recovering).

Entries read for the first time are not marked (their batch's hot path stays one read and one ack); a poison
entry that crashes its first processing is marked from its first redelivery on.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import redis

from shadow_pipeline.redis_io.keys import failed_attempts_hash

_CHUNK = 10_000


class FailedAttempts:
    def __init__(self, client: redis.Redis, stream: str, group: str) -> None:
        self._client = client
        self.key = failed_attempts_hash(stream, group)

    def counts(self, ids: Sequence[str]) -> np.ndarray:
        """How often processing each entry failed before (0 for entries never marked)."""
        found: list[object] = []
        for start in range(0, len(ids), _CHUNK):
            found += self._client.hmget(self.key, list(ids[start : start + _CHUNK]))
        return np.array([int(v) if v is not None else 0 for v in found], dtype=np.int64)  # type: ignore[call-overload]

    def begin(self, ids: Sequence[str]) -> None:
        """Mark ``ids`` as in processing; durable before the processing starts."""
        pipe = self._client.pipeline(transaction=False)
        for entry_id in ids:
            pipe.hincrby(self.key, entry_id, 1)
        pipe.execute()

    def forget_all(self) -> None:
        """The group was deleted: its entries' marks mean nothing for a new one."""
        self._client.delete(self.key)

    def end(self, ids: Sequence[str]) -> None:
        """Their processing finished (or failed for a reason that is not theirs): no failure counts."""
        for start in range(0, len(ids), _CHUNK):
            self._client.hdel(self.key, *ids[start : start + _CHUNK])
