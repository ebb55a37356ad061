"""Where replayed ticks come from: the synthetic market or a recording, as a stream of source frames."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pandas as pd

from shadow_pipeline.domain.kpis.per_window import FEED_UNSTAMPED
from shadow_pipeline.domain.market import synthetic
from shadow_pipeline.feed import recordings
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


def _bybit(paths: list[Path]) -> tuple[pd.DataFrame, bool]:
    """A live recording (one file: linear and spot share topic names), or archives: books and trade CSVs.

    Told apart by content, as archives are often renamed or unzipped by hand.
    """
    stamped = [path for path in paths if first_shape(path) is Shape.STAMPED]
    if not stamped:
        return recordings.read_bybit_archives(paths), False
    if len(paths) != 1:
        raise ValueError(
            "source bybit takes one live recording (linear or spot), or archive files (order books, trade "
            f"CSVs) without a live recording; got {len(stamped)} live of {len(paths)} files"
        )
    return recordings.read_bybit(paths[0]), True


def open_source(
    kind: SourceKind | str,
    *,
    symbols: Sequence[str] = (),
    seconds: float = 600.0,
    seed: int = 0,
    files: Sequence[str | Path] = (),
    start: pd.Timestamp | None = None,
) -> Source:
    """Synthetic: ``symbols`` for ``seconds`` from ``seed``. Recordings: ``files`` back to back, all or ``symbols``."""
    kind = SourceKind(kind)
    if kind is SourceKind.SYNTHETIC:
        chosen = list(symbols) or ["BTCUSDT", "ETHUSDT"]
        begin = start if start is not None else synthetic.DEFAULT_START
        return Source(synthetic.generate(chosen, seconds, seed=seed, start=begin), seconds)
    if not files:
        raise ValueError(f"source {kind.value} needs at least one recording file")
    paths = [Path(f) for f in files]
    if kind is SourceKind.BINANCE:
        frame, stamped = recordings.read_binance(paths), True
    else:
        frame, stamped = _bybit(paths)
    frame = _only(frame, symbols)
    span = (frame["ts_local"].iloc[-1] - frame["ts_local"].iloc[0]) / 1e9 if len(frame) else 0.0
    return Source(iter([frame]), float(span), LATENCY_MEASURED if stamped else LATENCY_UNMEASURED)
