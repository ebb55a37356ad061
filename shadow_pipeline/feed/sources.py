"""Where replayed ticks come from: the synthetic market or a recording, as a stream of source frames."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import pandas as pd

from shadow_pipeline.domain.market import synthetic
from shadow_pipeline.feed import recordings


class SourceKind(StrEnum):
    SYNTHETIC = "synthetic"
    BINANCE = "binance"
    BYBIT = "bybit"


@dataclass(frozen=True)
class Source:
    """Source frames in local-time order, and the market seconds they span (for progress)."""

    chunks: Iterator[pd.DataFrame]
    market_seconds: float | None


def _only(frame: pd.DataFrame, symbols: Sequence[str]) -> pd.DataFrame:
    if not symbols:
        return frame
    unknown = set(symbols) - set(frame["symbol"].unique())
    if unknown:
        raise ValueError(
            f"symbols {sorted(unknown)} are not in the recording (it has {sorted(frame['symbol'].unique())})"
        )
    return frame[frame["symbol"].isin(symbols)].reset_index(drop=True)


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
        frame = recordings.read_binance(paths)
    else:
        if len(paths) != 1:
            raise ValueError("source bybit takes exactly one recording file (linear or spot)")
        frame = recordings.read_bybit(paths[0])
    frame = _only(frame, symbols)
    span = (frame["ts_local"].iloc[-1] - frame["ts_local"].iloc[0]) / 1e9 if len(frame) else 0.0
    return Source(iter([frame]), float(span))
