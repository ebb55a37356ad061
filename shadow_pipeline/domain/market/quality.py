"""Normalization and data-quality accounting of one (hour, symbol) partition of landed ticks.

The input is the partition's ticks *as received* (Redis entry-id order). Normalizing removes duplicate
seqs and orders by exchange time. Accounting is exact and uses the definitions of
``shadow_pipeline.domain.market.sequence``, so what the fault injector reports and what this finds agree:

- duplicates: arrivals of a seq that had already arrived;
- out_of_order: first arrivals of a seq lower than one already received (a late tick);
- reordered: arrivals older (``ts_server``) than one already received, i.e. ticks put back in order;
- gaps: seqs that never arrived, between the previous hour's last seq (or this hour's first seq when there is
  no previous hour) and this hour's last seq. Seqs that landed in a neighbouring hour (exchange time and seq
  order disagree by a few ms at an hour boundary) are not gaps.

:func:`fit` measures whether ticks are the instrument's at all (its price grid and lot step): the simulator puts
every price on the instrument's grid and every size in lots, so data of another market (spot ticks shadowed as the
perpetual) would be rounded into a made-up book and give KPIs that mean nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from shadow_pipeline.domain.market.instruments import Instrument
from shadow_pipeline.domain.market.sequence import classify_arrivals
from shadow_pipeline.domain.market.ticks import TYPED_COLUMNS


@dataclass(frozen=True)
class PartitionQuality:
    rows_received: int
    rows: int  # after removing duplicates
    duplicates: int
    out_of_order: int
    reordered: int
    gaps: int
    first_seq: int | None
    last_seq: int | None
    drops: int = 0  # ticks dropped by backpressure (landed as drop records)
    dead_letters: int = 0  # malformed entries of this partition in the dead-letter stream

    @property
    def reordered_share(self) -> float:
        return self.reordered / self.rows_received if self.rows_received else 0.0

    def as_dict(self) -> dict[str, int | float | None]:
        return {**asdict(self), "reordered_share": round(self.reordered_share, 6)}


def normalize(received: pd.DataFrame) -> pd.DataFrame:
    """Typed ticks, one per seq (first arrival), by (ts_server, seq); extra columns (``entry_id``, ``ts_broker``)
    are kept as they are."""
    typed = received.astype(TYPED_COLUMNS)
    unique = typed.drop_duplicates("seq", keep="first")
    return unique.sort_values(["ts_server", "seq"], kind="stable").reset_index(drop=True)


def missing_seqs(seqs: np.ndarray, after: int, through: int, elsewhere: Iterable[np.ndarray] = ()) -> int:
    """Seqs in (after, through] found neither in ``seqs`` nor in any array of ``elsewhere``."""
    if through <= after:
        return 0
    present = np.concatenate([np.asarray(seqs, dtype=np.int64), *(np.asarray(e, dtype=np.int64) for e in elsewhere)])
    # Distinct seqs by sort and diff: numpy's hash-based np.unique is about 20x slower on arrays like these.
    present = np.sort(present[(present > after) & (present <= through)])
    distinct = int(len(present) > 0) + int(np.count_nonzero(np.diff(present)))
    return int(through - after - distinct)


def assess(
    received: pd.DataFrame,
    previous_seqs: np.ndarray | None = None,
    next_seqs: np.ndarray | None = None,
    drops: int = 0,
    dead_letters: int = 0,
) -> PartitionQuality:
    """Exact counts for one symbol's partition; neighbours' seqs (previous and next hour) settle its edges."""
    if received.empty:
        return PartitionQuality(0, 0, 0, 0, 0, 0, None, None, drops, dead_letters)
    seqs = received["seq"].to_numpy(dtype=np.int64)
    flags = classify_arrivals(received["symbol"], received["seq"])
    ts = received["ts_server"].to_numpy(dtype=np.int64)
    newest_before = np.maximum.accumulate(np.concatenate(([np.iinfo(np.int64).min], ts)))[:-1]
    first, last = int(seqs.min()), int(seqs.max())
    previous = np.empty(0, np.int64) if previous_seqs is None else np.asarray(previous_seqs, dtype=np.int64)
    after = int(previous.max()) if len(previous) else first - 1
    neighbours = [previous] + ([] if next_seqs is None else [np.asarray(next_seqs, dtype=np.int64)])
    return PartitionQuality(
        rows_received=len(received),
        rows=int(len(received) - flags["duplicate"].sum()),
        duplicates=int(flags["duplicate"].sum()),
        out_of_order=int(flags["late"].sum()),
        reordered=int((ts < newest_before).sum()),
        gaps=missing_seqs(seqs, min(after, first - 1), last, neighbours),
        first_seq=first,
        last_seq=last,
        drops=drops,
        dead_letters=dead_letters,
    )


# A price is on the grid when it is within this many ticks of a grid point: far above the error of a decimal
# string parsed to float64 (about 1e-16 of the price, 1e-10 ticks for BTC on a 0.1 grid), far below any real
# off-grid price (spot's 0.01 steps are 0.1 ticks of a 0.1 grid).
GRID_TOLERANCE_TICKS = 1e-6
# Books crossed or locked once snapped to the grid, as a share of rows: a few such rows can be a venue's own
# glitch; more mean prices of another grid. The parser already refuses books crossed as received.
MAX_CROSSED_SHARE = 0.001


@dataclass(frozen=True)
class InstrumentFit:
    """How ticks fit an instrument: rows with a price off its grid, with a touch crossed or locked on its grid
    (snapped as the simulator snaps), and with a size below its lot step. ``example_*`` is a first offender."""

    instrument: str
    tick_size: float
    lot_step: float
    rows: int
    off_grid: int
    crossed: int
    below_lot: int
    example_price: float | None = None
    example_size: float | None = None

    @property
    def fits(self) -> bool:
        return self.off_grid == 0 and self.below_lot == 0 and self.crossed <= MAX_CROSSED_SHARE * self.rows

    def share(self, count: int) -> float:
        return count / self.rows if self.rows else 0.0


def _prices(ticks: pd.DataFrame) -> np.ndarray:
    """(rows, 3) bid, ask and the trade price (NaN on a quote tick)."""
    return ticks[["bid", "ask", "last_px"]].to_numpy(dtype=np.float64)


def on_grid(prices: np.ndarray, tick_size: float) -> np.ndarray:
    """True where a price is a whole number of ticks (NaN counts as on the grid: no price)."""
    steps = prices / tick_size
    return ~(np.abs(steps - np.rint(steps)) > GRID_TOLERANCE_TICKS)


def _first_offender(values: np.ndarray, bad: np.ndarray) -> float | None:
    """The first bad value of the first row that has one."""
    rows = np.flatnonzero(bad.any(axis=1))
    return float(values[rows[0]][bad[rows[0]]][0]) if len(rows) else None


def fit(ticks: pd.DataFrame, instrument: Instrument) -> InstrumentFit:
    """How the typed ticks of one partition fit ``instrument``."""
    prices = _prices(ticks)
    off = ~on_grid(prices, instrument.tick_size)
    bid, ask = (np.rint(prices[:, k] / instrument.tick_size) for k in (0, 1))
    sizes = ticks[["bid_qty", "ask_qty", "last_qty"]].to_numpy(dtype=np.float64)
    small = (sizes > 0) & (sizes < instrument.lot_step * (1 - GRID_TOLERANCE_TICKS))
    return InstrumentFit(
        instrument=str(instrument.id),
        tick_size=instrument.tick_size,
        lot_step=instrument.lot_step,
        rows=len(ticks),
        off_grid=int(off.any(axis=1).sum()),
        crossed=int((bid >= ask).sum()),
        below_lot=int(small.any(axis=1).sum()),
        example_price=_first_offender(prices, off),
        example_size=_first_offender(sizes, small),
    )


def grids_that_fit(ticks: pd.DataFrame, candidates: Iterable[Instrument]) -> list[Instrument]:
    """The candidates on whose price grid every price of ``ticks`` lies: a hint of what the data really is."""
    prices = _prices(ticks)
    return [c for c in candidates if on_grid(prices, c.tick_size).all()]
