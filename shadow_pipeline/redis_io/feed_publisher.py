"""The live feed's writes: ticks numbered and XADDed by one Lua call per batch, depth entries beside them.

Why Lua: ``seq`` must increase strictly per instrument across reconnects and process restarts. The counter lives
in Redis (``keys.feed_seq_key``) and the script INCRBYs it and XADDs the entries in one atomic step, so a crash
before the call leaves both untouched and one after it leaves both written: no seq is reused or skipped. A call
whose reply is lost (the connection drops after Redis ran it) and that is retried writes those ticks again under
new seqs; the ingest's sequence guard sees no gap, and a duplicate tick is the lesser harm than a lost one.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from shadow_pipeline.domain.market.instruments import instrument_key
from shadow_pipeline.domain.market.shards import check_shards, instrument_stream
from shadow_pipeline.domain.market.ticks import VENUE_FIELD
from shadow_pipeline.redis_io.keys import depth_stream, feed_seq_key

# KEYS: the stream, then one seq counter per instrument of the batch.
# ARGV: maxlen (0: no trimming), the instrument count k, k tick counts, then per tick: its counter's index,
# n (field pairs after symbol), the symbol's value and n field/value pairs. Returns the first seq of each counter.
_PUBLISH = """
local maxlen = tonumber(ARGV[1])
local k = tonumber(ARGV[2])
local seq, first = {}, {}
for j = 1, k do
  local count = tonumber(ARGV[2 + j])
  seq[j] = redis.call('INCRBY', KEYS[1 + j], count) - count + 1
  first[j] = seq[j]
end
local i = 3 + k
while i <= #ARGV do
  local j, n = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  local fields = {'symbol', ARGV[i + 2], 'seq', string.format('%d', seq[j])}
  seq[j] = seq[j] + 1
  for m = 1, 2 * n do fields[4 + m] = ARGV[i + 2 + m] end
  if maxlen > 0 then
    redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(fields))
  else
    redis.call('XADD', KEYS[1], '*', unpack(fields))
  end
  i = i + 3 + 2 * n
end
return first
"""

Tick = tuple[str, Sequence[str]]  # (instrument key, fields without seq: "symbol", value, then pairs)


class FeedPublisher:
    """Writes one stream's ticks (``stream``, trimmed ``MAXLEN ~ maxlen``), each to its instrument's shard of it
    (``shards``; domain.market.shards), and the depth streams."""

    def __init__(self, client: redis.Redis, stream: str, maxlen: int | None, shards: int = 1) -> None:
        self.client = client
        self.stream = stream
        self.maxlen = maxlen or 0
        self.shards = check_shards(shards)
        self._script = client.register_script(_PUBLISH)

    def publish(self, ticks: Sequence[Tick], depth: Sequence[dict[str, str]] = ()) -> dict[str, int]:
        """XADD ``ticks`` numbered per instrument in their order, and ``depth`` entries to their instruments'
        depth streams (untrimmed, as ``replay_depth``: a trimmed stream loses the snapshot its deltas build on).
        Returns the first seq given to each instrument. One Lua call per shard: a shard's stream and counters
        share a cluster slot, and an instrument's ticks all go to one shard, so each stays atomic. A failure can
        leave the shards before it written, so a caller that retries passes one shard's ticks a call
        (``stream_of``), lest the written ones come back under new seqs."""
        first: dict[str, int] = {}
        by_stream: dict[str, list[Tick]] = {}
        for tick in ticks:
            by_stream.setdefault(self.stream_of(tick[0]), []).append(tick)
        for stream, shard_ticks in by_stream.items():
            first |= self._publish(stream, shard_ticks)
        if depth:
            pipe = self.client.pipeline(transaction=False)
            for record in depth:
                pipe.xadd(depth_stream(instrument_key(record["symbol"], record.get(VENUE_FIELD))), dict(record))  # type: ignore[arg-type]
            pipe.execute()
        return first

    def stream_of(self, instrument: str) -> str:
        """The shard stream ``instrument``'s ticks are written to."""
        return instrument_stream(self.stream, instrument, self.shards)

    def _publish(self, stream: str, ticks: Sequence[Tick]) -> dict[str, int]:
        index: dict[str, int] = {}
        counts: list[int] = []
        body: list[str | int] = []
        for instrument, fields in ticks:
            if fields[0] != "symbol":
                raise ValueError("a tick's fields start with symbol")
            j = index.get(instrument)
            if j is None:
                j = index[instrument] = len(counts)
                counts.append(0)
            counts[j] += 1
            body += [j + 1, len(fields) // 2 - 1, *fields[1:]]
        keys = [stream, *(feed_seq_key(stream, instrument) for instrument in index)]
        reply = self._script(keys=keys, args=[self.maxlen, len(counts), *counts, *body])
        return {instrument: int(reply[j]) for instrument, j in index.items()}
