"""The synthetic market: deterministic, valid, and shaped like the recorded one."""

import numpy as np
import pandas as pd

from shadow_pipeline.domain.market.synthetic import MARKETS, generate
from shadow_pipeline.domain.market.ticks import parse_entries


def _ticks(seconds: float, seed: int, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")) -> pd.DataFrame:
    frame = pd.concat(list(generate(list(symbols), seconds, seed=seed)), ignore_index=True)
    frame["seq"] = frame.groupby("symbol").cumcount() + 1
    batch = parse_entries([{str(k): v for k, v in row.items()} for row in frame.astype(str).to_dict("records")])
    assert batch.rejects.empty, batch.rejects.value_counts()
    return batch.ticks


def test_same_seed_same_market_other_seed_other_market() -> None:
    a = pd.concat(list(generate(["BTCUSDT", "ETHUSDT"], 90, seed=1)), ignore_index=True)
    b = pd.concat(list(generate(["BTCUSDT", "ETHUSDT"], 90, seed=1)), ignore_index=True)
    c = pd.concat(list(generate(["BTCUSDT", "ETHUSDT"], 90, seed=2)), ignore_index=True)
    pd.testing.assert_frame_equal(a, b)
    assert not a["bid"].equals(c["bid"])


def test_market_shape() -> None:
    ticks = _ticks(300, seed=4)
    for symbol, group in ticks.groupby("symbol"):
        market = MARKETS[str(symbol)]
        spread_ticks = np.round((group["ask"] - group["bid"]) / market.tick_size).astype(int)
        assert (spread_ticks >= 1).all()
        assert (spread_ticks == 1).mean() > 0.8  # mostly one tick
        on_grid = np.abs(group["bid"] / market.tick_size - np.round(group["bid"] / market.tick_size))
        assert on_grid.max() < 1e-6
        trades = group[group["is_trade"]]
        assert 0.3 < (trades["last_side"] == "buy").mean() < 0.7
        # Buyers lift the ask, sellers hit the bid.
        buys, sells = trades[trades["last_side"] == "buy"], trades[trades["last_side"] == "sell"]
        assert np.allclose(buys["last_px"], buys["ask"]) and np.allclose(sells["last_px"], sells["bid"])
        # Heavy tails: the largest trade is far above the median one, and far below the displayed touch.
        assert trades["last_qty"].quantile(0.999) > 20 * trades["last_qty"].median()
        assert trades["last_qty"].median() < 0.1 * group["bid_qty"].median()
        gaps = np.diff(np.sort(group.loc[~group["is_trade"], "ts_server"].to_numpy())) / 1e6
        assert np.quantile(gaps, 0.99) > 8 * np.median(gaps)
        # The touch moves: more than a few ticks over five minutes, in both directions.
        moves = np.diff(np.round(group["bid"].to_numpy() / market.tick_size))
        assert (moves > 0).sum() > 20 and (moves < 0).sum() > 20
        assert (group["ts_local"] > group["ts_server"]).all()
        # A level lives: its size changes step by step rather than being redrawn at every quote.
        quotes = group[~group["is_trade"]]
        same = quotes["bid"].diff() == 0
        step = (quotes["bid_qty"].diff().abs() / quotes["bid_qty"].shift())[same]
        assert step.median() < 0.2


def test_long_runs_stream_in_chunks() -> None:
    chunks = generate(["BTCUSDT"], 20 * 60, seed=9, chunk_seconds=60)
    first = next(chunks)
    assert first["ts_server"].max() - first["ts_server"].min() < 60e9
    assert sum(1 for _ in chunks) == 20 - 1


def test_a_trade_leaves_the_level_smaller() -> None:
    ticks = _ticks(120, seed=5, symbols=("BTCUSDT",))
    rows = ticks.reset_index(drop=True)
    sells = rows.index[rows["is_trade"] & (rows["last_side"] == "sell")]
    shrunk = 0
    for at in sells[:200]:
        later = rows.iloc[at + 1 : at + 40]
        quote = later[~later["is_trade"]].head(1)
        if len(quote) and quote["bid"].iloc[0] == rows["bid"].iloc[at]:
            shrunk += quote["bid_qty"].iloc[0] < rows["bid_qty"].iloc[at]
    assert shrunk > 50
