"""The L2 depth stream: one entry's string fields, checked and typed, and a run of entries as one level table.

Why a second stream beside the ticks: ticks carry only the touch, so an engine fed from them knows nothing behind
it (docs/hftbacktest-reality.md, "Differences", 1). A feed handler publishes the venue's book to
``lob:depth:{instrument_key}``: a ``snapshot`` that replaces the book, then ``delta`` entries of changed levels
(qty 0 deletes). The entry schema is ``shadow_pipeline/schemas/depth_record.schema.json``; this module applies it
and the rules a JSON Schema cannot say. A bad entry is a :class:`MalformedDepth` naming the rule: a book built
from a skipped or misread update is wrong from then on, and nothing downstream could tell.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import numpy as np
import pandas as pd

from shadow_pipeline.domain.market.instruments import instrument_key
from shadow_pipeline.domain.market.ticks import TS_SERVER_RANGE_REASON, VENUE_FIELD, printable, sane_ts_server

SCHEMA_PACKAGE = "shadow_pipeline.schemas"
SCHEMA_FILE = "depth_record.schema.json"
SNAPSHOT, DELTA = "snapshot", "delta"
BID, ASK = 1, -1
_INT64_MAX = np.iinfo(np.int64).max
_SHOWN = 120  # characters of a schema message quoted in a reason (a huge field would flood a log line)

# One row per level of every entry, in stream order (bids then asks within an entry); ``update`` numbers the
# entries from 0 so that an entry whose levels are all of one side still reads as one update.
DEPTH_COLUMNS: dict[str, np.dtype] = {
    name: np.dtype(kind)
    for name, kind in {
        "update": "int64",
        "ts_server": "int64",
        "snapshot": "bool",
        "side": "int8",
        "price": "float64",
        "qty": "float64",
    }.items()
}


class MalformedDepth(ValueError):
    """A depth stream entry that is not a valid book update; ``reason`` says which rule it broke."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DepthEntry:
    """One typed entry: ``symbol`` is the instrument key (as ticks have it); levels are (n, 2) float arrays of
    price and qty in the entry's order."""

    symbol: str
    kind: str
    ts_server: int
    ts_local: int
    first_id: int | None
    last_id: int | None
    bids: np.ndarray
    asks: np.ndarray


@cache
def _schema() -> dict[str, Any]:
    text = resources.files(SCHEMA_PACKAGE).joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_schema())


@cache
def _level_rules() -> tuple[re.Pattern[str], int]:
    """``$defs/levels`` of the schema as a pattern and a size: the levels are checked by hand, as jsonschema takes
    ~10 ms per 1000-level snapshot and a busy book publishes thousands of deltas an hour; read from the schema so
    the two never differ."""
    defs = _schema()["$defs"]
    return re.compile(defs["decimal"]["pattern"]), int(defs["levels"]["maxItems"])


def _schema_reason(fields: Mapping[str, Any]) -> str | None:
    error = jsonschema.exceptions.best_match(_validator().iter_errors(dict(fields)))
    if error is None:
        return None
    place = "/".join(map(str, error.absolute_path)) or "(entry)"
    return f"{printable(place, 60)}: {printable(error.message, _SHOWN)}"


def _levels(text: str, name: str, kind: str) -> np.ndarray:
    decimal, most = _level_rules()
    try:
        levels = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        shown = f"{exc.msg} at character {exc.pos}" if isinstance(exc, json.JSONDecodeError) else "nested too deep"
        raise MalformedDepth(f"{name}: not JSON ({shown})") from None
    if not isinstance(levels, list) or len(levels) > most:
        raise MalformedDepth(f"{name}: want a JSON array of at most {most} [price, qty] pairs")
    for number, level in enumerate(levels):
        if not (
            isinstance(level, list)
            and len(level) == 2
            and all(isinstance(v, str) and decimal.fullmatch(v) for v in level)
        ):
            raise MalformedDepth(
                f"{name}/{number}: {printable(json.dumps(level), 60)} is not a [price, qty] pair of plain decimal "
                "strings"
            )
    table = np.array(levels, dtype=np.float64).reshape(-1, 2)
    if (table[:, 0] <= 0).any():
        raise MalformedDepth(f"{name}: a price is 0 (want > 0)")
    if kind == SNAPSHOT and (table[:, 1] <= 0).any():
        raise MalformedDepth(f"{name}: a snapshot level has qty 0 (a snapshot lists the levels that exist)")
    if len(np.unique(table[:, 0])) != len(table):
        raise MalformedDepth(f"{name}: a price is listed twice (which size holds?)")
    return table


