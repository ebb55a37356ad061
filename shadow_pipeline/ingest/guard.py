"""The sequence-gap guard, shared by every consumer of a group through Redis.

Each consumer sees only its share of the stream, so a per-process guard would see gaps everywhere. The
guard's state (the highest seq and a bitmap of seen seqs per symbol) lives in Redis and one Lua script per
batch and symbol updates it atomically. Redelivered entries (recovered after a crash or a lost connection) go
through it too, but a seq it has already seen is then not a duplicate: it was guarded at its first delivery.
Definitions match ``shadow_pipeline.domain.sequence``:

- gap: seqs skipped when a higher seq arrived (a counter); ``missing`` is what is still missing (a gauge);
- duplicate: a seq that had already arrived;
- out of order: the first arrival of a seq lower than the highest seen (it fills an earlier gap).

The first seq a guard ever sees for a symbol is its baseline: a group that joins mid-stream counts no gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import redis

from shadow_pipeline.redis_io.keys import guard_keys

_SCRIPT = """
local high = tonumber(redis.call('HGET', KEYS[1], 'high') or '-1')
local redelivery = ARGV[2] == '1'
local gaps, dups, late = 0, 0, 0
for token in string.gmatch(ARGV[1], '%d+') do
  local s = tonumber(token)
  if redis.call('SETBIT', KEYS[2], s, 1) == 1 then
    if not redelivery then dups = dups + 1 end
  elseif high < 0 then
    high = s
  elseif s < high then
    late = late + 1
  else
    gaps = gaps + (s - high - 1)
    high = s
  end
end
redis.call('HSET', KEYS[1], 'high', high)
local missing = redis.call('HINCRBY', KEYS[1], 'missing', gaps - late)
return {gaps, dups, late, missing}
"""
MAX_SEQ = 2**32 - 1  # SETBIT's largest offset


@dataclass(frozen=True)
class GuardCounts:
    gaps: int
    duplicates: int
    out_of_order: int
    missing: int


class SequenceGuard:
    def __init__(self, client: redis.Redis, stream: str, group: str) -> None:
        self._script = client.register_script(_SCRIPT)
        self._stream, self._group = stream, group

    def keys(self, symbol: str) -> list[str]:
        return guard_keys(self._stream, self._group, symbol)

    def check(self, symbols: np.ndarray, seqs: np.ndarray, redelivered: bool = False) -> dict[str, GuardCounts]:
        """Account for a batch of deliveries (arrival order); returns what it found per symbol."""
        found: dict[str, GuardCounts] = {}
        for symbol, positions in pd.Series(np.arange(len(symbols))).groupby(symbols).groups.items():
            batch = seqs[np.asarray(positions)]
            batch = batch[batch <= MAX_SEQ]
            # One comma-joined argument: packing thousands of separate arguments costs more than the script.
            packed = ",".join(map(str, batch.tolist()))
            reply = self._script(keys=self.keys(str(symbol)), args=[packed, "1" if redelivered else "0"])
            gaps, dups, late, missing = reply
            found[str(symbol)] = GuardCounts(int(gaps), int(dups), int(late), int(missing))
        return found
