"""A batch of delivered stream entries as typed ticks, however it was read.

Two ways in, one result: raw reply bytes (the consumer's hot path, see ``entry_scan``: XREADGROUP with
:func:`from_reply`, XAUTOCLAIM with :func:`from_claim_reply`, XRANGE with :func:`from_range_reply`) or entries
already split into fields (:func:`from_entries`, :func:`from_field_maps`, str or bytes). Either way each entry ends
up a typed tick, a rejection with its reason, or a trimmed entry (deleted from the stream while pending), and its
original fields stay reachable, byte for byte, for the dead-letter record.

Any bytes are safe: field bytes that are not UTF-8 are decoded with ``surrogateescape`` for parsing, so they never
match a rule (the field's own rule names the entry's reason) and are never decoded strictly anywhere; a field name
that occurs twice makes the entry a reject (``duplicate field``) rather than letting one value silently win.

Each typed tick also gets what Redis adds to it: ``entry_id`` (the landing zone dedups and orders by it) and
``ts_broker``, Redis's clock when the entry was written (the id's milliseconds, in ns like every time in the
project), which the latency KPI's broker leg reads. Both ways in add them, so landed ticks are the same whichever
way an entry came.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import redis

from shadow_pipeline.domain.market.ticks import (
    ENTRY_FIELDS,
    FIELDS,
    TYPED_COLUMNS,
    ParsedBatch,
    duplicate_field_reason,
    parse_table,
    typed_table,
)
from shadow_pipeline.ingest.entry_scan import (
    CLAIM,
    ERROR,
    NS_PER_MS,
    RANGE,
    READ,
    SIDE_NAMES,
    UNEXPECTED,
    entry_ids,
    field_bytes,
    scan,
)
from shadow_pipeline.redis_io.raw_reply import error_of

_KEYS = np.array(FIELDS, dtype=object)
# A landed tick's columns: ``entry_id`` first, ``ts_broker`` after ``ts_local`` (the three clocks in path order).
_TYPED, _BROKER_AT = list(TYPED_COLUMNS), list(TYPED_COLUMNS).index("ts_local") + 1
LANDED_COLUMNS = ("entry_id", *_TYPED[:_BROKER_AT], "ts_broker", *_TYPED[_BROKER_AT:])
TRIMMED = "entry trimmed from the stream before it was landed"


@dataclass(frozen=True)
class Delivery:
    ids: np.ndarray  # entry ids (str), in delivery order; positions index everything below
    parsed: ParsedBatch  # ticks (with entry_id, ts_broker) and rejects (TRIMMED: deleted while pending), by position
    original: Callable[[int], list[bytes] | None]  # an entry's flat fields, exact bytes, for its dead-letter record
    cursor: str = ""  # XAUTOCLAIM's next start id ("0-0": done); "" for other replies

    def __len__(self) -> int:
        return len(self.ids)


def broker_times(ids: np.ndarray) -> np.ndarray:
    """``ts_broker`` (int64 ns) of decoded entry ids: the millisecond part times NS_PER_MS, the scan's rule.

    Redis ids are ``<ms>-<seq>`` in plain digits; the ns value fits int64 for ids up to the year 2262.
    """
    # Arrow's kernels split thousands of ids in a fraction of the time of Python string methods.
    head = pc.list_element(pc.split_pattern(pa.array(ids, type=pa.string()), "-", max_splits=1), 0)
    return np.asarray(pc.cast(head, pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64) * NS_PER_MS


def _add_entry_columns(ticks: pd.DataFrame, ids: np.ndarray, ts_broker: np.ndarray) -> None:
    """Insert ``entry_id`` and ``ts_broker`` where ``LANDED_COLUMNS`` has them, taking each tick's values by its
    position (its index)."""
    rows = ticks.index.to_numpy()
    # object dtype: pandas would infer an Arrow string column, whose takes and iteration cost far more here
    ticks.insert(0, "entry_id", pd.Series(ids[rows], index=ticks.index, dtype=object))
    ticks.insert(LANDED_COLUMNS.index("ts_broker"), "ts_broker", ts_broker[rows])


def from_reply(reply: np.ndarray) -> Delivery:
    """An XREADGROUP reply's raw bytes; a Redis error reply is raised as redis-py's ResponseError."""
    return _from_scan(reply, READ, "XREADGROUP")


def from_claim_reply(reply: np.ndarray) -> Delivery:
    """An XAUTOCLAIM reply's raw bytes (``read_raw(client, "XAUTOCLAIM", stream, group, consumer, min_idle, start,
    "COUNT", n)``): the claimed entries, then the ids it reports deleted (rejected as TRIMMED), and
    ``Delivery.cursor``, where the next call starts ("0-0" when the scan is complete)."""
    return _from_scan(reply, CLAIM, "XAUTOCLAIM")


def from_range_reply(reply: np.ndarray) -> Delivery:
    """An XRANGE (or XREVRANGE) reply's raw bytes, e.g. for a scan of the stream outside the consumer group."""
    return _from_scan(reply, RANGE, "XRANGE")


