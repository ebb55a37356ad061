"""Where replayed ticks come from: the synthetic market or a recording, as a stream of source frames."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pandas as pd

from shadow_pipeline.domain.kpis.per_window import FEED_UNSTAMPED
from shadow_pipeline.domain.market import synthetic
from shadow_pipeline.domain.market.instruments import DEFAULT_VENUE, Venue, load_registry
from shadow_pipeline.domain.market.ticks import VENUE_FIELD
from shadow_pipeline.feed import recordings
from shadow_pipeline.feed.readers.binance_depth import read_binance_depth
from shadow_pipeline.feed.readers.files import Shape, first_shape

# The summary's ``latency`` line; the KPIs' note reads the same ("latency: not measured (...)").
LATENCY_MEASURED = "measured (receive stamps)"
LATENCY_UNMEASURED = FEED_UNSTAMPED.removeprefix("latency: ")


class SourceKind(StrEnum):
    SYNTHETIC = "synthetic"
    BINANCE = "binance"
    BYBIT = "bybit"


@dataclass(frozen=True)
class Source:
    """Source frames in local-time order, the market seconds they span (for progress), and whether the feed
    leg of latency can be measured on them (``latency``, for reports)."""

    chunks: Iterator[pd.DataFrame]
    market_seconds: float | None
    latency: str = LATENCY_MEASURED


def _only(frame: pd.DataFrame, symbols: Sequence[str]) -> pd.DataFrame:
    if not symbols:
        return frame
    unknown = set(symbols) - set(frame["symbol"].unique())
    if unknown:
        raise ValueError(
            f"symbols {sorted(unknown)} are not in the recording (it has {sorted(frame['symbol'].unique())})"
        )
    return frame[frame["symbol"].isin(symbols)].reset_index(drop=True)


def _bybit(paths: list[Path], venue: Venue | None) -> tuple[pd.DataFrame, bool]:
    """A live recording (one file: linear and spot share topic names), or archives: books and trade CSVs.

    Told apart by content, as archives are often renamed or unzipped by hand.
    """
    stamped = [path for path in paths if first_shape(path) is Shape.STAMPED]
    if not stamped:
        return recordings.read_bybit_archives(paths, venue), False
    if len(paths) != 1:
        raise ValueError(
            "source bybit takes one live recording (linear or spot), or archive files (order books, trade "
            f"CSVs) without a live recording; got {len(stamped)} live of {len(paths)} files"
        )
    return recordings.read_bybit(paths[0], venue), True


def open_source(
    kind: SourceKind | str,
    *,
    symbols: Sequence[str] = (),
    seconds: float = 600.0,
    seed: int = 0,
    files: Sequence[str | Path] = (),
    start: pd.Timestamp | None = None,
    venue: str | None = None,
) -> Source:
    """Synthetic: ``symbols`` for ``seconds`` from ``seed``. Recordings: ``files`` back to back, all or ``symbols``.

    ``venue``, a code of the instrument registry: the synthetic market's (default: the default venue); a
    recording's where its messages do not say, else in place of theirs when it is of the same exchange and market
    (``readers.venues``); a reader refuses one that contradicts the file.
    """
    kind = SourceKind(kind)
    chosen = None if venue is None else load_registry().venue(venue)
    if kind is SourceKind.SYNTHETIC:
        names = list(symbols) or ["BTCUSDT", "ETHUSDT"]
        begin = start if start is not None else synthetic.DEFAULT_START
        chunks = synthetic.generate(names, seconds, seed=seed, start=begin)
        if chosen is not None and chosen.code != DEFAULT_VENUE:
            chunks = (chunk.assign(**{VENUE_FIELD: chosen.code}) for chunk in chunks)
        return Source(chunks, seconds)
    if not files:
        raise ValueError(f"source {kind.value} needs at least one recording file")
    paths = [Path(f) for f in files]
    if kind is SourceKind.BINANCE:
        frame, stamped = recordings.read_binance(paths, chosen), True
    else:
        frame, stamped = _bybit(paths, chosen)
    frame = _only(frame, symbols)
    span = (frame["ts_local"].iloc[-1] - frame["ts_local"].iloc[0]) / 1e9 if len(frame) else 0.0
    return Source(iter([frame]), float(span), LATENCY_MEASURED if stamped else LATENCY_UNMEASURED)


def open_depth(
    files: Sequence[str | Path], symbols: Sequence[str] = (), venue: str | None = None
) -> list[dict[str, str]]:
    """The depth stream entries of Binance USD-M recordings (``readers.binance_depth``), all or ``symbols``."""
    if not files:
        raise ValueError("depth needs at least one recording file")
    chosen = None if venue is None else load_registry().venue(venue)
    records = read_binance_depth([Path(f) for f in files], chosen)
    found = {record["symbol"] for record in records}
    unknown = set(symbols) - found
    if unknown:
        raise ValueError(f"symbols {sorted(unknown)} have no depth in the recording (it has {sorted(found)})")
    return [record for record in records if not symbols or record["symbol"] in symbols]
