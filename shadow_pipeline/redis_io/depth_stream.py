"""Reading one instrument's L2 depth stream (``lob:depth:{key}``) for a time range, every entry checked.

A bad entry is an error naming its id, never skipped: a book that missed or misread one update is wrong from then
on at the levels it touched, and a reality run on it would fill orders against liquidity that was never there.
Fix the publisher (or run the dry-run with ``depth: off``); the reader does not guess.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd
import redis
from redis.client import NEVER_DECODE

from shadow_pipeline.domain.market.depth import DELTA, SNAPSHOT, DepthEntry, MalformedDepth, depth_table, order_reason
from shadow_pipeline.domain.market.depth import parse_depth_entry as parse
from shadow_pipeline.redis_io.keys import depth_stream

PAGE = 2000  # entries per XRANGE call: a snapshot entry holds up to ~1 MB of levels


class BadDepthEntry(ValueError):
    """A depth stream entry that cannot be part of a book (malformed, out of order, or with no snapshot before)."""


@dataclass(frozen=True)
class DepthRead:
    """What the reality runs on: ``levels`` (``depth.DEPTH_COLUMNS``) from the last snapshot at or before the
    range's start to its end, and counts for the run's notes."""

    stream: str
    levels: pd.DataFrame
    snapshots: int
    deltas: int
    first_snapshot: tuple[int, int]  # levels (bids, asks) of the snapshot the book starts from

    def describe(self) -> str:
        """The reality's input line, e.g. ``full depth: lob:depth:BTCUSDT, 1 snapshot (1000x1000 levels), 6,551
        diffs``."""
        bids, asks = self.first_snapshot
        plural = "" if self.snapshots == 1 else "s"
        levels = f"({bids}x{asks} levels)"
        return f"full depth: {self.stream}, {self.snapshots:,} snapshot{plural} {levels}, {self.deltas:,} diffs"


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="surrogateescape") if isinstance(value, bytes) else str(value)


def _entries(client: redis.Redis, stream: str) -> Iterator[tuple[str, dict[str, str]]]:
    """Every entry, paged; read as bytes whatever the client decodes, so that a field that is not UTF-8 is a bad
    entry named by its id rather than a decoding error of the whole page."""
    low = "-"
    while True:
        page: Any = client.execute_command("XRANGE", stream, low, "+", "COUNT", PAGE, **{NEVER_DECODE: True})
        for entry_id, fields in page:
            yield _text(entry_id), {_text(k): _text(v) for k, v in (fields or {}).items()}
        if len(page) < PAGE:
            return
        low = "(" + _text(page[-1][0])


def read_depth(client: redis.Redis, symbol: str, start_ns: int, end_ns: int) -> DepthRead | None:
    """The depth of ``symbol`` for ``start_ns <= ts_server < end_ns``, plus the last snapshot at or before
    ``start_ns`` and the deltas after it (so the book at ``start_ns`` is known); None when no entry falls in the
    range (the stream is absent, or it says nothing about this range). Raises :class:`BadDepthEntry` naming the
    stream and entry id for a malformed entry, one out of order, or a delta in the range with no snapshot before
    it (a trimmed stream)."""
    stream = depth_stream(symbol)
    kept: list[DepthEntry] = []
    previous: DepthEntry | None = None
    in_range = 0
    for entry_id, fields in _entries(client, stream):
        try:
            entry = parse(fields)
        except MalformedDepth as exc:
            raise BadDepthEntry(f"{stream} entry {entry_id}: {exc.reason}") from None
        reason = order_reason(previous, entry)
        if reason is None and entry.symbol != symbol:
            reason = f"symbol {entry.symbol} in the stream of {symbol}"
        if reason is not None:
            raise BadDepthEntry(f"{stream} entry {entry_id}: {reason}")
        previous = entry
        if entry.ts_server >= end_ns:
            break
        if entry.kind == SNAPSHOT and entry.ts_server <= start_ns:
            kept = [entry]
        elif kept or entry.kind == SNAPSHOT:
            kept.append(entry)
        elif entry.ts_server >= start_ns:
            raise BadDepthEntry(
                f"{stream} entry {entry_id}: a delta with no snapshot before it, the book is unknown "
                "(was the stream trimmed past its snapshot?)"
            )
        in_range += entry.ts_server >= start_ns
    if not in_range:
        return None
    first = kept[0]
    return DepthRead(
        stream=stream,
        levels=depth_table(kept),
        snapshots=sum(e.kind == SNAPSHOT for e in kept),
        deltas=sum(e.kind == DELTA for e in kept),
        first_snapshot=(len(first.bids), len(first.asks)),
    )