def parse_depth_entry(fields: Mapping[str, Any]) -> DepthEntry:
    """One stream entry's fields (text keys and values) as a :class:`DepthEntry`, or :class:`MalformedDepth`."""
    reason = _schema_reason(fields)
    if reason is not None:
        raise MalformedDepth(reason)
    ints = {}
    for name in ("ts_server", "ts_local", "first_id", "last_id"):
        if name in fields:
            value = int(fields[name])
            if value > _INT64_MAX:
                raise MalformedDepth(f"{name}: {value} does not fit int64")
            ints[name] = value
    if not sane_ts_server(np.array([ints["ts_server"]]))[0]:
        raise MalformedDepth(TS_SERVER_RANGE_REASON)
    first_id, last_id = ints.get("first_id"), ints.get("last_id")
    if first_id is not None and last_id is not None and first_id > last_id:
        raise MalformedDepth(f"first_id {first_id} > last_id {last_id}")
    kind = str(fields["kind"])
    bids, asks = _levels(fields["bids"], "bids", kind), _levels(fields["asks"], "asks", kind)
    if kind == SNAPSHOT and not (len(bids) and len(asks)):
        raise MalformedDepth("a snapshot with an empty side (the book would be unknown there)")
    return DepthEntry(
        symbol=instrument_key(fields["symbol"], fields.get(VENUE_FIELD)),
        kind=kind,
        ts_server=ints["ts_server"],
        ts_local=ints["ts_local"],
        first_id=first_id,
        last_id=last_id,
        bids=bids,
        asks=asks,
    )


def order_reason(previous: DepthEntry | None, entry: DepthEntry) -> str | None:
    """Why ``entry`` cannot follow ``previous`` in one instrument's stream (None: it can). Times never go back
    and ids, where both entries carry them, strictly increase: a reordered or repeated update would be applied
    out of turn and leave levels that no longer exist."""
    if previous is None:
        return None
    if entry.symbol != previous.symbol:
        return f"symbol {entry.symbol} in a stream of {previous.symbol}"
    if entry.ts_server < previous.ts_server:
        return f"ts_server {entry.ts_server} goes back (previous entry {previous.ts_server})"
    if entry.last_id is not None and previous.last_id is not None:
        # the first delta after a snapshot may end at the snapshot's id (Binance: U <= lastUpdateId <= u)
        straddles = previous.kind == SNAPSHOT and entry.kind == DELTA and entry.last_id == previous.last_id
        if entry.last_id <= previous.last_id and not straddles:
            return f"last_id {entry.last_id} does not increase (previous entry {previous.last_id})"
    return None


def depth_table(entries: Sequence[DepthEntry]) -> pd.DataFrame:
    """The entries' levels as one frame of ``DEPTH_COLUMNS``, in stream order (built column-wise: an hour holds
    thousands of entries)."""
    tables = [table for entry in entries for table in (entry.bids, entry.asks)]
    counts = np.array([len(table) for table in tables], dtype=np.int64)
    levels = np.concatenate(tables) if tables else np.empty((0, 2))
    per_entry = np.arange(len(entries)).repeat(2)
    columns = {
        "update": per_entry.repeat(counts),
        "ts_server": np.array([e.ts_server for e in entries], dtype=np.int64).repeat(2).repeat(counts),
        "snapshot": np.array([e.kind == SNAPSHOT for e in entries], dtype=bool).repeat(2).repeat(counts),
        "side": np.tile(np.array([BID, ASK], dtype=np.int8), len(entries)).repeat(counts),
        "price": levels[:, 0],
        "qty": levels[:, 1],
    }
    return pd.DataFrame({name: pd.Series(columns[name], dtype=dtype) for name, dtype in DEPTH_COLUMNS.items()})


def _decimal(value: Any) -> str:
    """A level's number as the venue sent it: text, kept as is (a float would round or print an exponent)."""
    if not isinstance(value, str):
        raise ValueError(f"level value {str(value)[:40]!r} is not a decimal string")
    return value


def depth_fields(
    symbol: str,
    kind: str,
    ts_server: int,
    ts_local: int,
    bids: Sequence[Sequence[Any]],
    asks: Sequence[Sequence[Any]],
    first_id: int | None = None,
    last_id: int | None = None,
    venue: str | None = None,
) -> dict[str, str]:
    """A stream entry's fields, as a publisher writes them (optional fields only when known)."""
    fields = {
        "symbol": symbol,
        "kind": kind,
        "ts_server": str(ts_server),
        "ts_local": str(ts_local),
        "bids": json.dumps([[_decimal(p), _decimal(q)] for p, q in bids], separators=(",", ":")),
        "asks": json.dumps([[_decimal(p), _decimal(q)] for p, q in asks], separators=(",", ":")),
    }
    optional = {"first_id": first_id, "last_id": last_id, VENUE_FIELD: venue}
    fields.update({name: str(value) for name, value in optional.items() if value is not None})
    return fields
