"""Replay source ticks into a Redis Stream, numbered per instrument, paced, optionally with injected faults."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import redis
from tqdm import tqdm

from shadow_pipeline.domain.market.faults import FaultReport, FaultSpec, inject
from shadow_pipeline.domain.market.instruments import instrument_key
from shadow_pipeline.domain.market.shards import check_shards, shard_of, shard_streams
from shadow_pipeline.domain.market.ticks import VENUE_FIELD
from shadow_pipeline.redis_io.keys import depth_stream
from shadow_pipeline.redis_io.streams import (
    DEFAULT_MAXLEN,
    DEFAULT_STREAM,
    StreamInfo,
    stream_info,
    to_field_rows,
    xadd_rows,
)

log = logging.getLogger(__name__)
_NS = 1e9


@dataclass(frozen=True)
class ReplayOptions:
    """``speed`` 0 = as fast as possible, 1 = real time, N = N x real time (market time from ``ts_local``)."""

    stream: str = DEFAULT_STREAM
    maxlen: int | None = DEFAULT_MAXLEN
    speed: float = 0.0
    batch_size: int = 1000
    faults: FaultSpec = field(default_factory=FaultSpec)
    progress: bool | None = None  # None: a bar only when stderr is a terminal
    shards: int = 1  # each tick goes to its instrument's shard of ``stream`` (domain.market.shards)

    def __post_init__(self) -> None:
        check_shards(self.shards)
        if self.speed < 0:
            raise ValueError(f"speed must be >= 0 (0 = as fast as possible), got {self.speed}")
        if not 1 <= self.batch_size <= 1_000_000:
            raise ValueError(f"batch_size must be 1 to 1000000, got {self.batch_size}")


@dataclass
class ReplayResult:
    """Counts are of valid ticks generated per instrument key (before faults: ``BTCUSDT`` on the default venue,
    ``BTCUSDT.binance-spot`` elsewhere, as the partitions name them); ``entries`` is what was XADDed."""

    entries: int = 0
    ticks_by_symbol: dict[str, int] = field(default_factory=dict)
    faults: FaultReport = field(default_factory=FaultReport)
    wall_seconds: float = 0.0
    market_seconds: float = 0.0
    first_ts_local: int | None = None
    last_ts_local: int | None = None
    stream: StreamInfo | None = None

    @property
    def entries_per_second(self) -> float:
        return self.entries / self.wall_seconds if self.wall_seconds > 0 else float("nan")


def _instruments(frame: pd.DataFrame) -> pd.Series:
    """Each row's instrument key: a venue's ticks are numbered in their own sequence, as a venue numbers them."""
    if VENUE_FIELD not in frame.columns:
        return frame["symbol"]
    pairs = zip(frame["symbol"], frame[VENUE_FIELD], strict=True)
    keys = [instrument_key(symbol, venue if isinstance(venue, str) else None) for symbol, venue in pairs]
    return pd.Series(keys, index=frame.index, dtype=object)


def number_ticks(frame: pd.DataFrame, next_seq: dict[str, int]) -> pd.DataFrame:
    """Give each tick its per-instrument ``seq`` (symbol, and venue when the frame has a ``venue`` column),
    continuing from ``next_seq`` (keyed by instrument key, updated in place)."""
    instruments = _instruments(frame)
    start = instruments.map(lambda s: next_seq.get(s, 1)).astype("int64")
    frame = frame.assign(seq=start + frame.groupby(instruments).cumcount())
    for key, last in frame.groupby(instruments)["seq"].max().items():
        next_seq[str(key)] = int(last) + 1
    return frame


class _Pacer:
    """Sleeps so that an entry with local time ``ts`` leaves at ``start + (ts - ts0) / speed``."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.origin: tuple[float, int] | None = None

    def due_count(self, ts_local: np.ndarray, start: int, limit: int) -> int:
        """How many entries from ``start`` may go now (at least one, after sleeping for it if needed)."""
        if self.speed == 0:
            return min(limit, len(ts_local) - start)
        if self.origin is None:
            self.origin = (time.monotonic(), int(ts_local[start]))
        wall0, ts0 = self.origin
        first_due = wall0 + (ts_local[start] - ts0) / _NS / self.speed
        delay = first_due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        market_now = ts0 + (time.monotonic() - wall0) * self.speed * _NS
        window = ts_local[start : start + limit]
        return max(1, int(np.searchsorted(window, market_now, side="right")))


