"""A bot's order stream (``bot:orders:{symbol}``): reading its intents, dead-lettering the bad ones, publishing.

The stream is read whole, in stream order, because an intent's consistency depends on every intent before it
(a cancel needs its place) and one after it (a cancel before its place is told apart from an unknown id); a
rejected intent goes to ``bot:orders:{symbol}:dlq`` once, however often a partition is re-run (``append_once``
keyed by the entry id), in the dead-letter record format of the tick stream (docs/ingest.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from shadow_pipeline.domain.strategies.external.intents import CheckedIntents, Grid, Rejected, check_intents
from shadow_pipeline.ingest.dead_letters import read_range_bytes, record
from shadow_pipeline.redis_io.keys import dead_letter_stream, order_stream
from shadow_pipeline.redis_io.streams import append_once

_CHUNK = 10_000
_DLQ_MAXLEN = 1_000_000
_DLQ_BATCH = 1_000
_UNREADABLE = "a field name or value is not UTF-8 text, or a field name repeats"


@dataclass(frozen=True)
class StreamIntents:
    """What the stream held: the checked intents, and how many rejections were new in the dead-letter stream."""

    checked: CheckedIntents
    entries: int
    dead_lettered_now: int


def _decode(flat: list[bytes]) -> dict[str, str] | None:
    """Fields as text; None when a name or value is not UTF-8 or a name repeats (no reading of it is safe)."""
    fields: dict[str, str] = {}
    try:
        for name, value in zip(flat[0::2], flat[1::2], strict=False):
            key = name.decode("utf-8")
            if key in fields:
                return None
            fields[key] = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return fields


def read_raw_entries(client: redis.Redis, stream: str) -> list[tuple[str, list[bytes]]]:
    """Every entry of ``stream`` as (id, ``[name, value, ...]`` bytes), oldest first: raw, so a field name given
    twice or bytes that are not UTF-8 reach the checks instead of vanishing in a dict or a decode error."""
    out: list[tuple[str, list[bytes]]] = []
    start = "-"
    while True:
        ids, flats = read_range_bytes(client, stream, start, _CHUNK)
        out.extend(zip(ids, flats, strict=True))
        if len(ids) < _CHUNK:
            return out
        start = f"({ids[-1]}"


def load_intents(client: redis.Redis, symbol: str, grid: Grid) -> StreamIntents:
    """The bot's intents for ``symbol``, checked; the rejected ones dead-lettered (once) with their reasons."""
    stream = order_stream(symbol)
    raw = read_raw_entries(client, stream)
    decoded = [(entry_id, _decode(flat)) for entry_id, flat in raw]
    checked = check_intents([(i, fields) for i, fields in decoded if fields is not None], grid)
    unreadable = [Rejected(i, _UNREADABLE) for i, fields in decoded if fields is None]
    checked.rejected[:0] = unreadable
    flats = dict(raw)
    letters = [(r.entry_id, record(r.entry_id, stream, r.reason, flats[r.entry_id])) for r in checked.rejected]
    # in batches: one script over a misconfigured bot's every rejection would hold Redis for seconds
    added = sum(
        append_once(client, dead_letter_stream(stream), letters[at : at + _DLQ_BATCH], _DLQ_MAXLEN)
        for at in range(0, len(letters), _DLQ_BATCH)
    )
    return StreamIntents(checked, len(raw), added)


def publish_intents(client: redis.Redis, symbol: str, intents: Iterable[Mapping[str, str]]) -> int:
    """XADD each intent to the bot's stream (what a bot does; the example bot and the tests use it)."""
    pipe = client.pipeline(transaction=False)
    count = 0
    for fields in intents:
        entry: dict[Any, Any] = dict(fields)
        pipe.xadd(order_stream(symbol), entry)
        count += 1
    pipe.execute()
    return count
