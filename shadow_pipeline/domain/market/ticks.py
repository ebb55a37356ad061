"""The tick schema: the flat string fields of one stream entry and the typed row they parse into.

See ``docs/tick-schema.md``. Times are integer nanoseconds since the Unix epoch everywhere. Every entry carries
the touch (``bid``/``ask`` with sizes); a *trade tick* additionally names the aggressor in ``last_side`` and
the print in ``last_px``/``last_qty``, while a *quote tick* has ``last_side=""``, ``last_px=""`` and
``last_qty="0"``. Parsing is vectorized over a batch; :func:`parse_entry` is the same rules on one entry.

An entry may name its venue (``venue``, e.g. ``bybit-linear``); absent, it is on the default venue. A typed tick's
``symbol`` is the instrument's key (``domain.market.instruments``: ``BTCUSDT`` on the default venue,
``BTCUSDT.bybit-linear`` elsewhere), so that the same symbol on two venues never shares a partition, a sequence
space or a Redis key, while a single-venue feed keeps its bare symbols.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from shadow_pipeline.domain.market.instruments import SYMBOL_PATTERN, VENUE_PATTERN, instrument_key

FIELDS: tuple[str, ...] = (
    "symbol",
    "seq",
    "ts_server",
    "ts_local",
    "bid",
    "ask",
    "bid_qty",
    "ask_qty",
    "last_px",
    "last_qty",
    "last_side",
)
# What a source (a recording, the synthetic market) yields: the tick's fields but ``seq``, which the producer numbers.
SOURCE_COLUMNS = tuple(name for name in FIELDS if name != "seq")
VENUE_FIELD = "venue"
OPTIONAL_FIELDS = (VENUE_FIELD,)  # an entry may leave these out
ENTRY_FIELDS = (*FIELDS, *OPTIONAL_FIELDS)
PRICE_FIELDS = ("bid", "ask", "bid_qty", "ask_qty")
INT_FIELDS = ("seq", "ts_server", "ts_local")
SIDES = ("buy", "sell")
QUOTE_SIDE = ""

# Typed columns of a parsed batch, in order; ``is_trade`` is derived from ``last_side``. numpy dtype objects, not
# names: pandas resolves a name through its dtype registry on every column of every batch.
TYPED_COLUMNS: dict[str, np.dtype] = {
    name: np.dtype(kind)
    for name, kind in {
        "symbol": "object",
        "seq": "int64",
        "ts_server": "int64",
        "ts_local": "int64",
        "bid": "float64",
        "ask": "float64",
        "bid_qty": "float64",
        "ask_qty": "float64",
        "last_px": "float64",
        "last_qty": "float64",
        "last_side": "object",
        "is_trade": "bool",
    }.items()
}

_ALL_SIDES = frozenset((*SIDES, QUOTE_SIDE))
# Up to MAX_UINT: every match fits int64, so the cast below cannot overflow. A rejection states the range, so
# that a feed with seqs past it sees why (not that a 19-digit seq is "not an integer").
MAX_UINT = 8_999_999_999_999_999_999
_UINT_RE = re.compile(r"[0-9]{1,18}|[1-8][0-9]{18}")
_DECIMAL_RE = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")

# The sane range of exchange time (docs/tick-schema.md): from 2009-01-01 00:00 UTC (before any crypto venue) to one
# day past the wall clock of the parse. Outside it a tick would be a partition of another era (2262 for the largest
# int64) or, in the future, would close every open hour at once; it is a dead letter instead.
TS_SERVER_MIN = 1_230_768_000_000_000_000  # 2009-01-01T00:00:00Z in ns
TS_SERVER_AHEAD = 86_400_000_000_000  # 1 day in ns
TS_SERVER_RANGE_REASON = "ts_server out of range (want 2009-01-01 to 1 day past now, UTC)"
_NAME_SHOWN = 40  # characters of a field name quoted in a reason
_NAMES_SHOWN = 10


def ts_server_max(now_ns: int | None = None) -> int:
    """The newest sane exchange time: one day past ``now_ns`` (the wall clock by default)."""
    return (time.time_ns() if now_ns is None else now_ns) + TS_SERVER_AHEAD


def sane_ts_server(values: np.ndarray, now_ns: int | None = None) -> np.ndarray:
    """Which int64 exchange times are in the sane range (see TS_SERVER_MIN)."""
    values = np.asarray(values, dtype=np.int64)
    return (values >= TS_SERVER_MIN) & (values <= ts_server_max(now_ns))


def printable(text: str, limit: int = _NAME_SHOWN) -> str:
    """A field name as it can be quoted anywhere: bytes that were not UTF-8 as ``\\xNN``, cut to ``limit`` chars."""
    shown = text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")
    return shown if len(shown) <= limit else shown[:limit] + "..."


def duplicate_field_reason(names: Iterable[str]) -> str:
    """The reason of an entry that names a field more than once (a map-based client would keep only one value)."""
    twice = sorted(names)
    shown = ",".join(printable(name) for name in twice[:_NAMES_SHOWN])
    return "duplicate field: " + shown + (f" (+{len(twice) - _NAMES_SHOWN} more)" if len(twice) > _NAMES_SHOWN else "")


class MalformedTick(ValueError):
    """A stream entry that is not a valid tick; ``reason`` says which rule it broke."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ParsedBatch:
    """Typed ticks (index = position in the input batch) and rejected positions with their reasons."""

    ticks: pd.DataFrame
    rejects: pd.Series  # position -> reason