def replay(
    client: redis.Redis,
    chunks: Iterable[pd.DataFrame],
    options: ReplayOptions,
    market_seconds_hint: float | None = None,
) -> ReplayResult:
    """XADD every chunk's ticks in order; returns counts, the fault report and stream info."""
    result = ReplayResult()
    next_seq: dict[str, int] = {}
    pacer = _Pacer(options.speed)
    started = time.perf_counter()
    bar = tqdm(
        total=round(market_seconds_hint) if market_seconds_hint else None,
        unit="mkt-s",
        desc=f"replay -> {options.stream}",
        disable=(None if options.progress is None else not options.progress),
        leave=False,
    )
    try:
        for index, chunk in enumerate(chunks):
            if chunk.empty:
                continue
            numbered = number_ticks(chunk, next_seq)
            for key, count in _instruments(numbered).value_counts().items():
                result.ticks_by_symbol[str(key)] = result.ticks_by_symbol.get(str(key), 0) + int(count)
            spec = options.faults
            if spec.any:
                chunk_spec = FaultSpec(**{**spec.__dict__, "seed": spec.seed + index})
                emitted, report = inject(numbered, chunk_spec)
                result.faults = result.faults + report
            else:
                emitted = numbered
            _send(client, emitted, options, pacer, result, bar)
    finally:
        bar.close()
    result.wall_seconds = time.perf_counter() - started
    if result.first_ts_local is not None and result.last_ts_local is not None:
        result.market_seconds = (result.last_ts_local - result.first_ts_local) / _NS
    result.stream = _shards_info(client, shard_streams(options.stream, options.shards))
    log.info(
        "replayed %d entries into %s in %.2fs (%.0f entries/s); ticks per symbol %s; faults %s",
        result.entries,
        options.stream,
        result.wall_seconds,
        result.entries_per_second,
        result.ticks_by_symbol,
        result.faults.as_dict() if options.faults.any else "none",
    )
    return result


def _shards_info(client: redis.Redis, streams: Sequence[str]) -> StreamInfo:
    """One stream's info, or the shards' together: their total length, the oldest first id and newest last id
    (ids of different streams compare by time; equal milliseconds may order either way)."""
    infos = [stream_info(client, stream) for stream in streams]
    if len(infos) == 1:
        return infos[0]
    firsts = [i.first_id for i in infos if i.first_id]
    lasts = [i.last_id for i in infos if i.last_id]
    return StreamInfo(
        sum(i.length for i in infos),
        min(firsts, key=_id_order) if firsts else None,
        max(lasts, key=_id_order) if lasts else None,
    )


def _id_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _shard_rows(emitted: pd.DataFrame, shards: int) -> np.ndarray:
    """Each row's shard, by its instrument key; hashed once per distinct key (a chunk holds a few instruments).
    A junk entry (fault injection) goes where its symbol's text, whatever it is, hashes to."""
    if shards == 1:
        return np.zeros(len(emitted), dtype=np.int64)
    symbols = emitted["symbol"].map(lambda value: value if isinstance(value, str) else "")
    frame = emitted.assign(symbol=symbols)
    codes, keys = pd.factorize(_instruments(frame))
    return np.array([shard_of(str(key), shards) for key in keys], dtype=np.int64)[codes]


def _xadd_sharded(
    client: redis.Redis, streams: Sequence[str], rows: Sequence[list[str]], shard: np.ndarray, maxlen: int | None
) -> None:
    """XADD ``rows``, each to its shard's stream: one pipeline per shard, each shard's rows in their order."""
    if len(streams) == 1:
        xadd_rows(client, streams[0], rows, maxlen)
        return
    for number in np.unique(shard):
        xadd_rows(client, streams[number], [rows[i] for i in np.flatnonzero(shard == number)], maxlen)


def _send(
    client: redis.Redis,
    emitted: pd.DataFrame,
    options: ReplayOptions,
    pacer: _Pacer,
    result: ReplayResult,
    bar: tqdm,
) -> None:
    # Pacing follows emission order; junk entries carry their source's time, delayed ones keep their own.
    ts_local = np.maximum.accumulate(pd.to_numeric(emitted["ts_local"], errors="coerce").ffill().to_numpy())
    fields = to_field_rows(emitted)
    shard = _shard_rows(emitted, options.shards)
    streams = shard_streams(options.stream, options.shards)
    if result.first_ts_local is None:
        result.first_ts_local = int(ts_local[0])
    position = 0
    while position < len(fields):
        take = pacer.due_count(ts_local, position, options.batch_size)
        end = position + take
        _xadd_sharded(client, streams, fields[position:end], shard[position:end], options.maxlen)
        result.entries += take
        result.last_ts_local = int(ts_local[position + take - 1])
        bar.update(round((result.last_ts_local - result.first_ts_local) / _NS) - bar.n)
        position += take


def replay_depth(client: redis.Redis, records: Sequence[dict[str, str]], batch_size: int = 1000) -> dict[str, int]:
    """XADD depth stream entries (``domain.market.depth.depth_fields``) to ``lob:depth:{instrument key}``, in
    order, untrimmed (a trimmed stream loses the snapshot its deltas build on); returns the entries per stream."""
    written: dict[str, int] = {}
    for start in range(0, len(records), batch_size):
        batch = records[start : start + batch_size]
        streams = [depth_stream(instrument_key(r["symbol"], r.get(VENUE_FIELD))) for r in batch]
        pipe = client.pipeline(transaction=False)
        for stream, record in zip(streams, batch, strict=True):
            pipe.xadd(stream, dict(record))  # type: ignore[arg-type]
        pipe.execute()
        for stream in streams:
            written[stream] = written.get(stream, 0) + 1
    log.info("replayed depth: %s", written)
    return written
