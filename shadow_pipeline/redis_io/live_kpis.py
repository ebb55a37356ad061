"""The live shadow's window records in Redis: one stream entry per closed window (appended once, keyed like the
batch export's, so a restarted live shadow republishes nothing) and a hash with the latest window per instrument.

The records are the batch's (``records.iteration_records``) with ``source`` live and the close and publication
times; reading them back serves the ``live_windows_match_batch`` check and the latency bench.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import redis

from shadow_pipeline.domain.kpis.records import PENDING, from_fields
from shadow_pipeline.redis_io.keys import live_kpi_hash, live_kpi_stream
from shadow_pipeline.redis_io.kpi_export import (
    DEFAULT_STREAM_MAXLEN,
    DEFAULT_TTL_SECONDS,
    append_by_symbol,
    replace_hash,
)

LIVE = "live"


def publish(
    client: redis.Redis,
    records: Sequence[Mapping[str, Any]],
    maxlen: int = DEFAULT_STREAM_MAXLEN,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
) -> int:
    """Append the windows not published before to ``shadow:live:kpi:stream:{symbol}`` and, when any was new,
    put the newest of them in ``shadow:live:kpi:{symbol}``; returns how many were new. Validated first: a bad
    record writes nothing. Each record says its verdict is ``PENDING``: a window cannot know its partition's."""
    pending = [{**record, "verdict": PENDING} for record in records]
    added = 0
    for symbol, (new, batch) in append_by_symbol(client, pending, live_kpi_stream, maxlen).items():
        if new:
            newest = max(batch, key=lambda r: (str(r["partition"]), int(r["iteration"])))
            pipe = client.pipeline(transaction=True)
            replace_hash(pipe, live_kpi_hash(symbol), newest, ttl_seconds)
            pipe.execute()
        added += new
    return added


def read_live_records(client: redis.Redis, symbol: str, **match: Any) -> list[dict[str, Any]]:
    """The live window records of ``symbol`` (typed), those whose fields equal ``match`` (e.g. partition,
    profile, window_seconds, params_digest), in publication order."""
    entries: list[Any] = client.xrange(live_kpi_stream(symbol))  # type: ignore[assignment]
    records = [from_fields({_text(k): _text(v) for k, v in fields.items()}) for _, fields in entries]
    return [r for r in records if all(r.get(name) == value for name, value in match.items())]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