def empty_ticks() -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in TYPED_COLUMNS.items()})


def _matches(values: np.ndarray, pattern: re.Pattern[str]) -> np.ndarray:
    """Whole-string matches of ``pattern``; a value that is not a str (None, a number, bytes) does not match.

    One syntax for every batch: ``astype`` would also take " 5", "+5", "1_000" or Arabic-Indic digits, and
    falling back to it only when a batch has no bad value made a tick's fate depend on its neighbours.
    """
    match = pattern.fullmatch
    return np.fromiter((isinstance(v, str) and match(v) is not None for v in values), dtype=bool, count=len(values))


def _ints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact int64 parse (floats would round nanosecond times); returns (values, ok mask)."""
    ok = _matches(values, _UINT_RE)
    parsed = np.where(ok, values, "0").astype(np.int64)
    return parsed, ok & (parsed > 0)


def _floats(values: np.ndarray) -> np.ndarray:
    """float64, NaN where a value is absent or not a decimal number."""
    return np.where(_matches(values, _DECIMAL_RE), values, "nan").astype(np.float64)


def _valid_codes(values: np.ndarray, is_valid: Callable[[str], bool]) -> np.ndarray:
    """Check a low-cardinality column (symbol, side) once per distinct value."""
    items = values.tolist()
    verdict = {v: isinstance(v, str) and is_valid(v) for v in set(items)}
    return np.fromiter((verdict[v] for v in items), dtype=bool, count=len(items))


def _rejecter(reasons: np.ndarray, open_rows: np.ndarray) -> Callable[[np.ndarray, str | np.ndarray], None]:
    """``reject(failed, reason)``: rows still open that fail get the reason and close (first rule wins)."""

    def reject(failed: np.ndarray, reason: str | np.ndarray) -> None:
        todo = failed & open_rows
        if todo.any():
            reasons[todo] = reason[todo] if isinstance(reason, np.ndarray) else reason
            open_rows[todo] = False

    return reject


def parse_table(columns: Mapping[str, np.ndarray], rejected: np.ndarray | None = None) -> ParsedBatch:
    """Parse a batch held column-wise (one object array per field, None where a field is absent).

    This is the one place where the tick rules live; it works on whole columns so that a consumer can keep up
    with Redis (see docs/tick-schema.md for the rules and their order). ``rejected`` (a reason or None per row)
    holds what the caller found while building the columns, e.g. a ``duplicate field`` (a column can hold only one
    value per entry); such a reason comes first.
    """
    n = len(next(iter(columns.values()))) if columns else 0
    col = {name: columns.get(name, np.full(n, None, dtype=object)) for name in FIELDS}
    absent = [np.asarray(pd.isna(col[name]), dtype=bool) for name in FIELDS]
    missing = np.column_stack(absent) if n else np.zeros((0, len(FIELDS)), dtype=bool)
    reasons = np.full(n, None, dtype=object)
    open_rows = np.ones(n, dtype=bool)
    reject = _rejecter(reasons, open_rows)
    if rejected is not None:
        given = np.array([r is not None for r in rejected], dtype=bool)
        reject(given, np.asarray(rejected, dtype=object))
    any_missing = missing.any(axis=1)
    if any_missing.any():
        names = np.full(n, None, dtype=object)
        for row in np.flatnonzero(any_missing):
            names[row] = "missing field: " + ",".join(f for f, gone in zip(FIELDS, missing[row], strict=True) if gone)
        reject(np.asarray(any_missing), names)

    reject(
        ~_valid_codes(col["symbol"], lambda v: SYMBOL_PATTERN.fullmatch(v) is not None),
        "bad symbol (want 1-24 of A-Z0-9)",
    )
    venue = columns.get(VENUE_FIELD, np.full(n, None, dtype=object))
    reject(
        ~_valid_codes(venue, lambda v: VENUE_PATTERN.fullmatch(v) is not None) & ~pd.isna(venue),
        "bad venue (want exchange-market in a-z0-9, e.g. bybit-linear, or no venue field)",
    )
    ints: dict[str, np.ndarray] = {}
    for name in INT_FIELDS:
        ints[name], ok = _ints(col[name])
        reject(~ok, f"{name} is not a positive integer of plain digits up to {MAX_UINT}")

    nums = {name: _floats(col[name]) for name in (*PRICE_FIELDS, "last_qty")}
    for name in PRICE_FIELDS:
        reject(~np.isfinite(nums[name]), f"non-numeric {name}")
    side = col["last_side"]
    reject(~_valid_codes(side, lambda v: v in _ALL_SIDES), "unknown side (want buy, sell or empty)")
    px_text = col["last_px"]
    has_px = np.array([v is not None and v != "" for v in px_text], dtype=bool)
    last_px = np.full(n, np.nan)
    last_px[has_px] = _floats(px_text[has_px])
    typed = {
        "symbol": _keys(col["symbol"], venue, open_rows),
        **ints,
        **nums,
        "last_px": last_px,
        "last_side": side,
    }
    return _check_values(typed, has_px, reasons, open_rows)


def _keys(symbols: np.ndarray, venues: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each valid row's instrument key, computed once per distinct (symbol, venue); other rows keep their symbol
    (they are rejects, and a reject's fields are never read)."""
    if not valid.any() or pd.isna(venues).all():
        return symbols
    keys = symbols.copy()
    pairs = list(zip(symbols[valid].tolist(), venues[valid].tolist(), strict=True))
    known = {pair: instrument_key(*pair) for pair in set(pairs)}
    keys[valid] = np.array([known[pair] for pair in pairs], dtype=object)
    return keys


