"""The landing zone's split of a batch into (hour, symbol) files, and reading them back, on a temp folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shadow_pipeline.domain.market.ticks import TYPED_COLUMNS
from shadow_pipeline.domain.market.windows import HOUR_NS
from shadow_pipeline.ingest.deliveries import LANDED_COLUMNS
from shadow_pipeline.ingest.landing import Kind, LandingStore

T0 = 1_723_161_600_000_000_000  # 2024-08-09 00:00 UTC


def landed_ticks(symbols: list[str], ts: list[int]) -> pd.DataFrame:
    """Typed ticks as the consumer lands them, one entry id per row in arrival order."""
    n = len(symbols)
    ts_server = np.asarray(ts, dtype=np.int64)
    frame = pd.DataFrame(
        {
            "entry_id": [f"{1_723_161_600_000 + i}-0" for i in range(n)],
            "symbol": symbols,
            "seq": np.arange(1, n + 1),
            "ts_server": ts_server,
            "ts_local": ts_server + 1_000_000,
            "ts_broker": ts_server + 2_000_000,
            "bid": 100.0,
            "ask": 100.5,
            "bid_qty": 1.0,
            "ask_qty": 2.0,
            "last_px": np.nan,
            "last_qty": 0.0,
            "last_side": "",
            "is_trade": False,
        }
    )
    return frame.astype({**TYPED_COLUMNS, "entry_id": object, "ts_broker": np.int64})[list(LANDED_COLUMNS)]


@pytest.mark.parametrize(
    ("symbols", "hours", "files"),
    [
        (["BTCUSDT"] * 6, [0] * 6, 1),  # the usual batch: one hour, one symbol, no split
        (["BTCUSDT", "ETHUSDT"] * 3, [0] * 6, 2),
        (["BTCUSDT"] * 6, [0, 0, 1, 1, 1, 2], 3),
        (["ETHUSDT", "BTCUSDT", "SOLUSDT", "ETHUSDT", "BTCUSDT", "SOLUSDT"], [1, 0, 0, 1, 1, 0], 4),
    ],
)
def test_a_batch_lands_one_file_per_hour_and_symbol_and_reads_back_whole(
    tmp_path: Path, symbols: list[str], hours: list[int], files: int
) -> None:
    ts = [T0 + hour * HOUR_NS + i * 1_000_000 for i, hour in enumerate(hours)]
    batch = landed_ticks(symbols, ts)
    store = LandingStore(tmp_path)
    assert store.write(Kind.TICKS, batch, "c0") == files
    partitions = store.partitions()
    assert len(partitions) == files
    back = pd.concat([store.read(Kind.TICKS, hour, symbol) for hour, symbol in partitions], ignore_index=True)
    back = back.sort_values("seq", ignore_index=True)
    pd.testing.assert_frame_equal(back, batch, check_dtype=False)
    for hour, symbol in partitions:  # each row sits in its own partition
        rows = store.read(Kind.TICKS, hour, symbol)
        assert set(rows["symbol"]) == {symbol}
        assert set((rows["ts_server"] - T0) // HOUR_NS) == {int(hour[11:13])}
