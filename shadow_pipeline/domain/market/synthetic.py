"""A built-in synthetic top-of-book market, deterministic given a seed, for demos and tests without data files.

The model, per symbol: each side of the touch is a queue that lives and evolves (``docs/synthetic-market.md``).

- A *level* (the best bid, or the best ask) starts with a size drawn from a log-normal in lots. While it stands,
  size-change updates (log-normal, heavy-tailed gaps) add to it or cancel from it, each a log-normal fraction of
  its size; trade bursts (one aggressor side, a heavy-tailed number of prints microseconds apart, log-normal
  sizes) consume it; a quote tick after each burst shows the reduced size.
- A level's own end comes at a log-normal age: it is then traded away (a sweep: the remaining size prints in a
  few trades) with probability ``traded_share``, else cancelled away; a burst that eats it all also ends it.
  The touch then moves ``jump`` ticks the aggressor's way (a log-normal number of ticks: the book beyond the
  touch is sparse) and the new level there starts with a fresh size. The spread is open for a log-normal
  refill delay, after which the gap closes: the depleted side comes back to one tick from the other with
  probability ``reversion``, else the other side follows (the mid moves). A level also ends when it is
  improved (that refill).
- Trade ticks carry the touch of the last quote; ``ts_local`` is exchange time plus a log-normal feed latency,
  delivered in order.

Defaults come from the Binance USD-M recordings of 2024-08-08 (``docs/synthetic-market.md``: each statistic,
its value on the recordings and on this market). Generation is chunked in market time (the book state carries
over), a compiled loop per chunk, so hours of market time stream with bounded memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numba
import numpy as np
import pandas as pd

from shadow_pipeline.domain.market.ticks import SOURCE_COLUMNS

_NS = 1_000_000_000
_US = 1_000
DEFAULT_START = pd.Timestamp("2024-08-09T00:00:00Z")


@dataclass(frozen=True)
class SymbolMarket:
    """Parameters of one symbol; rates are per second of market time, sizes in lots (``lot_size``) unless named
    otherwise, medians and log-sds of log-normals in pairs."""

    symbol: str
    tick_size: float
    lot_size: float
    start_price: float
    update_rate: float  # size-change updates per second, both sides together
    update_gap_sigma: float  # log-sd of their gaps (heavy tail)
    add_share: float  # share of updates that add (the rest cancel)
    change_median: float  # size of an add or cancel relative to the level's size
    change_sigma: float
    level_lots_median: float  # size of a new level
    level_lots_sigma: float
    life_ms_median: float  # age at which a level is traded or cancelled away (unless improved or eaten first)
    life_sigma: float
    traded_share: float  # of those ends, the share traded away (the rest cancelled away)
    jump_ticks_median: float  # how far the touch moves when a level goes (ticks, at least 1)
    jump_sigma: float
    refill_ms_median: float  # how long the spread stays open after a move
    refill_sigma: float
    reversion: float  # probability that the depleted side refills (the mid goes back) rather than the other follows
    cascade: float  # probability that a level a trade move reveals is swept too, after a short log-normal delay
    cascade_ms_median: float
    burst_rate: float  # trade bursts per second
    burst_gap_sigma: float
    burst_len_mu: float  # prints per burst = ceil(lognormal(mu, sigma)), capped at MAX_BURST
    burst_len_sigma: float
    trade_lots_median: float
    trade_sigma: float
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
MAX_SWEEP = 6  # prints of a sweep that trades a level away
LEVEL_CAP = 8.0  # above this many new-level medians, a level's size updates are cancels

# Measured on binance_hftbacktest/usdm/{btc,eth}usdt_20240808.gz (docs/synthetic-market.md gives each statistic);
# SOL and DOGE reuse ETH's activity with Bybit's instrument tick and lot sizes.
MARKETS: dict[str, SymbolMarket] = {
    "BTCUSDT": SymbolMarket(
        symbol="BTCUSDT",
        tick_size=0.1,
        lot_size=0.001,
        start_price=61800.0,
        update_rate=160.0,
        update_gap_sigma=2.0,
        add_share=0.62,
        change_median=0.03,
        change_sigma=1.5,
        level_lots_median=3500.0,
        level_lots_sigma=1.5,
        life_ms_median=12000.0,
        life_sigma=2.0,
        traded_share=0.76,
        jump_ticks_median=8.0,
        jump_sigma=1.3,
        refill_ms_median=4.0,
        refill_sigma=1.5,
        reversion=0.25,
        cascade=0.8,
        cascade_ms_median=2.0,
        burst_rate=15.0,
        burst_gap_sigma=1.5,
        burst_len_mu=-0.81,
        burst_len_sigma=2.09,
        trade_lots_median=9.0,
        trade_sigma=1.87,
        latency_median_ms=3.0,
        latency_sigma=1.04,
        buy_share=0.451,
    ),
    "ETHUSDT": SymbolMarket(
        symbol="ETHUSDT",
        tick_size=0.01,
        lot_size=0.001,
        start_price=2680.0,
        update_rate=140.0,
        update_gap_sigma=2.0,
        add_share=0.62,
        change_median=0.04,
        change_sigma=1.5,
        level_lots_median=14000.0,
        level_lots_sigma=1.5,
        life_ms_median=12000.0,
        life_sigma=2.0,
        traded_share=0.75,
        jump_ticks_median=4.0,
        jump_sigma=1.2,
        refill_ms_median=4.0,
        refill_sigma=1.5,
        reversion=0.25,
        cascade=0.8,
        cascade_ms_median=2.0,
        burst_rate=10.0,
        burst_gap_sigma=1.6,
        burst_len_mu=-0.145,
        burst_len_sigma=1.75,
        trade_lots_median=40.0,
        trade_sigma=2.17,
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
    trade_lots_median=50.0,
    level_lots_median=1500.0,
)
MARKETS["DOGEUSDT"] = replace(
    MARKETS["ETHUSDT"],
    symbol="DOGEUSDT",
    tick_size=0.00001,
    lot_size=1.0,
    start_price=0.105,
    trade_lots_median=2000.0,
    level_lots_median=60000.0,
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


# The book state carried from chunk to chunk, in ticks, lots and ns relative to the chunk's start.
S_BID, S_ASK, S_BID_QTY, S_ASK_QTY, S_END_BID, S_END_ASK, S_REFILL, S_REFILL_SIDE, S_SWEEP_BID, S_SWEEP_ASK = range(10)
_STATE = 10
_NEVER = np.int64(2**62)
# Kinds of exogenous events: a size change on a side, a trade print, the quote after a burst.
E_CHANGE, E_PRINT, E_AFTER = 0, 1, 2
# Parameters of the kernel, in order (a float array).
(
    P_LEVEL_MU,
    P_LEVEL_SIGMA,
    P_LIFE_MU,
    P_LIFE_SIGMA,
    P_TRADED,
    P_JUMP_MU,
    P_JUMP_SIGMA,
    P_REFILL_MU,
    P_REFILL_SIGMA,
    P_REVERSION,
    P_CASCADE,
    P_CASCADE_MU,
    P_LEVEL_CAP,
) = range(13)


@numba.njit(cache=True)
def _draw_level(params: np.ndarray, z: float) -> np.int64:
    return max(np.int64(1), np.int64(np.exp(params[P_LEVEL_MU] + params[P_LEVEL_SIGMA] * z) + 0.5))


@numba.njit(cache=True)
def _draw_end(params: np.ndarray, t: np.int64, z: float) -> np.int64:
    return t + np.int64(np.exp(params[P_LIFE_MU] + params[P_LIFE_SIGMA] * z) * 1e6) + 1


@numba.njit(cache=True)
def _book(
    span: np.int64,
    ev_t: np.ndarray,
    ev_kind: np.ndarray,
    ev_side: np.ndarray,
    ev_burst: np.ndarray,
    ev_value: np.ndarray,
    state: np.ndarray,
    params: np.ndarray,
    pool_z: np.ndarray,
    pool_u: np.ndarray,
) -> tuple[np.ndarray, ...]:
    """Walk one chunk's exogenous events and the book's own (level ends, refills) in time order.

    ``ev_value``: the change's signed fraction for E_CHANGE (> 0 adds), the print's size in lots for E_PRINT.
    Sides: 0 bid, 1 ask; for a print, the side it hits (0: a sell aggressor). Returns the ticks (time, trade flag,
    bid, ask, bid and ask size shown, trade price, size and aggressor sign) and updates ``state`` for the next chunk.
    """
    cap = 2 * len(ev_t) + 64
    out_t = np.empty(cap, np.int64)
    out_trade = np.zeros(cap, np.bool_)
    out_bid = np.empty(cap, np.int64)
    out_ask = np.empty(cap, np.int64)
    out_bq = np.empty(cap, np.int64)
    out_aq = np.empty(cap, np.int64)
    out_px = np.zeros(cap, np.int64)
    out_qty = np.zeros(cap, np.int64)
    out_side = np.zeros(cap, np.int8)
    px = np.array([state[S_BID], state[S_ASK]], np.int64)
    qty = np.array([state[S_BID_QTY], state[S_ASK_QTY]], np.int64)
    end = np.array([state[S_END_BID], state[S_END_ASK]], np.int64)
    refill, refill_side = state[S_REFILL], state[S_REFILL_SIDE]
    sweep = np.array([state[S_SWEEP_BID], state[S_SWEEP_ASK]], np.int64)  # 1: the level's end is a sweep
    swept = np.zeros(2, np.int64)
    shown = np.zeros(4, np.int64)  # the last quote's bid, ask, bid size, ask size
    shown[0], shown[1], shown[2], shown[3] = px[0], px[1], qty[0], qty[1]
    n = 0
    k = 0
    npool = pool_z.shape[0]
    cut_burst = -1
    i = 0
    while True:
        t_ev = ev_t[i] if i < len(ev_t) else _NEVER
        t_end = min(end[0], end[1])
        t = min(t_ev, t_end, refill)
        if t >= span or n + MAX_SWEEP + 4 > cap:
            break
        emit_quote = False
        if t == refill:  # the open spread closes
            s = refill_side  # the side that moved away
            other = 1 - s
            if pool_u[k % npool, 0] < params[P_REVERSION]:
                px[s] = px[other] - 1 if s == 0 else px[other] + 1
                qty[s] = _draw_level(params, pool_z[k % npool, 0])
                end[s] = _draw_end(params, t, pool_z[k % npool, 1])
            else:
                px[other] = px[s] + 1 if s == 0 else px[s] - 1
                qty[other] = _draw_level(params, pool_z[k % npool, 0])
                end[other] = _draw_end(params, t, pool_z[k % npool, 1])
            k += 1
            refill = _NEVER
            emit_quote = True
        elif t == t_end:  # a level's own end: traded or cancelled away
            s = 0 if end[0] <= end[1] else 1
            if sweep[s] or pool_u[k % npool, 1] < params[P_TRADED]:
                swept[s] = 1
                prints = 1 + np.int64(pool_u[k % npool, 2] * MAX_SWEEP) % MAX_SWEEP
                left = qty[s]
                for j in range(prints):
                    size = left if j == prints - 1 else max(np.int64(1), left // (prints - j) // 2 + 1)
                    size = min(size, left)
                    if size <= 0:
                        break
                    left -= size
                    out_t[n] = t + j * _US
                    out_trade[n] = True
                    out_bid[n], out_ask[n], out_bq[n], out_aq[n] = shown[0], shown[1], shown[2], shown[3]
                    out_px[n] = px[s]
                    out_qty[n] = size
                    out_side[n] = -1 if s == 0 else 1
                    n += 1
                t = t + prints * _US + 50 * _US
            qty[s] = 0
        elif ev_kind[i] == E_CHANGE:
            s = ev_side[i]
            change = np.int64(abs(ev_value[i]) * qty[s] + 0.5)
            if ev_value[i] > 0 and qty[s] < params[P_LEVEL_CAP]:  # a large level draws cancels, not adds
                qty[s] += max(np.int64(1), change)
            else:
                qty[s] = max(np.int64(1), qty[s] - max(np.int64(1), change))
            emit_quote = True
            i += 1
        elif ev_kind[i] == E_PRINT:
            s = ev_side[i]
            if ev_burst[i] != cut_burst:
                size = min(np.int64(ev_value[i]), qty[s])
                out_t[n] = t
                out_trade[n] = True
                out_bid[n], out_ask[n], out_bq[n], out_aq[n] = shown[0], shown[1], shown[2], shown[3]
                out_px[n] = px[s]
                out_qty[n] = size
                out_side[n] = -1 if s == 0 else 1
                n += 1
                qty[s] -= size
                if qty[s] <= 0:
                    cut_burst = ev_burst[i]  # the burst ate the level: its other prints do not happen
                    swept[s] = 1
            i += 1
        else:  # the quote after a burst shows what it left
            emit_quote = True
            i += 1
        for s in range(2):
            if qty[s] <= 0:  # the level is gone: the touch moves the aggressor's way, a new level there
                jump = max(
                    np.int64(1), np.int64(np.exp(params[P_JUMP_MU] + params[P_JUMP_SIGMA] * pool_z[k % npool, 2]))
                )
                px[s] += -jump if s == 0 else jump
                qty[s] = _draw_level(params, pool_z[k % npool, 3])
                end[s] = _draw_end(params, t, pool_z[k % npool, 4])
                delay = np.int64(np.exp(params[P_REFILL_MU] + params[P_REFILL_SIGMA] * pool_z[k % npool, 5]) * 1e6)
                refill, refill_side = t + delay + 1, s
                sweep[s] = 0
                if swept[s] and pool_u[k % npool, 2] < params[P_CASCADE]:  # the sweep goes on to this level
                    sweep[s] = 1
                    end[s] = t + np.int64(np.exp(params[P_CASCADE_MU] + pool_z[k % npool, 1]) * 1e6) + 1
                swept[s] = 0
                k += 1
                emit_quote = True
        if px[1] <= px[0]:  # a move ran into the other side: that side steps back behind it
            px[1] = px[0] + 1
        if emit_quote:
            shown[0], shown[1], shown[2], shown[3] = px[0], px[1], qty[0], qty[1]
            out_t[n] = t
            out_trade[n] = False
            out_bid[n], out_ask[n], out_bq[n], out_aq[n] = px[0], px[1], qty[0], qty[1]
            n += 1
    state[S_BID], state[S_ASK], state[S_BID_QTY], state[S_ASK_QTY] = px[0], px[1], qty[0], qty[1]
    state[S_END_BID], state[S_END_ASK] = end[0] - span, end[1] - span
    state[S_REFILL] = refill - span if refill != _NEVER else _NEVER
    state[S_REFILL_SIDE] = refill_side
    state[S_SWEEP_BID], state[S_SWEEP_ASK] = sweep[0], sweep[1]
    return (
        out_t[:n],
        out_trade[:n],
        out_bid[:n],
        out_ask[:n],
        out_bq[:n],
        out_aq[:n],
        out_px[:n],
        out_qty[:n],
        out_side[:n],
    )


def _kernel_params(market: SymbolMarket) -> np.ndarray:
    params = np.zeros(13)
    params[P_LEVEL_MU], params[P_LEVEL_SIGMA] = math.log(market.level_lots_median), market.level_lots_sigma
    params[P_LIFE_MU], params[P_LIFE_SIGMA] = math.log(market.life_ms_median), market.life_sigma
    params[P_TRADED] = market.traded_share
    params[P_JUMP_MU], params[P_JUMP_SIGMA] = math.log(market.jump_ticks_median), market.jump_sigma
    params[P_REFILL_MU], params[P_REFILL_SIGMA] = math.log(market.refill_ms_median), market.refill_sigma
    params[P_REVERSION] = market.reversion
    params[P_CASCADE], params[P_CASCADE_MU] = market.cascade, math.log(market.cascade_ms_median)
    params[P_LEVEL_CAP] = LEVEL_CAP * market.level_lots_median
    return params


def initial_state(market: SymbolMarket, rng: np.random.Generator) -> np.ndarray:
    """The book at the start: one-tick spread at the start price, fresh levels on both sides."""
    bid = round(market.start_price / market.tick_size)
    state = np.zeros(_STATE, np.int64)
    state[S_BID], state[S_ASK] = bid, bid + 1
    sizes = rng.lognormal(math.log(market.level_lots_median), market.level_lots_sigma, 2)
    state[S_BID_QTY], state[S_ASK_QTY] = np.maximum(np.rint(sizes), 1)
    lives = rng.lognormal(math.log(market.life_ms_median), market.life_sigma, 2) * 1e6
    state[S_END_BID], state[S_END_ASK] = lives.astype(np.int64) + 1
    state[S_REFILL], state[S_REFILL_SIDE] = _NEVER, 0
    return state


def _symbol_chunk(
    market: SymbolMarket, rng: np.random.Generator, start_ns: int, span_ns: int, state: np.ndarray
) -> pd.DataFrame:
    """One symbol's ticks in [start, start+span); ``state`` (the book) is updated for the next chunk."""
    changes = _arrivals(rng, market.update_rate, market.update_gap_sigma, span_ns)
    change_side = (rng.random(len(changes)) < 0.5).astype(np.int8)
    sign = np.where(rng.random(len(changes)) < market.add_share, 1.0, -1.0)
    change = sign * np.minimum(rng.lognormal(math.log(market.change_median), market.change_sigma, len(changes)), 0.95)

    bursts = _arrivals(rng, market.burst_rate, market.burst_gap_sigma, span_ns)
    raw_lengths = np.ceil(rng.lognormal(market.burst_len_mu, market.burst_len_sigma, len(bursts)))
    lengths = np.clip(raw_lengths, 1, MAX_BURST).astype("int64")
    hits = np.where(rng.random(len(bursts)) < market.buy_share, 1, 0).astype(np.int8)  # a buy hits the ask
    burst_of = np.repeat(np.arange(len(bursts)), lengths)
    within = np.arange(len(burst_of)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    print_t = bursts[burst_of] + within * _US
    print_lots = np.maximum(
        np.rint(rng.lognormal(math.log(market.trade_lots_median), market.trade_sigma, len(burst_of))), 1
    )
    after_t = bursts + lengths * _US + rng.integers(50 * _US, 1_000 * _US, len(bursts))

    times = np.concatenate([changes, print_t, after_t])
    kind = np.concatenate(
        [np.full(len(changes), E_CHANGE), np.full(len(print_t), E_PRINT), np.full(len(after_t), E_AFTER)]
    ).astype(np.int8)
    side = np.concatenate([change_side, hits[burst_of], hits]).astype(np.int8)
    burst = np.concatenate([np.full(len(changes), -1), burst_of, np.arange(len(bursts))]).astype(np.int64)
    value = np.concatenate([change, print_lots, np.zeros(len(after_t))])
    order = np.argsort(times, kind="stable")
    pool = len(times) // 4 + 256
    t, is_trade, bid, ask, bid_qty, ask_qty, trade_px, trade_qty, aggressor = _book(
        np.int64(span_ns),
        times[order].astype(np.int64),
        kind[order],
        side[order],
        burst[order],
        value[order],
        state,
        _kernel_params(market),
        rng.standard_normal((pool, 6)),
        rng.random((pool, 3)),
    )
    order = np.argsort(t, kind="stable")  # a sweep's prints and its move may overtake the next event by microseconds
    t, is_trade, bid, ask = t[order], is_trade[order], bid[order], ask[order]
    bid_qty, ask_qty, trade_px, trade_qty, aggressor = (
        bid_qty[order],
        ask_qty[order],
        trade_px[order],
        trade_qty[order],
        aggressor[order],
    )
    n = len(t)
    ts_server = start_ns + t
    latency = rng.lognormal(math.log(market.latency_median_ms * 1e6), market.latency_sigma, n)
    # One connection delivers in order (TCP): a tick never arrives before an earlier one.
    ts_local = np.maximum.accumulate(ts_server + latency.astype("int64"))
    pdec, qdec = market.price_decimals, market.qty_decimals
    tick, lot = market.tick_size, market.lot_size
    px_text = _formatter(pdec)
    qty_text = _formatter(qdec)
    return pd.DataFrame(
        {
            "symbol": market.symbol,
            "ts_server": ts_server.astype("int64"),
            "ts_local": ts_local.astype("int64"),
            "bid": px_text(bid * tick),
            "ask": px_text(ask * tick),
            "bid_qty": qty_text(bid_qty * lot),
            "ask_qty": qty_text(ask_qty * lot),
            "last_px": np.where(is_trade, px_text(trade_px * tick), ""),
            "last_qty": np.where(is_trade, qty_text(trade_qty * lot), "0"),
            "last_side": np.select([is_trade & (aggressor > 0), is_trade & (aggressor < 0)], ["buy", "sell"], ""),
        },
        columns=list(SOURCE_COLUMNS),
    )


def _formatter(decimals: int):  # type: ignore[no-untyped-def]
    def text(values: np.ndarray) -> np.ndarray:
        return np.char.mod(f"%.{decimals}f", values).astype(object)

    return text


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
    states = [initial_state(m, np.random.default_rng([seed, number, 2**31])) for number, m in enumerate(markets)]
    total_ns = int(seconds * _NS)
    chunk_ns = int(chunk_seconds * _NS)
    for index, offset in enumerate(range(0, total_ns, chunk_ns)):
        span = min(chunk_ns, total_ns - offset)
        parts = []
        for number, market in enumerate(markets):
            rng = np.random.default_rng([seed, number, index])
            parts.append(_symbol_chunk(market, rng, start_ns + offset, span, states[number]))
        yield pd.concat(parts, ignore_index=True).sort_values("ts_local", kind="stable", ignore_index=True)