def typed_table(
    typed: Mapping[str, np.ndarray],
    index: np.ndarray | None = None,
    carried: Mapping[str, np.ndarray] | None = None,
    order: Sequence[str] | None = None,
) -> ParsedBatch:
    """Ticks whose fields are already converted to their types (e.g. by ``ingest.entry_scan``), NaN ``last_px``
    for a quote tick: only the value rules apply. ``index`` names each row's position in its batch. ``carried``
    columns (a value per row, e.g. the ingest's entry ids) ride along into the ticks, in ``order``: built in the
    one frame rather than inserted after, which costs a copy of the batch."""
    n = len(typed["seq"])
    reasons = np.full(n, None, dtype=object)
    parsed = _check_values(typed, ~np.isnan(typed["last_px"]), reasons, np.ones(n, dtype=bool), carried, order)
    if index is None:
        return parsed
    return ParsedBatch(
        parsed.ticks.set_axis(index[parsed.ticks.index]), parsed.rejects.set_axis(index[parsed.rejects.index])
    )


def _check_values(
    typed: Mapping[str, np.ndarray],
    has_px: np.ndarray,
    reasons: np.ndarray,
    open_rows: np.ndarray,
    carried: Mapping[str, np.ndarray] | None = None,
    order: Sequence[str] | None = None,
) -> ParsedBatch:
    """The rules on values (after each field has its type), in order; the first broken rule is the reason."""
    reject = _rejecter(reasons, open_rows)
    reject(~sane_ts_server(typed["ts_server"]), TS_SERVER_RANGE_REASON)
    for name in PRICE_FIELDS:
        reject(typed[name] <= 0, f"non-positive {name}")
    reject(np.asarray(typed["bid"] >= typed["ask"]), "crossed book: bid >= ask")
    side, last_px, last_qty = typed["last_side"], typed["last_px"], typed["last_qty"]
    is_trade = np.isin(side, SIDES)
    reject(is_trade & ~np.isfinite(last_px), "trade tick with non-numeric last_px")
    reject(is_trade & ~np.isfinite(last_qty), "trade tick with non-numeric last_qty")
    reject(is_trade & (last_px <= 0), "trade tick with non-positive last_px")
    reject(is_trade & (last_qty <= 0), "trade tick with non-positive last_qty")
    reject(
        np.equal(side, QUOTE_SIDE) & (has_px | (last_qty != 0)),
        "quote tick with trade fields (want last_px empty, last_qty 0)",
    )

    good = open_rows
    index = pd.Index(np.flatnonzero(good))  # one Index for all columns: per-column indexes cost 3x the build
    everyone = bool(good.all())  # the usual batch: no row to leave out, so no column is copied for it

    def kept(values: np.ndarray) -> np.ndarray:
        return values if everyone else values[good]

    columns = {
        **{name: kept(typed[name]) for name in ("symbol", *INT_FIELDS, *PRICE_FIELDS)},
        "last_px": kept(np.where(is_trade, last_px, np.nan)),
        "last_qty": kept(np.where(is_trade, last_qty, 0.0)),
        "last_side": kept(side),
        "is_trade": kept(is_trade),
        **{name: kept(values) for name, values in (carried or {}).items()},
    }
    dtypes = {**TYPED_COLUMNS, **{name: columns[name].dtype for name in carried or {}}}
    # Explicit dtypes: letting pandas infer a string dtype for the object columns costs more than the parse.
    ticks = pd.DataFrame(
        {
            name: pd.Series(columns[name], index=index, dtype=dtypes[name], copy=False)
            for name in (order or TYPED_COLUMNS)
        }
    )
    rejected = np.flatnonzero(~good)
    return ParsedBatch(ticks, pd.Series(reasons[rejected], index=rejected, dtype="object"))


def columns_of(entries: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """Field maps to one object array per field (None where absent)."""
    return {name: np.array([e.get(name) for e in entries], dtype=object) for name in ENTRY_FIELDS}


def parse_entries(entries: Sequence[Mapping[str, Any]]) -> ParsedBatch:
    """Turn a batch of stream entries (str values) into typed ticks, rejecting bad ones with a reason."""
    if not entries:
        return ParsedBatch(empty_ticks(), pd.Series(dtype="object"))
    return parse_table(columns_of(entries))


def parse_entry(fields: Mapping[str, Any]) -> dict[str, Any]:
    """One entry as a typed row, or :class:`MalformedTick` naming the broken rule."""
    batch = parse_entries([fields])
    if len(batch.rejects):
        raise MalformedTick(str(batch.rejects.iloc[0]))
    return {str(k): v for k, v in batch.ticks.iloc[0].items()}
