"""Writing tick entries to a Redis Stream: pipelined XADD with approximate trimming."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import redis

from shadow_pipeline.domain.market.ticks import FIELDS, OPTIONAL_FIELDS
from shadow_pipeline.redis_io.keys import TICK_STREAM, append_index

DEFAULT_STREAM = TICK_STREAM
# Well above an hour of two busy symbols: trimming silently drops entries no consumer has read yet.
DEFAULT_MAXLEN = 5_000_000


@dataclass(frozen=True)
class StreamInfo:
    """What a person wants to know about a stream after writing to it."""

    length: int
    first_id: str | None
    last_id: str | None


def to_field_rows(entries: pd.DataFrame) -> list[list[str]]:
    """Rows as flat ``[field, value, field, value, ...]`` lists; a None cell means the field is absent, and an
    optional field (``venue``) is written only when ``entries`` has its column.

    Built column-wise with numpy: the Python client is the bottleneck of a replay, so no per-field work here.
    """
    names = [*FIELDS, *(name for name in OPTIONAL_FIELDS if name in entries.columns)]
    values = entries[names]
    absent = values.isna().to_numpy()
    rows = np.empty((len(values), 2 * len(names)), dtype=object)
    rows[:, 0::2] = names
    for number, name in enumerate(names):
        column = values[name]
        text = column if column.dtype == object or pd.api.types.is_string_dtype(column) else column.astype(str)
        rows[:, 2 * number + 1] = text.to_numpy(dtype=object)
    flat: list[list[str]] = rows.tolist()
    for position in np.flatnonzero(absent.any(axis=1)):
        keep = np.repeat(~absent[position], 2)
        flat[position] = rows[position][keep].tolist()
    return flat


def xadd_rows(
    client: redis.Redis, stream: str, rows: Sequence[list[str]], maxlen: int | None = DEFAULT_MAXLEN
) -> list[str]:
    """XADD ``rows`` (from :func:`to_field_rows`) in one pipelined round trip, not a transaction; returns ids."""
    trim = ["MAXLEN", "~", str(maxlen)] if maxlen else []
    pipe = client.pipeline(transaction=False)
    for row in rows:
        pipe.execute_command("XADD", stream, *trim, "*", *row)
    return [_text(i) for i in pipe.execute()]


def stream_info(client: redis.Redis, stream: str) -> StreamInfo:
    if not client.exists(stream):
        return StreamInfo(0, None, None)
    first = read_entries(client, stream, count=1)
    last = read_entries(client, stream, count=1, newest=True)
    return StreamInfo(int(client.xlen(stream)), first[0][0] if first else None, last[0][0] if last else None)


Entry = tuple[str, dict[str, str]]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def read_entries(client: redis.Redis, stream: str, count: int | None = None, newest: bool = False) -> list[Entry]:
    """Entries as ``(id, fields)`` with text keys and values, oldest first (or the newest ``count``, newest first)."""
    reply = client.xrevrange(stream, count=count) if newest else client.xrange(stream, count=count)
    return [(_text(i), {_text(k): _text(v) for k, v in (f or {}).items()}) for i, f in (reply or [])]


# KEYS: stream, index hash. ARGV: maxlen, then per entry: key, field count n, n field/value pairs.
_APPEND_ONCE = """
local added = 0
local i = 2
while i <= #ARGV do
  local key, n = ARGV[i], tonumber(ARGV[i + 1])
  local known = redis.call('HGET', KEYS[2], key)
  if not known or #redis.call('XRANGE', KEYS[1], known, known) == 0 then
    local fields = {}
    for j = 1, 2 * n do fields[j] = ARGV[i + 1 + j] end
    local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
    redis.call('HSET', KEYS[2], key, id)
    added = added + 1
  end
  i = i + 2 + 2 * n
end
return added
"""


def append_once(client: redis.Redis, stream: str, entries: Sequence[tuple[str, Mapping[str, str]]], maxlen: int) -> int:
    """XADD each (key, fields) whose key is not in ``stream`` yet; atomic (one Lua script). Returns how many were
    added: a retry, a re-export or a second writer adds nothing twice, while an entry that was deleted or trimmed
    away is written again."""
    if not entries:
        return 0
    args: list[str | int] = [maxlen]
    for key, fields in entries:
        args += [key, len(fields)]
        for name, value in fields.items():
            args += [name, value]
    script = client.register_script(_APPEND_ONCE)
    return int(script(keys=[stream, append_index(stream)], args=args))
