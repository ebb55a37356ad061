"""FROZEN COPY, for ``make bench`` only: the shadow's simulator at commit ``dad5646``, with the quoting rule
written inline in its kernel, before the strategy interface. ``bench.py`` times today's ``simulate`` against
this one on the same ticks (the strategy interface's cost, ratio >= 0.9 is the acceptance); nothing else
imports it. Only the imports of the fill-model names changed (they are local here).

Deterministic fill simulation of a two-sided quoting strategy on one symbol's ticks.

One compiled kernel runs the strategy; the rules, per tick in exchange time (``ts_server``) order, are
(``docs/shadow-simulation.md`` has the full text):

1. Orders go live ``decision_latency_ms + order_entry_latency_ms`` after the tick that decided them; a new order
   replaces the side's resting one (cancel/replace), and an order that would cross the touch in force at that
   moment is rejected (post-only). A pending hedge executes as a taker at this tick's opposite touch, for the
   quantity decided when it was sent.
2. Maker fills of resting orders, by the profile's fill model (``fill.model``):
   - ``queue`` (the default, :class:`QueueAware`): the order joins the back of the displayed queue at its price;
     opposite-aggressor trades at the price take the queue ahead first, then fill it (partial fills); a trade
     through the price or the opposite touch reaching it fills all that remains; a replaced order rests, and can
     fill, until its cancel lands. On recorded Binance days this predicts hftbacktest's fills within 0.85-1.11x.
   - ``dwell`` (the seed's proxy, :class:`TouchDwell`): a quote that has stood ``touch_dwell_ms`` at its price
     fills all that remains when the opposite touch reaches it and up to the trade's size when an
     opposite-aggressor trade prints at or through it; queue position is ignored, so it fills far more often.
   A fully filled side is requoted as a new order, so latency (and dwell) apply again.
3. When |position| reaches ``max_inventory`` lots and no hedge is pending, a hedge back to
   ``hedge_target * max_inventory`` is sent (mode ``cross``).
4. The strategy wants a bid at ``bid - offset`` ticks and an ask at ``ask + offset`` ticks, except on a side
   whose full order could push |position| beyond ``max_inventory``. When that differs from the side's live order,
   no order of the side is in flight and ``min_requote_ms`` has passed since its last send, it sends a new order.

Steps 1, 3 and 4 are shared, so both fill models see the same decisions; only step 2 and the cancel timing
differ. Prices are integer ticks and quantities integer lot steps inside the kernel, so comparisons and
inventory arithmetic are exact. Depth beyond the touch and our own market impact are ignored.

hftbacktest composes a backtest of a queue model, a latency model and a fee model, one trait each; the kernel
stays one compiled loop, but :func:`run` takes the same three parts by name: a fill model (:class:`QueueAware`
or :class:`TouchDwell`), a :class:`LatencyModel` and a :class:`FeeModel`. The strategy (quotes, requotes,
inventory limit, hedge) and the instrument come from ``StrategyParams``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import pandas as pd

from shadow_pipeline.domain.strategies.profiles import StrategyParams

FILL_QUEUE, FILL_DWELL = "queue", "dwell"

_MS = 1_000_000
_NEVER = np.int64(-(2**62))
_FAR = np.int64(2**62)
KIND_TRADE, KIND_CROSS, KIND_HEDGE = 0, 1, 2
FILL_KINDS = ("trade", "cross", "hedge")
# At most one fill per resting order (two per side under the queue model) and a hedge per tick.
_FILLS_PER_TICK = 5
# Fields of a resting order, ``order[2 * side + slot]``. Slot 0 is the side's live order; slot 1 (queue model only)
# the order it replaced, while that order's cancel is in flight. Queue fields are in lot steps: AHEAD is the queue
# ahead (-1: not known yet), SHOWN the size displayed at the order's price at the last quote tick (-1: the price
# was behind the touch), TRADED the opposite-aggressor trades at the price since that quote tick that no displayed
# decrease has accounted for; HELD_* keep a millisecond's size evidence until the millisecond ends.
ON, PX, REM, LIVE, CANCEL, AHEAD, ENTRY_AHEAD, SHOWN, TRADED, HELD_CUT, HELD_CAP, HELD_TS, GONE_TS = range(13)
_ORDER_FIELDS = 13
# Columns of the kernel's fill records.
F_TICK, F_SIDE, F_PX, F_QTY, F_KIND, F_LIVE, F_POS, F_AHEAD = range(8)
FILL_FIELDS = 8
_Int = int | np.integer[Any]


@dataclass(frozen=True)
class Simulation:
    """``fills``: one row per fill; ``inventory``: the position after each tick (same order as the ticks)."""

    fills: pd.DataFrame
    inventory: pd.DataFrame


@dataclass(frozen=True)
class TouchDwell:
    """The fill model ``dwell`` (the seed's touch + dwell proxy): dwell stands in for queue position.

    A live quote that has stood ``dwell_ms`` at its price fills all that remains when the opposite touch reaches
    it, and up to the trade's size when an opposite-aggressor trade prints at or through it. hftbacktest has no
    dwell model: this is its ``PartialFillExchange`` with every order taken to be at the front of its queue once
    it has dwelt (no ``QueueModel`` at all), except that a trade through the price fills at most its own size.
    """

    dwell_ms: float

    @classmethod
    def of(cls, params: StrategyParams) -> TouchDwell:
        return cls(params.touch_dwell_ms)

    @property
    def label(self) -> str:
        return f"dwell (touch_dwell_ms {self.dwell_ms:g})"

    @property
    def dwell_ns(self) -> int:
        return round(self.dwell_ms * _MS)


@dataclass(frozen=True)
class QueueAware:
    """The fill model ``queue``, the shadow's default (rules in ``docs/shadow-simulation.md``).

    An order joins the back of the displayed queue at its price; opposite-aggressor trades at the price take the
    queue ahead first and then fill it (partial fills), a trade through the price or the opposite touch reaching
    it fills all that remains; no dwell. ``size_decrease_share`` (in [0, 1]) is the part of a displayed decrease
    that trades do not explain (cancellations) taken to be ahead of the order. Nearest in hftbacktest: its
    ``PartialFillExchange`` with, at share 0, ``RiskAdverseQueueModel`` (the queue ahead moves on trades only and
    never exceeds the displayed size); a share above 0 is a constant stand-in for ``ProbQueueModel``, whose
    probability function makes the share depend on the queue position. Top-of-book data adds rules of its own
    (a level that empties, an order behind the touch), listed in ``docs/dry-run.md``.
    """

    size_decrease_share: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.size_decrease_share <= 1.0:
            raise ValueError(f"size_decrease_share {self.size_decrease_share} is not in [0, 1]")

    @property
    def label(self) -> str:
        named = " (risk-averse)" if self.size_decrease_share == 0 else ""
        return f"queue (size_decrease_share {self.size_decrease_share:g}{named})"


FillModel = TouchDwell | QueueAware


def fill_model_of(params: StrategyParams) -> FillModel:
    """The profile's fill model (``fill.model``): what the shadow runs and what its reports name."""
    if params.fill_model == FILL_DWELL:
        return TouchDwell.of(params)
    if params.fill_model == FILL_QUEUE:
        return QueueAware(params.size_decrease_share)
    raise ValueError(f"unknown fill model {params.fill_model!r}; known: {FILL_QUEUE}, {FILL_DWELL}")


@dataclass(frozen=True)
class LatencyModel:
    """Constant delays of our own order path, ms (``docs/shadow-simulation.md``, step 1).

    ``decision_ms``: from the tick to the strategy's decision (also the decision leg of the latency KPI);
    ``order_entry_ms``: from the decision to the order being live at the exchange (a hedge executes after the
    same delay); ``cancel_ms``: from the decision to a cancel landing, used by the queue-aware fill model only
    (under touch + dwell a replaced order rests until its replacement lands). hftbacktest: ``ConstantLatency``
    with entry latency ``decision_ms + order_entry_ms`` and response latency 0 (the strategy knows its fills at
    the tick they happen); there one entry latency serves new orders and cancels alike, so a ``cancel_ms`` that
    differs from ``order_entry_ms`` would be a custom ``LatencyModel``. The feed leg is not in the order path:
    decisions are taken on exchange time.
    """

    decision_ms: float
    order_entry_ms: float
    cancel_ms: float

    def __post_init__(self) -> None:
        for name in ("decision_ms", "order_entry_ms", "cancel_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} {getattr(self, name)} is negative")

    @classmethod
    def of(cls, params: StrategyParams, cancel_ms: float | None = None) -> LatencyModel:
        """The profile's latencies; ``cancel_ms`` None: cancels take as long as order entry."""
        entry = params.order_entry_latency_ms
        return cls(params.decision_latency_ms, entry, entry if cancel_ms is None else cancel_ms)

    @property
    def entry_ns(self) -> int:
        """From the deciding tick to the order live (or the hedge executed)."""
        return round((self.decision_ms + self.order_entry_ms) * _MS)

    @property
    def cancel_ns(self) -> int:
        """From the deciding tick to the cancel landed."""
        return round((self.decision_ms + self.cancel_ms) * _MS)


@dataclass(frozen=True)
class FeeModel:
    """Fees as a fraction of traded value (price * qty), by liquidity side; negative is a rebate (0.0002 = 2 bps).

    Maker fills (our resting quotes) pay ``maker_rate``, taker fills (hedges) ``taker_rate``. hftbacktest:
    ``TradingValueFeeModel(CommonFees(maker_fee, taker_fee))``, which takes the same fractions.
    """

    maker_rate: float
    taker_rate: float

    @classmethod
    def of(cls, params: StrategyParams) -> FeeModel:
        return cls(params.maker_fee_rate, params.taker_fee_rate)

    def rates(self, is_maker: np.ndarray) -> np.ndarray:
        """The fee rate of each fill."""
        return np.where(is_maker, self.maker_rate, self.taker_rate)


@numba.njit(cache=True)
def grow_records(records: np.ndarray) -> np.ndarray:
    """Twice the room for fill records (``F_*`` columns), the rows so far kept."""
    bigger = np.empty((2 * records.shape[0], records.shape[1]), np.int64)
    bigger[: records.shape[0]] = records
    return bigger


@numba.njit(cache=True)
def record_fill(
    records: np.ndarray,
    k: int,
    tick: int,
    side: int,
    px: _Int,
    qty: _Int,
    kind: int,
    live: _Int,
    pos: _Int,
    ahead: _Int,
) -> None:
    records[k, F_TICK] = tick
    records[k, F_SIDE] = side
    records[k, F_PX] = px
    records[k, F_QTY] = qty
    records[k, F_KIND] = kind
    records[k, F_LIVE] = live
    records[k, F_POS] = pos
    records[k, F_AHEAD] = ahead


@numba.njit(cache=True)
def _join(order: np.ndarray, r: int, sign: int, touch: int, touch_qty: int) -> None:
    """Queue position of an order going live against the touch in force: behind the displayed size when it
    joins the touch, at the front when it improves it, unknown while it is behind the touch."""
    level = (touch - order[r, PX]) * sign
    ahead = touch_qty if level == 0 else (0 if level < 0 else -1)
    order[r, AHEAD] = ahead
    order[r, ENTRY_AHEAD] = ahead
    order[r, SHOWN] = ahead
    order[r, TRADED] = 0
    order[r, HELD_CUT] = 0
    order[r, HELD_CAP] = _FAR
    order[r, HELD_TS] = _FAR
    order[r, GONE_TS] = _NEVER


@numba.njit(cache=True)
def _queue_fill(
    order: np.ndarray,
    r: int,
    t: int,
    sign: int,
    touch: int,
    touch_qty: int,
    opposite: int,
    aggressor: int,
    trade_px: int,
    trade_qty: int,
    share: float,
) -> tuple[int, int]:
    """(quantity, kind) this tick fills of a resting order under the queue model; advances its queue.

    Size evidence (a displayed decrease, the displayed bound) is held until its millisecond ends, because trades
    and book updates stamped with the same millisecond arrive in either order and must not count twice.
    """
    if order[r, HELD_TS] < t:
        if order[r, AHEAD] > 0:
            cut = np.int64(np.floor(share * order[r, HELD_CUT] + 0.5))
            order[r, AHEAD] = max(0, min(order[r, AHEAD] - cut, order[r, HELD_CAP]))
        order[r, HELD_CUT] = 0
        order[r, HELD_CAP] = _FAR
        order[r, HELD_TS] = _FAR
    price = order[r, PX]
    if (opposite - price) * sign <= 0:
        return order[r, REM], KIND_CROSS
    if aggressor == -sign:
        if (trade_px - price) * sign < 0:
            return order[r, REM], KIND_TRADE
        if trade_px != price:
            return 0, KIND_TRADE
        matched = min(order[r, HELD_CUT], trade_qty)  # this millisecond's decrease already showed this trade
        order[r, HELD_CUT] -= matched
        order[r, HELD_CAP] += matched
        order[r, TRADED] += trade_qty - matched
        if order[r, AHEAD] < 0:
            return 0, KIND_TRADE
        if order[r, GONE_TS] == t:
            return order[r, REM], KIND_TRADE
        taken = min(order[r, AHEAD], trade_qty)
        order[r, AHEAD] -= taken
        return min(order[r, REM], trade_qty - taken), KIND_TRADE
    if aggressor != 0:
        return 0, KIND_TRADE
    # a quote tick: what the touch now shows at our price
    level = (touch - price) * sign
    if level > 0:  # behind the touch: the size at our price is not displayed
        order[r, SHOWN] = -1
        order[r, TRADED] = 0
        return 0, KIND_TRADE
    shown = touch_qty if level == 0 else 0
    emptied = level < 0 and order[r, AHEAD] != 0
    if emptied and order[r, TRADED] > 0:  # the level traded away: consumed, our order with it
        return order[r, REM], KIND_TRADE
    if order[r, AHEAD] < 0:
        order[r, AHEAD] = shown  # our price just became the touch: we join behind what it shows
    else:
        if order[r, SHOWN] >= 0:
            order[r, HELD_CUT] += max(0, order[r, SHOWN] - shown - order[r, TRADED])
        order[r, HELD_CAP] = shown
        order[r, HELD_TS] = t
    if emptied:
        order[r, GONE_TS] = t
    order[r, SHOWN] = shown
    order[r, TRADED] = 0
    return 0, KIND_TRADE


@numba.njit(cache=True)
def _kernel(
    ts: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    bid_qty: np.ndarray,
    ask_qty: np.ndarray,
    aggressor: np.ndarray,
    trade_px: np.ndarray,
    trade_qty: np.ndarray,
    offset: int,
    order_qty: int,
    min_requote_ns: int,
    max_pos: int,
    hedge_on: bool,
    hedge_target: int,
    entry_ns: int,
    cancel_ns: int,
    queue: bool,
    dwell_ns: int,
    share: float,
    position: np.ndarray,
) -> np.ndarray:
    """Index 0 of each side pair is the bid, 1 the ask; returns the fill records (``F_*`` columns).

    Arguments after the ticks, by part: the strategy (``offset`` .. ``hedge_target``), the latency model
    (``entry_ns``, ``cancel_ns``) and the fill model: ``queue`` selects queue-aware (``bid_qty``/``ask_qty``,
    ``cancel_ns`` and ``share`` are used only then), otherwise touch + dwell (``dwell_ns``).
    """
    order = np.zeros((4, _ORDER_FIELDS), np.int64)  # row 2 * side + slot
    order[:, CANCEL] = _FAR
    pend_on = np.zeros(2, np.bool_)
    pend_has = np.zeros(2, np.bool_)
    pend_px = np.zeros(2, np.int64)
    pend_ts = np.zeros(2, np.int64)
    last_sent = np.full(2, _NEVER, np.int64)
    hedge_pending = False
    hedge_due = np.int64(0)
    hedge_qty = np.int64(0)
    hedge_side = 0
    pos = np.int64(0)
    records = np.empty((max(1024, len(ts) // 16), FILL_FIELDS), np.int64)
    k = 0
    for i in range(len(ts)):
        t = ts[i]
        if k + _FILLS_PER_TICK > records.shape[0]:
            records = grow_records(records)
        before = max(i - 1, 0)
        # 1. cancels that land, activations (against the touch in force before this tick) and a due hedge
        for s in range(2):
            for j in range(2):
                if order[2 * s + j, ON] and order[2 * s + j, CANCEL] <= t:
                    order[2 * s + j, ON] = 0
            if pend_on[s] and pend_ts[s] <= t:
                pend_on[s] = False
                live = 2 * s
                if queue and order[live, ON]:
                    order[live + 1, :] = order[live, :]
                crosses = i > 0 and ((s == 0 and pend_px[s] >= ask[i - 1]) or (s == 1 and pend_px[s] <= bid[i - 1]))
                order[live, ON] = pend_has[s] and not crosses
                order[live, PX] = pend_px[s]
                order[live, REM] = order_qty
                order[live, LIVE] = pend_ts[s]
                order[live, CANCEL] = _FAR
                if queue:
                    _join(
                        order,
                        live,
                        1 - 2 * s,
                        bid[before] if s == 0 else ask[before],
                        (bid_qty if s == 0 else ask_qty)[before],
                    )
        if hedge_pending and hedge_due <= t:
            hedge_pending = False
            pos += hedge_side * hedge_qty
            record_fill(
                records,
                k,
                i,
                hedge_side,
                ask[i] if hedge_side > 0 else bid[i],
                hedge_qty,
                KIND_HEDGE,
                hedge_due,
                pos,
                -1,
            )
            k += 1
        # 2. maker fills of resting orders
        for s in range(2):
            sign = 1 - 2 * s  # the bid buys (+1), the ask sells (-1)
            for j in range(2):
                r = 2 * s + j
                if not order[r, ON]:
                    continue
                if queue:
                    fill, kind = _queue_fill(
                        order,
                        r,
                        t,
                        sign,
                        bid[i] if s == 0 else ask[i],
                        (bid_qty if s == 0 else ask_qty)[i],
                        ask[i] if s == 0 else bid[i],
                        aggressor[i],
                        trade_px[i],
                        trade_qty[i],
                        share,
                    )
                elif t - order[r, LIVE] < dwell_ns:
                    continue
                elif (s == 0 and ask[i] <= order[r, PX]) or (s == 1 and bid[i] >= order[r, PX]):
                    fill, kind = order[r, REM], KIND_CROSS
                elif aggressor[i] == -sign and (trade_px[i] - order[r, PX]) * sign <= 0:
                    fill, kind = min(order[r, REM], trade_qty[i]), KIND_TRADE
                else:
                    continue
                if fill <= 0:
                    continue
                pos += sign * fill
                order[r, REM] -= fill
                order[r, ON] = order[r, REM] > 0
                ahead = order[r, ENTRY_AHEAD] if queue else -1
                record_fill(records, k, i, sign, order[r, PX], fill, kind, order[r, LIVE], pos, ahead)
                k += 1
        # 3. hedge back towards the target once the limit is reached (quotes never go past it, step 4)
        if hedge_on and not hedge_pending and abs(pos) >= max_pos and abs(pos) > hedge_target:
            hedge_pending = True
            hedge_due = t + entry_ns
            hedge_side = -1 if pos > 0 else 1
            hedge_qty = abs(pos) - hedge_target
        # 4. quoting decisions
        for s in range(2):
            sign = 1 - 2 * s
            want = abs(pos + sign * order_qty) <= max_pos or sign * pos < 0
            want_px = bid[i] - offset if s == 0 else ask[i] + offset
            if pend_on[s]:
                continue  # one order in flight per side: an order sent cannot be recalled, the next one waits
            has = order[2 * s, ON] != 0
            px = order[2 * s, PX]
            if (want != has or (want and want_px != px)) and t - last_sent[s] >= min_requote_ns:
                pend_on[s] = True
                pend_has[s] = want
                pend_px[s] = want_px
                pend_ts[s] = t + entry_ns
                last_sent[s] = t
                if queue and order[2 * s, ON] and order[2 * s, CANCEL] == _FAR:
                    order[2 * s, CANCEL] = t + cancel_ns  # the live order's cancel goes with the first send
        position[i] = pos
    return records[:k]


@dataclass(frozen=True)
class MarketColumns:
    """The kernel's view of one symbol's ticks: exchange times, touch prices and sizes in ticks and lot steps,
    trades with their aggressor sign, and the mid. It depends on the instrument only, so a search over strategy
    parameters builds it once per partition (``tuning.py``) instead of once per parameter set."""

    tick_size: float
    lot_step: float
    ts: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_qty: np.ndarray
    ask_qty: np.ndarray
    aggressor: np.ndarray
    trade_px: np.ndarray
    trade_qty: np.ndarray
    mid: np.ndarray

    @classmethod
    def of(cls, ticks: pd.DataFrame, tick_size: float, lot_step: float) -> MarketColumns:
        is_trade = ticks["is_trade"].to_numpy(dtype=bool)
        buys = ticks["last_side"].to_numpy(dtype=object) == "buy"
        px = ticks["last_px"].to_numpy(dtype=np.float64)
        qty = ticks["last_qty"].to_numpy(dtype=np.float64)
        return cls(
            tick_size=tick_size,
            lot_step=lot_step,
            ts=ticks["ts_server"].to_numpy(dtype=np.int64),
            bid=in_steps(ticks["bid"], tick_size),
            ask=in_steps(ticks["ask"], tick_size),
            bid_qty=in_steps(ticks["bid_qty"], lot_step),
            ask_qty=in_steps(ticks["ask_qty"], lot_step),
            aggressor=np.where(is_trade, np.where(buys, 1, -1), 0).astype(np.int8),
            trade_px=np.where(is_trade, np.rint(np.nan_to_num(px) / tick_size), 0).astype(np.int64),
            trade_qty=np.where(is_trade, np.rint(np.nan_to_num(qty) / lot_step), 0).astype(np.int64),
            mid=(ticks["bid"].to_numpy(dtype=np.float64) + ticks["ask"].to_numpy(dtype=np.float64)) / 2,
        )

    def check(self, params: StrategyParams, ticks: pd.DataFrame) -> None:
        """Refuse columns of other ticks or another instrument (same length and ends: the same ticks)."""
        if (self.tick_size, self.lot_step) != (params.tick_size, params.lot_step) or not same_ticks(self.ts, ticks):
            raise ValueError(
                f"market columns of {len(self.ts)} ticks at tick_size {self.tick_size:g}, lot_step "
                f"{self.lot_step:g} do not fit {len(ticks)} ticks of {params.symbol} ({params.tick_size:g}, "
                f"{params.lot_step:g})"
            )


def same_ticks(ts: np.ndarray, ticks: pd.DataFrame) -> bool:
    """Whether ``ts`` are the exchange times of ``ticks`` by length and both ends (a cheap identity check of
    columns built earlier from them)."""
    if len(ts) != len(ticks):
        return False
    stamps = ticks["ts_server"]
    return len(ts) == 0 or (int(ts[0]) == int(stamps.iloc[0]) and int(ts[-1]) == int(stamps.iloc[-1]))


def in_steps(column: pd.Series, step: float) -> np.ndarray:
    """A price or size column as integer ticks or lot steps (the kernel's exact units)."""
    return np.rint(column.to_numpy(dtype=np.float64) / step).astype(np.int64)


def _steps(value: float, step: float) -> int:
    return round(value / step)


def simulate(ticks: pd.DataFrame, params: StrategyParams, market: MarketColumns | None = None) -> Simulation:
    """Run the strategy over one symbol's ticks (sorted by ``ts_server``) under the profile's models (fill model
    ``fill.model``, queue-aware by default); same input, same output. This is the shadow. ``market``: the ticks'
    columns when already built (a search reuses them)."""
    return run(ticks, params, fill_model_of(params), LatencyModel.of(params), FeeModel.of(params), market)


def run(
    ticks: pd.DataFrame,
    params: StrategyParams,
    fill: FillModel,
    latency: LatencyModel,
    fees: FeeModel,
    market: MarketColumns | None = None,
) -> Simulation:
    """The strategy and instrument of ``params`` under the given models (the models' counterparts in ``params``,
    dwell, latencies and fee rates, are not read here). Under :class:`QueueAware` the fills table has one more
    column, ``queue_ahead_at_entry``."""
    if market is None:
        market = MarketColumns.of(ticks, params.tick_size, params.lot_step)
    market.check(params, ticks)
    ts = market.ts
    bid_qty, ask_qty = market.bid_qty, market.ask_qty
    if isinstance(fill, TouchDwell):
        queue, dwell_ns, share = False, fill.dwell_ns, 0.0
        bid_qty = ask_qty = np.zeros(0, np.int64)  # the dwell rule ignores sizes
    else:
        if latency.cancel_ms > params.min_requote_ms + latency.order_entry_ms:
            # Sends on a side are min_requote_ms apart, so up to this bound a side rests at most its live order and
            # the one it replaced; the kernel tracks those two.
            raise ValueError(
                f"cancel latency {latency.cancel_ms} ms exceeds min_requote_ms + order_entry_latency_ms "
                f"({params.min_requote_ms} + {latency.order_entry_ms}): a side could rest three orders"
            )
        queue, dwell_ns, share = True, 0, fill.size_decrease_share
    order_qty = _steps(params.min_lot, params.lot_step)
    max_pos = params.max_inventory * order_qty
    position = np.empty(len(ts), np.int64)
    records = _kernel(
        ts,
        market.bid,
        market.ask,
        bid_qty,
        ask_qty,
        market.aggressor,
        market.trade_px,
        market.trade_qty,
        params.quote_offset_ticks,
        order_qty,
        round(params.min_requote_ms * _MS),
        max_pos,
        params.hedge_mode == "cross",
        int(params.hedge_target * max_pos),
        latency.entry_ns,
        latency.cancel_ns,
        queue,
        dwell_ns,
        share,
        position,
    )
    inventory = pd.DataFrame({"ts": ts, "position": position * params.lot_step, "mid": market.mid})
    fills = fill_table(ts, market.mid, records, params, fees)
    if queue:
        ahead = records[:, F_AHEAD]
        fills["queue_ahead_at_entry"] = np.where(ahead >= 0, ahead * params.lot_step, np.nan)
    return Simulation(fills, inventory)


def markout_mids(ts: np.ndarray, mid: np.ndarray, fill_ts: np.ndarray, horizon_s: float) -> np.ndarray:
    """Mid of the last tick at or before each fill time + the horizon; NaN past the last tick (not yet known)."""
    horizon = fill_ts + round(horizon_s * 1e9)
    later = np.maximum(np.searchsorted(ts, horizon, side="right") - 1, 0)
    known = horizon <= (ts[-1] if len(ts) else _NEVER)
    return np.where(known, mid[later], np.nan)


def fill_table(
    ts: np.ndarray, mid: np.ndarray, records: np.ndarray, params: StrategyParams, fees: FeeModel
) -> pd.DataFrame:
    """The fills table: maker fills see the mid before their triggering tick, hedges the touch they cross."""
    tick, kind = records[:, F_TICK], records[:, F_KIND].astype(np.int8)
    is_maker = kind != KIND_HEDGE
    price = records[:, F_PX] * params.tick_size
    base = records[:, F_QTY] * params.lot_step
    fee_rate = fees.rates(is_maker)
    fill_ts = ts[tick]
    return pd.DataFrame(
        {
            "ts": fill_ts,
            "tick": tick,
            "side": records[:, F_SIDE].astype(np.int8),
            "price": price,
            "qty": base,
            "is_maker": is_maker,
            "kind": pd.Categorical.from_codes(kind, categories=pd.Index(FILL_KINDS)),
            "fee": price * base * fee_rate,
            "fee_rate": fee_rate,
            "mid_before": mid[np.where(is_maker, np.maximum(tick - 1, 0), tick)],
            "mid_markout": markout_mids(ts, mid, fill_ts, params.markout_horizon_s),
            "position_after": records[:, F_POS] * params.lot_step,
            "quote_live_ts": records[:, F_LIVE],
        }
    )
