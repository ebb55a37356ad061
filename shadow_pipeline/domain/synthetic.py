"""A built-in synthetic top-of-book market, deterministic given a seed, for demos and tests without data files.

The model, per symbol: the bid sits on a tick grid and the spread is one tick most of the time. Quote updates
arrive with log-normal (heavy-tailed) gaps and redraw the touch sizes. Trades come in bursts: a burst has one
aggressor side, a geometric number of prints a fraction of a millisecond apart, log-normal sizes, and with
some probability it eats the touch, so the next quote has moved one tick in the aggressor's direction.
Quotes also move the touch on their own (quote-driven moves, either direction). ``ts_local`` is exchange time
plus a log-normal feed latency. Defaults come from the Binance USD-M recordings of 2024-08-08 (see
``docs/synthetic-market.md`` for the statistic behind each number). Generation is chunked in market time, so
hours of market time stream with bounded memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from shadow_pipeline.domain.recordings import SOURCE_COLUMNS

_NS = 1_000_000_000
DEFAULT_START = pd.Timestamp("2024-08-09T00:00:00Z")


@dataclass(frozen=True)
class SymbolMarket:
    """Parameters of one symbol; rates are per second of market time, sizes in base units."""

    symbol: str
    tick_size: float
    lot_size: float
    start_price: float
    quote_rate: float  # quote updates per second
    quote_gap_sigma: float  # sigma of log quote inter-arrival gaps (heavy tail)
    burst_rate: float  # trade bursts per second
    burst_gap_sigma: float  # sigma of log burst inter-arrival gaps
    burst_len_mu: float  # prints per burst = ceil(lognormal(mu, sigma)), capped at MAX_BURST
    burst_len_sigma: float
    move_after_burst: float  # probability that a burst moves the touch one tick its way
    quote_move_rate: float  # touch moves per second driven by quotes alone
    wide_spread_share: float  # share of quotes whose spread is 2 or more ticks
    trade_size_median: float
    trade_size_sigma: float
    touch_size_median: float
    touch_size_sigma: float
    latency_median_ms: float  # feed leg: exchange -> local receive
    latency_sigma: float
    buy_share: float = 0.5

    @property
    def price_decimals(self) -> int:
        return max(0, -math.floor(math.log10(self.tick_size) + 1e-9))

    @property
    def qty_decimals(self) -> int:
        return max(0, -math.floor(math.log10(self.lot_size) + 1e-9))


MAX_BURST = 200

# Measured on binance_hftbacktest/usdm/{btc,eth}usdt_20240808.gz (docs/feed-replay.md gives each statistic);
# SOL and DOGE reuse ETH's activity with Bybit's instrument tick and lot sizes.
MARKETS: dict[str, SymbolMarket] = {
    "BTCUSDT": SymbolMarket(
        symbol="BTCUSDT",
        tick_size=0.1,
        lot_size=0.001,
        start_price=61800.0,
        quote_rate=191.9,
        quote_gap_sigma=2.1,
        burst_rate=13.7,
        burst_gap_sigma=1.5,
        burst_len_mu=-0.81,
        burst_len_sigma=2.09,
        move_after_burst=0.096,
        quote_move_rate=2.54,
        wide_spread_share=0.058,
        trade_size_median=0.016,
        trade_size_sigma=1.87,
        touch_size_median=2.677,
        touch_size_sigma=1.99,
        latency_median_ms=3.0,
        latency_sigma=1.04,
        buy_share=0.451,
    ),
    "ETHUSDT": SymbolMarket(
        symbol="ETHUSDT",
        tick_size=0.01,
        lot_size=0.001,
        start_price=2680.0,
        quote_rate=156.6,
        quote_gap_sigma=2.1,
        burst_rate=9.0,
        burst_gap_sigma=1.6,
        burst_len_mu=-0.145,
        burst_len_sigma=1.75,
        move_after_burst=0.163,
        quote_move_rate=3.16,
        wide_spread_share=0.047,
        trade_size_median=0.071,
        trade_size_sigma=2.17,
        touch_size_median=13.54,
        touch_size_sigma=2.10,
        latency_median_ms=3.0,
        latency_sigma=1.04,
        buy_share=0.496,
    ),
}
MARKETS["SOLUSDT"] = replace(
    MARKETS["ETHUSDT"],
    symbol="SOLUSDT",
    tick_size=0.01,
    lot_size=0.1,
    start_price=145.0,
    trade_size_median=5.0,
    touch_size_median=400.0,
)
MARKETS["DOGEUSDT"] = replace(
    MARKETS["ETHUSDT"],
    symbol="DOGEUSDT",
    tick_size=0.00001,
    lot_size=1.0,
    start_price=0.105,
    trade_size_median=2000.0,
    touch_size_median=150000.0,
)


class UnknownSymbol(ValueError):
    pass


def market_for(symbol: str) -> SymbolMarket:
    try:
        return MARKETS[symbol]
    except KeyError:
        raise UnknownSymbol(f"no synthetic market for {symbol!r}; known: {', '.join(sorted(MARKETS))}") from None


def _arrivals(rng: np.random.Generator, rate: float, sigma: float, span_ns: int) -> np.ndarray:
    """Event offsets in [0, span) with log-normal gaps of mean 1/rate (a heavy-tailed renewal process)."""
    if rate <= 0:
        return np.empty(0, dtype="int64")
    mu = math.log(1.0 / rate) - sigma**2 / 2  # E[gap] = 1/rate
    expected = rate * span_ns / _NS
    count = int(expected + 6 * math.sqrt(expected) + 16)
    times = np.cumsum(rng.lognormal(mu, sigma, count)) * _NS
    while times[-1] < span_ns:  # rare: the tail drew many short gaps
        more = np.cumsum(rng.lognormal(mu, sigma, count)) * _NS + times[-1]
        times = np.concatenate([times, more])
    times -= times[0] * rng.uniform(0, 1)  # a random phase, so chunk edges are not event times
    return times[times < span_ns].astype("int64")


def _sizes(rng: np.random.Generator, median: float, sigma: float, lot: float, n: int) -> np.ndarray:
    return np.maximum(np.round(rng.lognormal(math.log(median), sigma, n) / lot), 1.0) * lot


def _symbol_chunk(
    market: SymbolMarket, rng: np.random.Generator, start_ns: int, span_ns: int, bid_ticks: int
) -> tuple[pd.DataFrame, int]:
    """One symbol's ticks in [start, start+span), and the bid (in ticks) it ends on."""
    quotes = _arrivals(rng, market.quote_rate, market.quote_gap_sigma, span_ns)
    bursts = _arrivals(rng, market.burst_rate, market.burst_gap_sigma, span_ns)
    raw_lengths = np.ceil(rng.lognormal(market.burst_len_mu, market.burst_len_sigma, len(bursts)))
    lengths = np.clip(raw_lengths, 1, MAX_BURST).astype("int64")
    sides = np.where(rng.random(len(bursts)) < market.buy_share, 1, -1)

    # Trades: burst k's prints are one sweep, microseconds apart; a burst that moves the touch is followed by
    # a quote 0.1-2 ms after its last print.
    burst_of_trade = np.repeat(np.arange(len(bursts)), lengths)
    within = np.arange(len(burst_of_trade)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    trade_t = bursts[burst_of_trade] + within * 1_000
    moves = rng.random(len(bursts)) < market.move_after_burst
    move_t = bursts[moves] + lengths[moves] * 1_000 + rng.integers(100_000, 2_000_000, int(moves.sum()))
    drift_t = _arrivals(rng, market.quote_move_rate, 0.5, span_ns)

    # Events: 0 quote, 1 trade, 2 burst-driven move (a quote), 3 quote-driven move (a quote).
    times = np.concatenate([quotes, trade_t, move_t, drift_t])
    kind = np.concatenate(
        [np.zeros(len(quotes)), np.ones(len(trade_t)), np.full(len(move_t), 2), np.full(len(drift_t), 3)]
    ).astype("int8")
    step = np.concatenate(
        [np.zeros(len(quotes) + len(trade_t)), sides[moves], rng.choice([-1, 1], len(drift_t))]
    ).astype("int64")
    side = np.concatenate([np.zeros(len(quotes)), sides[burst_of_trade], np.zeros(len(move_t) + len(drift_t))])
    keep = times < span_ns
    order = np.argsort(times[keep], kind="stable")
    times, kind, step, side = times[keep][order], kind[keep][order], step[keep][order], side[keep][order]

    bid = bid_ticks + np.cumsum(step)
    is_trade = kind == 1
    n = len(times)
    drawn = 1 + (rng.random(n) < market.wide_spread_share) * rng.geometric(0.6, n)
    spread = pd.Series(np.where(is_trade, np.nan, drawn)).ffill().fillna(1).to_numpy("int64")
    bid_qty = _sizes(rng, market.touch_size_median, market.touch_size_sigma, market.lot_size, n)
    ask_qty = _sizes(rng, market.touch_size_median, market.touch_size_sigma, market.lot_size, n)
    # Trade ticks carry the touch of the last quote, as a feed handler would.
    touch = (
        pd.DataFrame({"bid_qty": np.where(is_trade, np.nan, bid_qty), "ask_qty": np.where(is_trade, np.nan, ask_qty)})
        .ffill()
        .bfill()
    )
    trade_qty = _sizes(rng, market.trade_size_median, market.trade_size_sigma, market.lot_size, n)
    trade_px = np.where(side > 0, bid + spread, bid)

    ts_server = start_ns + times
    latency = rng.lognormal(math.log(market.latency_median_ms * 1e6), market.latency_sigma, n)
    # One connection delivers in order (TCP): a tick never arrives before an earlier one.
    ts_local = np.maximum.accumulate(ts_server + latency.astype("int64"))
    pdec, qdec = market.price_decimals, market.qty_decimals
    fmt_px = np.vectorize(lambda ticks: f"{ticks * market.tick_size:.{pdec}f}", otypes=[object])
    fmt_qty = np.vectorize(lambda qty: f"{qty:.{qdec}f}", otypes=[object])
    frame = pd.DataFrame(
        {
            "symbol": market.symbol,
            "ts_server": ts_server.astype("int64"),
            "ts_local": ts_local.astype("int64"),
            "bid": fmt_px(bid),
            "ask": fmt_px(bid + spread),
            "bid_qty": fmt_qty(touch["bid_qty"].to_numpy()),
            "ask_qty": fmt_qty(touch["ask_qty"].to_numpy()),
            "last_px": np.where(is_trade, fmt_px(trade_px), ""),
            "last_qty": np.where(is_trade, fmt_qty(trade_qty), "0"),
            "last_side": np.select([is_trade & (side > 0), is_trade & (side < 0)], ["buy", "sell"], ""),
        },
        columns=list(SOURCE_COLUMNS),
    )
    return frame, int(bid[-1]) if n else bid_ticks


def generate(
    symbols: Sequence[str],
    seconds: float,
    seed: int = 0,
    start: pd.Timestamp = DEFAULT_START,
    chunk_seconds: float = 60.0,
) -> Iterator[pd.DataFrame]:
    """Source frames of ``seconds`` of market time for all ``symbols``, chunk by chunk, in local-time order."""
    markets = [market_for(s) for s in symbols]
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    start_ns = int(pd.Timestamp(start).value)
    bids = {m.symbol: round(m.start_price / m.tick_size) for m in markets}
    total_ns = int(seconds * _NS)
    chunk_ns = int(chunk_seconds * _NS)
    for index, offset in enumerate(range(0, total_ns, chunk_ns)):
        span = min(chunk_ns, total_ns - offset)
        parts = []
        for number, market in enumerate(markets):
            rng = np.random.default_rng([seed, number, index])
            part, bids[market.symbol] = _symbol_chunk(market, rng, start_ns + offset, span, bids[market.symbol])
            parts.append(part)
        yield pd.concat(parts, ignore_index=True).sort_values("ts_local", kind="stable", ignore_index=True)
