"""The tick schema: the flat string fields of one stream entry and the typed row they parse into.

See ``docs/tick-schema.md``. Times are integer nanoseconds since the Unix epoch everywhere. Every entry carries
the touch (``bid``/``ask`` with sizes); a *trade tick* additionally names the aggressor in ``last_side`` and
the print in ``last_px``/``last_qty``, while a *quote tick* has ``last_side=""``, ``last_px=""`` and
``last_qty="0"``. Parsing is vectorized over a batch; :func:`parse_entry` is the same rules on one entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

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
PRICE_FIELDS = ("bid", "ask", "bid_qty", "ask_qty")
INT_FIELDS = ("seq", "ts_server", "ts_local")
SIDES = ("buy", "sell")
QUOTE_SIDE = ""

# Typed columns of a parsed batch, in order; ``is_trade`` is derived from ``last_side``.
TYPED_COLUMNS: dict[str, str] = {
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
}

_SYMBOL_RE = r"[A-Z0-9]{1,24}"
# Up to 8999999999999999999: every match fits int64, so the cast below cannot overflow.
_UINT_RE = r"[0-9]{1,18}|[1-8][0-9]{18}"


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


def _positive_int(raw: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Exact int64 parse (floats would round nanosecond times); returns (values, ok mask)."""
    matches = raw.str.fullmatch(_UINT_RE).fillna(False).astype(bool)
    values = raw.where(matches, "0").astype("int64")
    return values, matches & (values > 0)


def _first_reason(index: pd.Index, checks: list[tuple[pd.Series, str | pd.Series]]) -> pd.Series:
    """The first failed rule per row, in rule order (a row with a missing field is not also 'non-numeric')."""
    reasons = pd.Series(None, index=index, dtype="object")
    for failed, reason in checks:
        todo = failed & reasons.isna()
        if todo.any():
            reasons.loc[todo] = reason[todo] if isinstance(reason, pd.Series) else reason
    return reasons.dropna()


def parse_entries(entries: Sequence[Mapping[str, Any]]) -> ParsedBatch:
    """Turn a batch of stream entries (str values) into typed ticks, rejecting bad ones with a reason."""
    if not entries:
        return ParsedBatch(empty_ticks(), pd.Series(dtype="object"))
    raw = pd.DataFrame.from_records(list(entries), columns=list(FIELDS))
    missing = raw.isna()
    text = raw.astype(object).where(~missing, "").astype(str).apply(lambda col: col.str.strip())

    checks: list[tuple[pd.Series, str | pd.Series]] = []
    any_missing = missing.any(axis=1)
    if any_missing.any():
        names = missing[any_missing].apply(lambda row: ",".join(row.index[row]), axis=1)
        checks.append((any_missing, ("missing field: " + names).reindex(raw.index)))

    checks.append((~text["symbol"].str.fullmatch(_SYMBOL_RE), "bad symbol (want 1-24 of A-Z0-9)"))
    ints: dict[str, pd.Series] = {}
    for name in INT_FIELDS:
        ints[name], ok = _positive_int(text[name])
        checks.append((~ok, f"{name} is not a positive integer"))

    nums: dict[str, pd.Series] = {}
    for name in (*PRICE_FIELDS, "last_px", "last_qty"):
        nums[name] = pd.to_numeric(text[name].replace("", np.nan), errors="coerce").astype("float64")
    for name in PRICE_FIELDS:
        checks.append((~np.isfinite(nums[name]), f"non-numeric {name}"))
        checks.append((nums[name] <= 0, f"non-positive {name}"))
    checks.append((nums["bid"] >= nums["ask"], "crossed book: bid >= ask"))

    side = text["last_side"]
    checks.append((~side.isin([*SIDES, QUOTE_SIDE]), "unknown side (want buy, sell or empty)"))
    is_trade = side.isin(SIDES)
    checks.append((is_trade & ~np.isfinite(nums["last_px"]), "trade tick with non-numeric last_px"))
    checks.append((is_trade & ~np.isfinite(nums["last_qty"]), "trade tick with non-numeric last_qty"))
    checks.append((is_trade & (nums["last_px"] <= 0), "trade tick with non-positive last_px"))
    checks.append((is_trade & (nums["last_qty"] <= 0), "trade tick with non-positive last_qty"))
    quote_with_trade = side.eq(QUOTE_SIDE) & ((text["last_px"] != "") | (nums["last_qty"] != 0))
    checks.append((quote_with_trade, "quote tick with trade fields (want last_px empty, last_qty 0)"))

    rejects = _first_reason(raw.index, checks)
    good = raw.index.difference(rejects.index)
    ticks = pd.DataFrame(
        {
            "symbol": text["symbol"],
            **ints,
            **{name: nums[name] for name in PRICE_FIELDS},
            "last_px": nums["last_px"].where(is_trade),
            "last_qty": nums["last_qty"].where(is_trade, 0.0),
            "last_side": side,
            "is_trade": is_trade,
        }
    ).loc[good]
    return ParsedBatch(ticks.astype(TYPED_COLUMNS), rejects.astype("object"))


def parse_entry(fields: Mapping[str, Any]) -> dict[str, Any]:
    """One entry as a typed row, or :class:`MalformedTick` naming the broken rule."""
    batch = parse_entries([fields])
    if len(batch.rejects):
        raise MalformedTick(str(batch.rejects.iloc[0]))
    return {str(k): v for k, v in batch.ticks.iloc[0].items()}
