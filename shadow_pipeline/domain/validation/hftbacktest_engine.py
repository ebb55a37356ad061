"""hftbacktest 2.4.4 as an independent reality engine: the shadow's strategy run inside hftbacktest's exchange.

Why: the shadow's queue fill model and its dwell proxy share one kernel, so a dry-run between them would let a
bug in shared code pass unseen, and the queue model against itself could not fail at all; here the fills come
from hftbacktest's own exchange model, queue model and event loop, and only the strategy is ours: the same
compiled ``decide`` the shadow's kernel calls (``strategies/interface.py``), on the same view of each row, with
the shadow's order mechanics re-written as an hftbacktest loop. ``docs/hftbacktest-reality.md`` lists what is the
same as our queue-aware engine and every difference.

Conversion (:func:`to_events`): each tick row becomes depth events at the best bid/ask (displayed size; a
touch moving away zeroes the prices it left, so hftbacktest's book never shows a stale level better than the
touch) and, for trade rows, a trade event with the aggressor's side. Rows sharing an exchange millisecond are
spread inside it on a scaled clock (``_clock``) so the strategy wakes on every row, in row order, exactly as
our kernel decides per row; the order latency is then set so an order reaches the exchange just before the
first row at or after ``decision + entry`` latency, as in our kernel. local_ts = exch_ts: decisions are on
exchange time and the feed leg is not in the order path, as in ours.

hftbacktest is imported inside functions only, so this module imports (and reports the missing extra) without it.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
import pandas as pd

from shadow_pipeline.domain.simulation.models import fee_model_of, latency_model_of
from shadow_pipeline.domain.simulation.simulator import (
    FILL_FIELDS,
    KIND_CROSS,
    KIND_HEDGE,
    KIND_TRADE,
    FeeModel,
    LatencyModel,
    MarketColumns,
    Simulation,
    fill_table,
    grow_records,
    in_steps,
    record_fill,
)
from shadow_pipeline.domain.strategies.interface import (
    O_AHEAD,
    O_IN_FLIGHT,
    O_LEFT,
    O_LIVE,
    O_PX,
    OK,
    ORDER_FIELDS,
    Q_TAKER,
    QUOTE_SIZE,
    STATUS_CODE,
    STATUS_TICK,
    V_ASK,
    V_ASK_QTY,
    V_BID,
    V_BID_QTY,
    V_INDEX,
    V_ORDERS,
    V_POSITION,
    V_TAKER_PENDING,
    V_TIME,
    V_TRADE_PX,
    V_TRADE_QTY,
    V_TRADE_SIDE,
    VIEW_SIZE,
    check_quotes,
    raise_for,
)
from shadow_pipeline.domain.strategies.profiles import StrategyParams
from shadow_pipeline.domain.strategies.registry import strategy_of

QUEUE_MODELS = ("risk_averse", "power", "log")
INSTALL_HINT = "hftbacktest is not installed: pip install -e '.[hbt]' (make test installs it)"
_MS = 1_000_000
_NEVER = np.int64(-(2**62))
_QUOTE_ROOM_TICKS = 1000
_MAX_CLOCK = 2**61  # hftbacktest adds timeouts to its clock: leave headroom below int64's end
# hftbacktest.order constants (2.4.4), inlined so the compiled loop needs no import of hftbacktest.
_NEW, _FILLED, _GTC, _GTX, _LIMIT, _MARKET = 1, 3, 0, 1, 0, 1
_END_OF_DATA, _MARKET_FEED = 1, 2


class HftbacktestMissing(RuntimeError):
    """hftbacktest (the optional ``hbt`` extra) cannot be imported."""


def hftbacktest_available() -> bool:
    """Whether the ``hbt`` extra is importable (tests and the bench skip its engine otherwise)."""
    try:
        import hftbacktest  # noqa: F401
    except ImportError:
        return False
    return True


def _hbt() -> Any:
    try:
        import hftbacktest
    except ImportError as exc:
        raise HftbacktestMissing(INSTALL_HINT) from exc
    return hftbacktest


def _clock(ts: np.ndarray) -> tuple[np.ndarray, int]:
    """(hftbacktest time of each row, scale): ``(ts - ts[0]) * scale + rank`` of the row among the rows with its
    exchange time; ``scale`` is a power of two above twice the largest rank, so ranks use the lower half of a
    scaled nanosecond and an arrival can be placed in the upper half (see ``_entry``)."""
    if len(ts) and np.any(np.diff(ts) < 0):
        raise ValueError("ticks must be sorted by ts_server")
    index = np.arange(len(ts), dtype=np.int64)
    first = np.maximum.accumulate(np.where(np.r_[True, ts[1:] != ts[:-1]], index, 0)) if len(ts) else index
    rank = index - first
    scale = 1 << int(2 * (int(rank.max()) + 1) if len(ts) else 2).bit_length()
    if len(ts) and (int(ts[-1] - ts[0]) + 10**10) * scale >= _MAX_CLOCK:
        raise ValueError(f"{len(ts)} ticks over {(ts[-1] - ts[0]) / 1e9:.0f} s do not fit hftbacktest's scaled clock")
    return (ts - (ts[0] if len(ts) else 0)) * scale + rank, scale


def _entry(entry_ns: int, scale: int) -> int:
    """hftbacktest entry latency on the scaled clock: an order sent at a row arrives after every row before
    ``sent + entry_ns`` and before every row at or after it (our kernel's activation rule); 0 stays 0 (then
    the order is live from the next row, as in ours)."""
    return entry_ns * scale - scale // 2 if entry_ns > 0 else 0


def to_events(ticks: pd.DataFrame, params: StrategyParams) -> np.ndarray:
    """hftbacktest ``event_dtype`` events of one symbol's ticks (sorted by ``ts_server``), on the scaled clock
    of ``_clock`` (exch_ts = local_ts). Per row, in order: zeroes of the prices the touch left (bids above the
    new bid, asks below the new ask), the bid and the ask when price or size changed, the trade; a row with none
    of these gets a local-only event (the exchange never sees it) so the strategy still wakes on it."""
    hbt = _hbt()
    ts = ticks["ts_server"].to_numpy(dtype=np.int64)
    clock, _ = _clock(ts)
    bid, ask = in_steps(ticks["bid"], params.tick_size), in_steps(ticks["ask"], params.tick_size)
    bid_qty = ticks["bid_qty"].to_numpy(dtype=np.float64)
    ask_qty = ticks["ask_qty"].to_numpy(dtype=np.float64)
    n = len(ts)
    prev_bid, prev_ask = np.r_[np.int64(-1), bid[:-1]], np.r_[np.int64(-1), ask[:-1]]
    first = np.arange(n) == 0
    # prices to zero: bid moved down (prev_bid .. bid+1), ask moved up (prev_ask .. ask-1)
    bid_gone = np.where(~first & (bid < prev_bid), prev_bid - bid, 0)
    ask_gone = np.where(~first & (ask > prev_ask), ask - prev_ask, 0)
    set_bid = first | (bid != prev_bid) | (bid_qty != np.r_[np.nan, bid_qty[:-1]])
    set_ask = first | (ask != prev_ask) | (ask_qty != np.r_[np.nan, ask_qty[:-1]])
    is_trade = ticks["is_trade"].to_numpy(dtype=bool)
    wake = ~(set_bid | set_ask | is_trade | (bid_gone > 0) | (ask_gone > 0))
    both = hbt.EXCH_EVENT | hbt.LOCAL_EVENT
    parts: list[tuple[np.ndarray, int, np.ndarray, np.ndarray, np.ndarray]] = []  # (row, order, ev, px, qty)

    def gone(count: np.ndarray, start: np.ndarray, step: int, flag: int, order: int) -> None:
        rows = np.repeat(np.arange(n), count)
        offset = np.arange(len(rows)) - np.repeat(np.cumsum(count) - count, count)
        px = (np.repeat(start, count) + step * offset) * params.tick_size
        parts.append((rows, order, np.full(len(rows), both | hbt.DEPTH_EVENT | flag, np.uint64), px, 0.0 * px))

    gone(ask_gone, prev_ask, 1, hbt.SELL_EVENT, 0)
    gone(bid_gone, prev_bid, -1, hbt.BUY_EVENT, 1)
    for mask, px, qty, flag, order in (
        (set_bid, bid, bid_qty, hbt.BUY_EVENT, 2),
        (set_ask, ask, ask_qty, hbt.SELL_EVENT, 3),
    ):
        rows = np.flatnonzero(mask)
        parts.append(
            (
                rows,
                order,
                np.full(len(rows), both | hbt.DEPTH_EVENT | flag, np.uint64),
                px[rows] * params.tick_size,
                qty[rows],
            )
        )
    rows = np.flatnonzero(is_trade)
    side = np.where(ticks["last_side"].to_numpy(dtype=object)[rows] == "buy", hbt.BUY_EVENT, hbt.SELL_EVENT)
    parts.append(
        (
            rows,
            4,
            (both | hbt.TRADE_EVENT | side).astype(np.uint64),
            ticks["last_px"].to_numpy(dtype=np.float64)[rows],
            ticks["last_qty"].to_numpy(dtype=np.float64)[rows],
        )
    )
    rows = np.flatnonzero(wake)
    ev = np.full(len(rows), hbt.LOCAL_EVENT | hbt.DEPTH_EVENT | hbt.BUY_EVENT, np.uint64)
    parts.append((rows, 5, ev, bid[rows] * params.tick_size, bid_qty[rows]))
    row = np.concatenate([p[0] for p in parts])
    within = np.concatenate([np.full(len(p[0]), p[1]) for p in parts])
    order = np.lexsort((np.arange(len(row)), within, row))  # by row, then kind of event, then price order
    events = np.zeros(len(row), dtype=hbt.event_dtype)
    events["ev"] = np.concatenate([p[2] for p in parts])[order]
    events["exch_ts"] = events["local_ts"] = clock[row[order]]
    events["px"] = np.concatenate([p[3] for p in parts])[order]
    events["qty"] = np.concatenate([p[4] for p in parts])[order]
    return events


@numba.njit  # not cache=True: hftbacktest's bindings are ctypes pointers, which numba cannot cache (~12 s per process)
def _loop(
    hbt: Any,
    decide: Any,
    strategy: np.ndarray,
    state: np.ndarray,
    status: np.ndarray,
    ts: np.ndarray,
    clock: np.ndarray,
    row_bid: np.ndarray,
    row_ask: np.ndarray,
    bid_qty: np.ndarray,
    ask_qty: np.ndarray,
    aggressor: np.ndarray,
    trade_px: np.ndarray,
    trade_qty: np.ndarray,
    lot: float,
    tick: float,
    min_requote_ns: int,
    entry_ns: int,
    timeout: int,
    position: np.ndarray,
) -> tuple[np.ndarray, int]:
    """The shadow's order mechanics around the strategy's ``decide`` on hftbacktest, waking on every row; returns
    the fill records (``F_*`` columns) and hftbacktest's last error code (0: none); a strategy's error stops
    the loop with its code in ``status``. The strategy sees what it sees in the shadow's kernel (the row's
    touch, sizes and trade), except its queue ahead, which hftbacktest does not expose (-1); the hedge crosses
    hftbacktest's own touch. Order slots per
    side: 0 the live order, 1 the one it replaced while its cancel is in flight (as in the queue-aware kernel)."""
    n = len(ts)
    oid = np.zeros(4, np.int64)  # order id per slot 2 * side + j; 0: none
    live_ts = np.zeros(4, np.int64)
    live_px = np.zeros(2, np.int64)
    live_qty = np.zeros(2, np.int64)
    has = np.zeros(2, np.bool_)
    pend_on = np.zeros(2, np.bool_)
    pend_due = np.zeros(2, np.int64)
    last_sent = np.full(2, _NEVER, np.int64)
    hedge_id = 0
    hedge_ts = np.int64(0)
    next_id = 1
    pos = np.int64(0)
    view = np.zeros(VIEW_SIZE, np.int64)
    quotes = np.zeros(QUOTE_SIZE, np.float64)
    records = np.empty((max(1024, n // 16), FILL_FIELDS), np.int64)
    k = 0
    i = -1
    while i + 1 < n:
        code = hbt.wait_next_feed(False, timeout)
        if code == _END_OF_DATA:  # returned after processing the last row (nothing left to wait for)
            now = clock[n - 1]
        elif code == _MARKET_FEED:
            now = hbt.current_timestamp
        elif code == 0:  # timeout
            continue
        else:
            return records[:k], code
        woke = i
        while i + 1 < n and clock[i + 1] <= now:
            i += 1
            position[i] = pos
        if i == woke:  # an event between rows (a depth update, ``depth_events``): no row to decide on yet
            continue
        t = ts[i]
        if k + 5 > records.shape[0]:
            records = grow_records(records)
        depth = hbt.depth(0)
        bid, ask = depth.best_bid_tick, depth.best_ask_tick
        orders = hbt.orders(0)
        # fills known at this row: the hedge (it executed between the rows), then the bid's and the ask's orders
        if hedge_id != 0:
            o = orders.get(hedge_id)
            if o is not None and o.status == _FILLED:
                qty = np.int64(round(o.exec_qty / lot))
                side = 1 if o.side == 1 else -1
                pos += side * qty
                record_fill(records, k, i, side, o.exec_price_tick, qty, KIND_HEDGE, hedge_ts, pos, -1)
                k += 1
                hedge_id = 0
        for r in range(4):
            if oid[r] == 0:
                continue
            o = orders.get(oid[r])
            if o is None:
                oid[r] = 0
                continue
            if o.status == _FILLED:
                sign = 1 if r < 2 else -1
                qty = np.int64(round(o.exec_qty / lot))
                pos += sign * qty
                px = o.exec_price_tick
                crossed = (ask <= px) if sign > 0 else (bid >= px)
                record_fill(records, k, i, sign, px, qty, KIND_CROSS if crossed else KIND_TRADE, live_ts[r], pos, -1)
                k += 1
                oid[r] = 0
            elif o.status != _NEW and o.req == 0:  # expired (post-only rejection) or cancelled
                oid[r] = 0
        if i % 1024 == 0:
            hbt.clear_inactive_orders(0)
        for s in range(2):
            if pend_on[s] and pend_due[s] <= t:
                pend_on[s] = False
        # the strategy's decision, on the view the shadow's kernel gives it
        view[V_TIME] = t
        view[V_INDEX] = i
        view[V_BID] = row_bid[i]
        view[V_ASK] = row_ask[i]
        view[V_BID_QTY] = bid_qty[i]
        view[V_ASK_QTY] = ask_qty[i]
        view[V_TRADE_SIDE] = aggressor[i]
        view[V_TRADE_PX] = trade_px[i]
        view[V_TRADE_QTY] = trade_qty[i]
        view[V_POSITION] = pos
        view[V_TAKER_PENDING] = hedge_id != 0
        for s in range(2):
            has[s] = False
            left = np.int64(0)
            if oid[2 * s] != 0:
                o = orders.get(oid[2 * s])
                has[s] = o is not None and o.status == _NEW
                if has[s]:
                    left = np.int64(round(o.leaves_qty / lot))
            v = V_ORDERS + ORDER_FIELDS * s
            view[v + O_LIVE] = has[s]
            view[v + O_PX] = live_px[s]
            view[v + O_LEFT] = left
            view[v + O_AHEAD] = -1
            view[v + O_IN_FLIGHT] = pend_on[s]
        quotes[:] = 0.0
        status[STATUS_TICK] = i
        decide(strategy, view, state, quotes)
        status[STATUS_CODE] = check_quotes(quotes)
        if status[STATUS_CODE] != OK:
            return records[:k], 0
        # a taker order (the hedge) when none is in flight
        if quotes[Q_TAKER] != 0 and hedge_id == 0:
            qty_f = abs(quotes[Q_TAKER]) * lot
            hedge_id = next_id
            next_id += 1
            hedge_ts = t + entry_ns
            if quotes[Q_TAKER] < 0:
                code = hbt.submit_sell_order(0, hedge_id, bid * tick, qty_f, _GTC, _MARKET, False)
            else:
                code = hbt.submit_buy_order(0, hedge_id, ask * tick, qty_f, _GTC, _MARKET, False)
            if code != 0:
                return records[:k], code
        # quotes: one order in flight per side, min_requote_ns between sends
        for s in range(2):
            if pend_on[s]:
                continue
            want_qty = np.int64(quotes[2 * s + 1])
            want_px = np.int64(quotes[2 * s])
            want = want_qty > 0
            differs = want_px != live_px[s] or want_qty != live_qty[s]
            if (want != has[s] or (want and differs)) and t - last_sent[s] >= min_requote_ns:
                if has[s]:
                    code = hbt.cancel(0, oid[2 * s], False)
                    if code != 0:
                        return records[:k], code
                    oid[2 * s + 1] = oid[2 * s]
                    live_ts[2 * s + 1] = live_ts[2 * s]
                oid[2 * s] = 0
                if want:
                    oid[2 * s] = next_id
                    next_id += 1
                    live_ts[2 * s] = t + entry_ns
                    if s == 0:
                        code = hbt.submit_buy_order(0, oid[0], want_px * tick, want_qty * lot, _GTX, _LIMIT, False)
                    else:
                        code = hbt.submit_sell_order(0, oid[2], want_px * tick, want_qty * lot, _GTX, _LIMIT, False)
                    if code != 0:
                        return records[:k], code
                live_px[s] = want_px
                live_qty[s] = want_qty
                pend_on[s] = True
                pend_due[s] = t + entry_ns
                last_sent[s] = t
        position[i] = pos
    return records[:k], 0


def _queue_model(asset: Any, queue_model: str, power: float) -> Any:
    if queue_model == "risk_averse":
        return asset.risk_adverse_queue_model()
    if queue_model == "power":
        return asset.power_prob_queue_model(power)
    if queue_model == "log":
        return asset.log_prob_queue_model()
    raise ValueError(f"queue_model {queue_model!r} is not one of {', '.join(QUEUE_MODELS)}")


def hftbacktest_replay(
    ticks: pd.DataFrame,
    params: StrategyParams,
    queue_model: str = "risk_averse",
    latency: LatencyModel | None = None,
    fees: FeeModel | None = None,
    power: float = 3.0,
    depth: np.ndarray | None = None,
) -> Simulation:
    """The profile's strategy over one symbol's ticks (sorted by ``ts_server``), filled by hftbacktest's
    ``NoPartialFillExchange`` with ``queue_model`` (``risk_averse``: RiskAdverseQueueModel; ``power``:
    PowerProbQueueModel(``power``); ``log``: LogProbQueueModel). ``latency``/``fees`` default to the profile's.

    Returns the simulator's ``Simulation`` (so ``iteration_kpis`` applies unchanged). No partial fills: 2.4.4's
    ``PartialFillExchange`` stops with InvalidOrderStatus when a partial fill exhausts an order (upstream issues
    312, 316). hftbacktest has one latency for orders and cancels: ``latency.cancel_ms`` is not used.

    ``depth``: the events of ``depth_events.depth_events`` (a full L2 book and these ticks' trades) in place of
    the touch-only ``to_events``; the strategy still sees each row's touch, hftbacktest's exchange the whole book.
    """
    hbt = _hbt()
    latency = latency or latency_model_of(params)
    fees = fees or fee_model_of(params)
    _queue_model(hbt.BacktestAsset(), queue_model, power)  # reject an unknown model before converting
    ts = ticks["ts_server"].to_numpy(dtype=np.int64)
    market = MarketColumns.of(ticks, params.tick_size, params.lot_step)
    strategy = strategy_of(params.strategy)
    position = np.zeros(len(ts), np.int64)
    status = np.array([OK, -1], np.int64)
    records = np.empty((0, FILL_FIELDS), np.int64)
    if len(ts):
        clock, scale = _clock(ts)
        # kept referenced until the backtest is closed: hftbacktest reads it in place
        events = to_events(ticks, params) if depth is None else depth
        prices = np.r_[ticks["bid"].to_numpy(dtype=np.float64), ticks["ask"].to_numpy(dtype=np.float64)]
        # hftbacktest keeps depth for the prices of interest only: room for quotes a strategy places away from the
        # touch (an inventory skew can be many ticks)
        margin = (params.quote_offset_ticks + _QUOTE_ROOM_TICKS) * params.tick_size
        asset = (
            hbt.BacktestAsset()
            .data(events)
            .linear_asset(1.0)
            .constant_order_latency(_entry(latency.entry_ns, scale), 0)
            .no_partial_fill_exchange()
            .trading_value_fee_model(fees.maker_rate, fees.taker_rate)
            .tick_size(params.tick_size)
            .lot_size(params.lot_step)
            .roi_lb(float(prices.min()) - margin)
            .roi_ub(float(prices.max()) + margin)
        )
        backtest = hbt.ROIVectorMarketDepthBacktest([_queue_model(asset, queue_model, power)])
        try:
            records, code = _loop(
                backtest,
                strategy.compiled(),
                strategy.pack(params),
                np.zeros(strategy.state_size, np.float64),
                status,
                ts,
                clock,
                market.bid,
                market.ask,
                market.bid_qty,
                market.ask_qty,
                market.aggressor,
                market.trade_px,
                market.trade_qty,
                params.lot_step,
                params.tick_size,
                round(params.min_requote_ms * _MS),
                latency.entry_ns,
                int(clock[-1]) + 2 * _entry(latency.entry_ns, scale) + 1,
                position,
            )
        except Exception as exc:
            raise_for(params.strategy, status, ts, exc)
            raise
        finally:
            backtest.close()
        del events
        raise_for(params.strategy, status, ts)
        if code != 0:
            raise RuntimeError(f"hftbacktest stopped with error code {code}")
    inventory = pd.DataFrame({"ts": ts, "position": position * params.lot_step, "mid": market.mid})
    return Simulation(fill_table(ts, market.mid, records, params, fees), inventory)