def _from_scan(reply: np.ndarray, kind: int, command: str) -> Delivery:
    batch = scan(reply, kind)
    if batch.status == ERROR:
        raise error_of(reply)
    if batch.status == UNEXPECTED:
        raise redis.exceptions.ResponseError(f"unexpected {command} reply: {bytes(reply[:60])!r}")
    regular = np.flatnonzero(batch.regular)
    symbols = np.array(batch.symbols, dtype=object)
    ids = entry_ids(batch)
    everyone = len(regular) == len(batch.regular)  # the usual reply: no column is copied to leave rows out
    rows = slice(None) if everyone else regular
    fast = typed_table(
        {
            "symbol": symbols[batch.symbol_code[rows]] if len(symbols) else np.empty(0, dtype=object),
            "seq": batch.ints[rows, 0],
            "ts_server": batch.ints[rows, 1],
            "ts_local": batch.ints[rows, 2],
            "bid": batch.floats[rows, 0],
            "ask": batch.floats[rows, 1],
            "bid_qty": batch.floats[rows, 2],
            "ask_qty": batch.floats[rows, 3],
            "last_qty": batch.floats[rows, 4],
            "last_px": batch.last_px[rows],
            "last_side": np.array(SIDE_NAMES, dtype=object)[batch.side_code[rows]],
        },
        index=regular,
        carried={"entry_id": ids[rows], "ts_broker": batch.ts_broker[rows]},
        order=LANDED_COLUMNS,
    )

    def original(position: int) -> list[bytes] | None:
        return field_bytes(reply, batch, position)

    irregular = np.flatnonzero(~batch.regular)
    if len(irregular) == 0:
        return Delivery(ids, fast, original, batch.cursor)
    slow = from_entries([(ids[p], original(int(p))) for p in irregular])
    return Delivery(
        ids,
        ParsedBatch(
            pd.concat([fast.ticks, slow.parsed.ticks.set_axis(irregular[slow.parsed.ticks.index])]).sort_index(),
            pd.concat([fast.rejects, slow.parsed.rejects.set_axis(irregular[slow.parsed.rejects.index])]).sort_index(),
        ),
        original,
        batch.cursor,
    )


Fields = Sequence[str] | Sequence[bytes]


def _text(value: str | bytes) -> str:
    """What the parser sees: bytes that are not UTF-8 become lone surrogates, which no tick rule accepts."""
    return value.decode("utf-8", errors="surrogateescape") if isinstance(value, bytes) else value


def _raw(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("utf-8", errors="surrogateescape")


def from_entries(entries: Sequence[tuple[str | bytes, Fields | None]]) -> Delivery:
    """Entries as ``(id, [k, v, k, v, ...])`` (str or bytes), ``None`` fields for a deleted entry."""
    ids = np.array([_text(e[0]) for e in entries], dtype=object)
    flats = [None if e[1] is None else [_text(x) for x in e[1]] for e in entries]
    raws = [None if e[1] is None else [_raw(x) for x in e[1]] for e in entries]
    columns, trimmed, duplicated = _columns(flats)
    parsed = parse_table(columns, rejected=duplicated)
    rejects = parsed.rejects.copy()
    rejects.loc[trimmed] = TRIMMED  # their placeholder fields were rejected; this is the reason that matters
    _add_entry_columns(parsed.ticks, ids, broker_times(ids))
    return Delivery(ids, ParsedBatch(parsed.ticks, rejects), raws.__getitem__)


def from_field_maps(entries: Sequence[tuple[str | bytes, dict[str, str] | dict[bytes, bytes] | None]]) -> Delivery:
    """Entries as redis-py returns them for XAUTOCLAIM or XRANGE: ``(id, {k: v})``, str or bytes. A map cannot hold
    a field name twice (redis-py keeps the last value): prefer the raw replies, which see every field."""
    flat = itertools.chain.from_iterable
    return from_entries([(i, None if f is None else list(flat(f.items()))) for i, f in entries])  # type: ignore[misc]


def _columns(flats: Sequence[list[str] | None]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Flat field lists to one object array per field; returns also the positions of trimmed (empty) entries and,
    per entry, the ``duplicate field`` reason of an entry that names a field twice (None for the others)."""
    n = len(flats)
    duplicated = np.full(n, None, dtype=object)
    trimmed = np.array([i for i, f in enumerate(flats) if not f], dtype=int)
    if len(trimmed) == 0:
        table = np.array(flats, dtype=object)
        if table.ndim == 2 and table.shape[1] == 2 * len(FIELDS) and (table[:, 0::2] == _KEYS).all():
            return {name: table[:, 2 * i + 1] for i, name in enumerate(FIELDS)}, trimmed, duplicated
    for row, f in enumerate(flats):
        names = f[0::2] if f else []
        if len(set(names)) < len(names):
            duplicated[row] = duplicate_field_reason([k for k, c in Counter(names).items() if c > 1])
    maps = [dict(zip(f[0::2], f[1::2], strict=False)) if f else {} for f in flats]
    columns = {name: np.array([m.get(name) for m in maps], dtype=object) for name in ENTRY_FIELDS}
    if n and len(trimmed):
        for name in FIELDS:
            columns[name][trimmed] = "-"  # placeholders: trimmed entries are dead-lettered for their own reason
    return columns, trimmed, duplicated


def subset(delivery: Delivery, keep: np.ndarray) -> Delivery:
    """The entries at positions ``keep`` (sorted), renumbered."""
    ticks, rejects = delivery.parsed.ticks, delivery.parsed.rejects
    ticks = ticks[ticks.index.isin(keep)]
    rejects = rejects[rejects.index.isin(keep)]
    parsed = ParsedBatch(
        ticks.set_axis(np.searchsorted(keep, ticks.index.to_numpy())),
        rejects.set_axis(np.searchsorted(keep, rejects.index.to_numpy())),
    )
    return Delivery(delivery.ids[keep], parsed, lambda p: delivery.original(int(keep[p])))


def without(delivery: Delivery, ids: set[str]) -> Delivery:
    if not ids:
        return delivery
    return subset(delivery, np.array([p for p, i in enumerate(delivery.ids) if i not in ids], dtype=np.int64))
