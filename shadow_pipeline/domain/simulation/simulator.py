"""Deterministic fill simulation of a two-sided quoting strategy on one symbol's ticks.

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
     Cancellations (displayed decreases no trade explains) are ahead of the order by a constant share, or by
     hftbacktest's power or log probability of its position (``fill.queue_prob``); each order also keeps the
     probability that it fills given that uncertainty (``fill_probability``).
   - ``dwell`` (the seed's proxy, :class:`TouchDwell`): a quote that has stood ``touch_dwell_ms`` at its price
     fills all that remains when the opposite touch reaches it and up to the trade's size when an
     opposite-aggressor trade prints at or through it; queue position is ignored, so it fills far more often.
   A fully filled side is requoted as a new order, so latency (and dwell) apply again.
3. The strategy (``params.strategy``, ``strategies/interface.py``) sees the tick, its position and its live
   orders and says which quote it wants per side (price in ticks, size in lots, or none) and whether to send a
   taker order (the packaged ``touch_offset``: a bid ``quote_offset_ticks`` below the bid and an ask as far
   above the ask, except on a side whose full order could push |position| beyond ``max_inventory``; at that
   limit, a hedge back to ``hedge_target * max_inventory``).
4. A taker order is sent when none is in flight (it executes in step 1 after the entry latency).
5. When a side's wish differs from its live order (price or size), no order of the side is in flight and
   ``min_requote_ms`` has passed since its last send, it sends a new order.

Steps 1, 3, 4 and 5 are shared, so both fill models (and the hftbacktest reality, which calls the same
strategy) see the same decisions; only step 2 and the cancel timing differ. Prices are integer ticks and
quantities integer lot steps inside the kernel, so comparisons and inventory arithmetic are exact. Depth beyond
the touch and our own market impact are ignored.

hftbacktest composes a backtest of a queue model, a latency model and a fee model, one trait each; the kernel
stays one compiled loop, but :func:`run` takes the same three parts (``models.py``, chosen by name there): a fill
model (:class:`QueueAware` or :class:`TouchDwell`), a :class:`LatencyModel` and a :class:`FeeModel`; this module
re-exports them for its callers. The strategy, the order mechanics (``min_requote_ms``) and the instrument come
from ``StrategyParams``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import pandas as pd

from shadow_pipeline.domain.simulation.models import FeeModel as FeeModel
from shadow_pipeline.domain.simulation.models import FillModel as FillModel
from shadow_pipeline.domain.simulation.models import LatencyModel as LatencyModel
from shadow_pipeline.domain.simulation.models import QueueAware as QueueAware
from shadow_pipeline.domain.simulation.models import TouchDwell as TouchDwell
from shadow_pipeline.domain.simulation.models import fee_model_of, latency_model_of
from shadow_pipeline.domain.simulation.models import fill_model_of as fill_model_of
from shadow_pipeline.domain.strategies.interface import (
    DECIDE_TYPE,
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
# decrease has accounted for; HELD_* keep a millisecond's size evidence until the millisecond ends; SIZE the lots
# the order was sent with.
ON, PX, REM, LIVE, CANCEL, AHEAD, ENTRY_AHEAD, SHOWN, TRADED, HELD_CUT, HELD_CAP, HELD_TS, GONE_TS, SIZE = range(14)
_ORDER_FIELDS = 14
# Float state of a resting order, ``qstate[r]`` beside ``order[r]``: Q_VAR the variance (lot steps squared) of the
# queue ahead around its expected value AHEAD, Q_PFILL the largest probability so far that the order is reached
# (``fill_probability``). The queue rule (``prob``, the kernel's argument): PROB_SHARE a constant share of each
# unexplained decrease ahead of the order; PROB_POWER and PROB_LOG hftbacktest's ``ProbQueueModel`` share.
Q_VAR, Q_PFILL = range(2)
QSTATE_FIELDS = 2
PROB_SHARE, PROB_POWER, PROB_LOG = range(3)
# Columns of the kernel's fill records.
F_TICK, F_SIDE, F_PX, F_QTY, F_KIND, F_LIVE, F_POS, F_AHEAD = range(8)
FILL_FIELDS = 8
# Columns of the kernel's send records (what it sent, when: ``Simulation.sends``). S_SIDE is 0 (bid), 1 (ask) or
# SEND_TAKER; S_WANT 1 for an order, 0 for a cancel (the side wants no quote); S_REPLACES 1 when the side's last
# order was live at the send (so the send cancels it); a taker send has its signed lots in S_QTY.
S_TS, S_SIDE, S_WANT, S_PX, S_QTY, S_REPLACES = range(6)
SEND_FIELDS = 6
SEND_TAKER = 2
_Int = int | np.integer[Any]


@dataclass(frozen=True)
class Simulation:
    """``fills``: one row per fill; ``inventory``: the position after each tick (same order as the ticks);
    ``sends``: the orders, cancels and taker orders the strategy sent (``S_*`` columns; what a bot running it
    would publish, ``domain/strategies/external/from_sends.py``), when the engine records them."""

    fills: pd.DataFrame
    inventory: pd.DataFrame
    sends: np.ndarray | None = None


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
def _join(order: np.ndarray, qstate: np.ndarray, r: int, sign: int, touch: int, touch_qty: int) -> None:
    """Queue position of an order going live against the touch in force: behind the displayed size when it
    joins the touch, at the front when it improves it, unknown while it is behind the touch. What it displays is
    known exactly, so the queue ahead starts without variance and the order has not been reached."""
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
    qstate[r, Q_VAR] = 0.0
    qstate[r, Q_PFILL] = 0.0


@numba.njit(cache=True)
def fill_probability(qstate: np.ndarray, r: int) -> float:
    """The probability that order row ``r`` is (at least partly) filled over its life so far: the largest, over
    the opposite-aggressor trades at its price, of the chance that the trade was larger than the queue ahead
    (normal around its expected value, ``Q_VAR``), and 1 once a rule fills it whatever the queue (a trade through
    its price, the opposite touch reaching it, its level traded away). Under a constant share of 0 or 1 the queue
    ahead is certain, so this is 0 or 1, exactly whether the deterministic rule filled it."""
    return float(qstate[r, Q_PFILL])


@numba.njit(cache=True)
def _prob_cut(front: int, back: int, decrease: int, prob: int, exponent: float, unit: float) -> float:
    """Expected part of an unexplained displayed decrease that was ahead of the order, by hftbacktest 2.4.4's
    ``ProbQueueModel.depth``: a decrease is behind with probability f(back) / (f(back) + f(front)) (power:
    f(x) = x ** exponent, log: f(x) = log(1 + x)), and what exceeds the queue behind must have come from ahead.
    Quantities enter f in base currency (``unit`` = lot step per lot), as hftbacktest takes them, which matters
    for the log (the power's ratio is scale-free)."""
    if prob == PROB_POWER:
        f_front, f_back = (front * unit) ** exponent, (back * unit) ** exponent
    else:
        f_front, f_back = math.log1p(front * unit), math.log1p(back * unit)
    behind = f_back / (f_back + f_front)  # front > 0 here, so the sum is positive
    return (1.0 - behind) * decrease + max(behind * decrease - back, 0.0)


@numba.njit(cache=True)
def _release(
    order: np.ndarray, qstate: np.ndarray, r: int, share: float, prob: int, exponent: float, unit: float
) -> None:
    """A millisecond's size evidence applied to the queue ahead: the unexplained decrease ``d`` (cancellations)
    moves the expected queue ahead by the part taken to be ahead, a share ``q`` of it, and the displayed size
    bounds it.

    Uncertainty: each cancelled lot is ahead with probability ``q``, so ``d`` adds ``d q (1 - q)`` to the variance
    of the queue ahead; a queue ahead known to lie in [0, displayed] with mean ``m`` has a variance of at most
    ``m (displayed - m)`` (Bhatia-Davis), so an estimate at the displayed bound (or at 0) is certain.
    """
    decrease = order[r, HELD_CUT]
    cap = order[r, HELD_CAP]
    if prob == PROB_SHARE:
        cut = np.int64(np.floor(share * decrease + 0.5))
        q = share
    else:
        # the queue behind: what was displayed before the decrease (this millisecond's trades at the price
        # already out of both) less the queue ahead
        back = max(0, cap + decrease - order[r, AHEAD])
        expected = _prob_cut(order[r, AHEAD], back, decrease, prob, exponent, unit) if decrease > 0 else 0.0
        cut = np.int64(np.floor(expected + 0.5))
        q = expected / decrease if decrease > 0 else 0.0
    ahead = max(0, min(order[r, AHEAD] - cut, cap))
    order[r, AHEAD] = ahead
    var = qstate[r, Q_VAR] + decrease * q * (1.0 - q)
    qstate[r, Q_VAR] = min(var, float(ahead) * float(cap - ahead))


@numba.njit(cache=True)
def _reach(qstate: np.ndarray, r: int, reach: int) -> None:
    """Fold in the chance that an opposite-aggressor trade at the price reached the order: ``reach`` is the
    trade's size less the expected queue ahead, so the deterministic rule fills when it is at least 1; the true
    queue ahead is taken as normal around its expected value (variance ``Q_VAR``), with a continuity correction of
    half a lot step. Trades move the queue ahead exactly, so between two releases of evidence the chance of being
    reached by any of several trades is that of the one with the largest ``reach``: the maximum is exact then, and
    a lower bound when new cancellations widen the spread between trades."""
    var = qstate[r, Q_VAR]
    certain = 1.0 if reach > 0 else 0.0
    p = 0.5 * math.erfc((0.5 - reach) / math.sqrt(2.0 * var)) if var > 0.0 else certain
    if p > qstate[r, Q_PFILL]:
        qstate[r, Q_PFILL] = p


@numba.njit(cache=True, inline="always")
def _queue_fill(
    order: np.ndarray,
    qstate: np.ndarray,
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
    prob: int,
    exponent: float,
    unit: float,
) -> tuple[int, int]:
    """(quantity, kind) this tick fills of resting order row ``r`` under the queue model; advances its queue
    (``order[r]``) and its uncertainty (``qstate[r]``: ``Q_*``).

    The queue ahead follows its expected path, so fills are deterministic; ``qstate`` says how sure they are. The
    queue rule ``prob`` (``PROB_*``) sets the share of each unexplained decrease taken to be ahead: ``share``, or
    hftbacktest's probability of the order's position (``exponent``: the power's; ``unit``: base currency per lot
    step). Size evidence (a displayed decrease, the displayed bound) is held until its millisecond ends, because
    trades and book updates stamped with the same millisecond arrive in either order and must not count twice.
    """
    if order[r, HELD_TS] < t:
        if order[r, AHEAD] > 0:
            _release(order, qstate, r, share, prob, exponent, unit)
        order[r, HELD_CUT] = 0
        order[r, HELD_CAP] = _FAR
        order[r, HELD_TS] = _FAR
    price = order[r, PX]
    if (opposite - price) * sign <= 0:
        qstate[r, Q_PFILL] = 1.0
        return order[r, REM], KIND_CROSS
    if aggressor == -sign:
        if (trade_px - price) * sign < 0:
            qstate[r, Q_PFILL] = 1.0
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
            qstate[r, Q_PFILL] = 1.0
            return order[r, REM], KIND_TRADE
        _reach(qstate, r, trade_qty - order[r, AHEAD])
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
        qstate[r, Q_PFILL] = 1.0
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


@numba.njit(cache=True, inline="always")
def maker_fill(
    order: np.ndarray,
    qstate: np.ndarray,
    r: int,
    t: int,
    s: int,
    bid: int,
    ask: int,
    bid_qty: int,
    ask_qty: int,
    aggressor: int,
    trade_px: int,
    trade_qty: int,
    queue: bool,
    dwell_ns: int,
    share: float,
    prob: int,
    exponent: float,
    unit: float,
) -> tuple[int, int]:
    """(quantity, kind) a tick (its time, touch and trade) fills of resting order row ``r`` on side ``s`` (0 bid,
    1 ask) by the fill model: step 2, the exchange's rule. The strategy kernel and the order engine (a bot's own
    orders) both call it, so the two meet one rule; quantity 0: no fill. Scalars, not the columns: an array
    argument costs reference counting on every call (``make bench`` showed a third of the kernel's time)."""
    sign = 1 - 2 * s
    if queue:
        return _queue_fill(
            order,
            qstate,
            r,
            t,
            sign,
            bid if s == 0 else ask,
            bid_qty if s == 0 else ask_qty,
            ask if s == 0 else bid,
            aggressor,
            trade_px,
            trade_qty,
            share,
            prob,
            exponent,
            unit,
        )
    if t - order[r, LIVE] < dwell_ns:
        return 0, KIND_TRADE
    if (s == 0 and ask <= order[r, PX]) or (s == 1 and bid >= order[r, PX]):
        return order[r, REM], KIND_CROSS
    if aggressor == -sign and (trade_px - order[r, PX]) * sign <= 0:
        return min(order[r, REM], trade_qty), KIND_TRADE
    return 0, KIND_TRADE


@numba.njit(cache=True, inline="always")
def _view_orders(view: np.ndarray, order: np.ndarray, pend_on: np.ndarray, queue: bool) -> None:
    """Our live orders into the strategy's view (``O_*`` per side)."""
    for s in range(2):
        v = V_ORDERS + ORDER_FIELDS * s
        view[v + O_LIVE] = order[2 * s, ON]
        view[v + O_PX] = order[2 * s, PX]
        view[v + O_LEFT] = order[2 * s, REM]
        view[v + O_AHEAD] = order[2 * s, AHEAD] if queue else -1
        view[v + O_IN_FLIGHT] = pend_on[s]


_IN = numba.types.Array(numba.types.int64, 1, "C", readonly=True)  # accepts read-only columns (pandas' views)


@numba.njit(cache=True, inline="always")
def _record_send(
    sends: np.ndarray, n: int, t: _Int, side: int, want: _Int, px: _Int, qty: _Int, replaces: _Int
) -> np.ndarray:
    if n >= sends.shape[0]:
        sends = grow_records(sends)
    sends[n, S_TS] = t
    sends[n, S_SIDE] = side
    sends[n, S_WANT] = want
    sends[n, S_PX] = px
    sends[n, S_QTY] = qty
    sends[n, S_REPLACES] = replaces
    return sends


@numba.njit(
    numba.types.Tuple((numba.types.int64[:, ::1], numba.types.int64[:, ::1]))(
        DECIDE_TYPE,
        numba.types.float64[::1],
        numba.types.float64[::1],
        numba.types.boolean,
        numba.types.int64[::1],
        numba.types.int64[::1],
        _IN,
        _IN,
        _IN,
        _IN,
        _IN,
        numba.types.Array(numba.types.int8, 1, "C", readonly=True),
        _IN,
        _IN,
        numba.types.int64,
        numba.types.int64,
        numba.types.int64,
        numba.types.boolean,
        numba.types.int64,
        numba.types.float64,
        numba.types.int64,
        numba.types.float64,
        numba.types.float64,
        numba.types.int64[::1],
    ),
    cache=True,
)
def _kernel(
    decide: Any,
    strategy: np.ndarray,
    state: np.ndarray,
    pure: bool,
    watch: np.ndarray,
    status: np.ndarray,
    ts: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    bid_qty: np.ndarray,
    ask_qty: np.ndarray,
    aggressor: np.ndarray,
    trade_px: np.ndarray,
    trade_qty: np.ndarray,
    min_requote_ns: int,
    entry_ns: int,
    cancel_ns: int,
    queue: bool,
    dwell_ns: int,
    share: float,
    prob: int,
    exponent: float,
    unit: float,
    position: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Index 0 of each side pair is the bid, 1 the ask; returns the fill records (``F_*`` columns) and the send
    records (``S_*``).

    ``decide`` with its ``strategy`` parameters and ``state`` is the strategy (``strategies/interface.py``);
    ``pure``: ``decide`` is a pure function of the view fields ``watch`` (``Strategy.reads``), so it is called only
    on a tick where one of them changed and its last answer stands on the others (``touch_offset``: about 3 % of
    the ticks are called). ``status`` receives the tick of the last call and, when its answer cannot be sent, an
    error code (the run stops there). Arguments after the ticks, by part: the order mechanics
    (``min_requote_ns``), the latency model (``entry_ns``, ``cancel_ns``) and the fill model: ``queue`` selects
    queue-aware (``cancel_ns`` and the queue rule ``share``, ``prob``, ``exponent``, ``unit`` of ``_queue_fill`` are
    used only then), otherwise touch + dwell (``dwell_ns``).

    It is compiled once for the signature of every ``decide`` (a first-class function), so the compiled kernel
    is cached on disk whatever the strategy; ``make bench`` measures what the indirect call costs.
    """
    order = np.zeros((4, _ORDER_FIELDS), np.int64)  # row 2 * side + slot
    order[:, CANCEL] = _FAR
    qstate = np.zeros((4, QSTATE_FIELDS), np.float64)
    pend_on = np.zeros(2, np.bool_)
    pend_has = np.zeros(2, np.bool_)
    pend_px = np.zeros(2, np.int64)
    pend_qty = np.zeros(2, np.int64)
    pend_ts = np.zeros(2, np.int64)
    last_sent = np.full(2, _NEVER, np.int64)
    hedge_pending = False
    hedge_due = np.int64(0)
    hedge_qty = np.int64(0)
    hedge_side = 0
    pos = np.int64(0)
    view = np.zeros(VIEW_SIZE, np.int64)
    seen = np.zeros(VIEW_SIZE, np.int64)  # a pure decide's watched fields at its last call
    called = False
    # our orders' fields (loads from ``order``) go into the view before the comparison only when they are watched
    orders_first = not pure
    for w in watch:
        orders_first = orders_first or w >= V_ORDERS
    quotes = np.zeros(QUOTE_SIZE, np.float64)
    want_px = np.zeros(2, np.int64)  # the last answer in the kernel's units
    want_qty = np.zeros(2, np.int64)
    taker = np.int64(0)
    records = np.empty((max(1024, len(ts) // 16), FILL_FIELDS), np.int64)
    k = 0
    sends = np.empty((1024, SEND_FIELDS), np.int64)
    n_sends = 0
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
                    qstate[live + 1, :] = qstate[live, :]
                crosses = i > 0 and ((s == 0 and pend_px[s] >= ask[i - 1]) or (s == 1 and pend_px[s] <= bid[i - 1]))
                order[live, ON] = pend_has[s] and not crosses
                order[live, PX] = pend_px[s]
                order[live, REM] = pend_qty[s]
                order[live, SIZE] = pend_qty[s]
                order[live, LIVE] = pend_ts[s]
                order[live, CANCEL] = _FAR
                if queue:
                    _join(
                        order,
                        qstate,
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
                fill, kind = maker_fill(
                    order,
                    qstate,
                    r,
                    t,
                    s,
                    bid[i],
                    ask[i],
                    bid_qty[i],
                    ask_qty[i],
                    aggressor[i],
                    trade_px[i],
                    trade_qty[i],
                    queue,
                    dwell_ns,
                    share,
                    prob,
                    exponent,
                    unit,
                )
                if fill <= 0:
                    continue
                pos += sign * fill
                order[r, REM] -= fill
                order[r, ON] = order[r, REM] > 0
                ahead = order[r, ENTRY_AHEAD] if queue else -1
                record_fill(records, k, i, sign, order[r, PX], fill, kind, order[r, LIVE], pos, ahead)
                k += 1
        # 3. the strategy's decision on this tick
        view[V_TIME] = t
        view[V_INDEX] = i
        view[V_BID] = bid[i]
        view[V_ASK] = ask[i]
        view[V_BID_QTY] = bid_qty[i]
        view[V_ASK_QTY] = ask_qty[i]
        view[V_TRADE_SIDE] = aggressor[i]
        view[V_TRADE_PX] = trade_px[i]
        view[V_TRADE_QTY] = trade_qty[i]
        view[V_POSITION] = pos
        view[V_TAKER_PENDING] = hedge_pending
        if orders_first:
            _view_orders(view, order, pend_on, queue)
        call = not (pure and called)
        if not call:  # a pure decide answers as it did unless a field it reads changed
            for w in watch:
                if view[w] != seen[w]:
                    call = True
                    break
        if call:
            if not orders_first:
                _view_orders(view, order, pend_on, queue)
            called = True
            for w in watch:
                seen[w] = view[w]
            for q in range(QUOTE_SIZE):
                quotes[q] = 0.0
            status[STATUS_TICK] = i
            decide(strategy, view, state, quotes)
            status[STATUS_CODE] = check_quotes(quotes)
            if status[STATUS_CODE] != OK:
                return records[:k], sends[:n_sends]
            for s in range(2):
                want_px[s] = np.int64(quotes[2 * s])
                want_qty[s] = np.int64(quotes[2 * s + 1])
            taker = np.int64(quotes[Q_TAKER])
        # 4. a taker order (the hedge) when none is in flight
        if taker != 0 and not hedge_pending:
            hedge_pending = True
            hedge_due = t + entry_ns
            hedge_side = 1 if taker > 0 else -1
            hedge_qty = abs(taker)
            sends = _record_send(sends, n_sends, t, SEND_TAKER, 1, 0, taker, 0)
            n_sends += 1
        # 5. quotes: a side sends when its wish differs from its live order, nothing of it is in flight and
        # min_requote_ns has passed since its last send
        for s in range(2):
            if pend_on[s]:
                continue  # one order in flight per side: an order sent cannot be recalled, the next one waits
            want = want_qty[s] > 0
            has = order[2 * s, ON] != 0
            differs = want_px[s] != order[2 * s, PX] or want_qty[s] != order[2 * s, SIZE]
            if (want != has or (want and differs)) and t - last_sent[s] >= min_requote_ns:
                pend_on[s] = True
                pend_has[s] = want
                pend_px[s] = want_px[s]
                pend_qty[s] = want_qty[s]
                pend_ts[s] = t + entry_ns
                last_sent[s] = t
                sends = _record_send(sends, n_sends, t, s, want, want_px[s], want_qty[s], has)
                n_sends += 1
                if queue and order[2 * s, ON] and order[2 * s, CANCEL] == _FAR:
                    order[2 * s, CANCEL] = t + cancel_ns  # the live order's cancel goes with the first send
        position[i] = pos
    return records[:k], sends[:n_sends]


@dataclass(frozen=True)
class MarketColumns:
    """The kernel's view of one symbol's ticks: exchange times, touch prices and sizes in ticks and lot steps,
    trades with their aggressor sign, and the mid. It depends on the instrument only, so a search over strategy
    parameters builds it once per partition (``tuning/tuner.py``) instead of once per parameter set."""

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


def simulate(ticks: pd.DataFrame, params: StrategyParams, market: MarketColumns | None = None) -> Simulation:
    """Run the strategy over one symbol's ticks (sorted by ``ts_server``) under the profile's models (fill model
    ``fill.model``, queue-aware by default); same input, same output. This is the shadow. ``market``: the ticks'
    columns when already built (a search reuses them)."""
    return run(ticks, params, fill_model_of(params), latency_model_of(params), fee_model_of(params), market)


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
    kernel = fill.kernel(params, latency)
    strategy = strategy_of(params.strategy)
    position = np.empty(len(ts), np.int64)  # every tick writes its own
    status = np.array([OK, -1], np.int64)
    try:
        records, sends = _kernel(
            strategy.compiled(),
            strategy.pack(params),
            np.zeros(strategy.state_size, np.float64),
            strategy.pure,
            strategy.watched(),
            status,
            ts,
            market.bid,
            market.ask,
            market.bid_qty,
            market.ask_qty,
            market.aggressor,
            market.trade_px,
            market.trade_qty,
            round(params.min_requote_ms * _MS),
            latency.entry_ns,
            latency.cancel_ns,
            kernel.queue,
            kernel.dwell_ns,
            kernel.share,
            kernel.prob,
            kernel.exponent,
            kernel.unit,
            position,
        )
    except Exception as exc:
        raise_for(params.strategy, status, ts, exc)
        raise
    raise_for(params.strategy, status, ts)
    inventory = pd.DataFrame({"ts": ts, "position": position * params.lot_step, "mid": market.mid})
    fills = fill_table(ts, market.mid, records, params, fees)
    if kernel.queue:
        ahead = records[:, F_AHEAD]
        fills["queue_ahead_at_entry"] = np.where(ahead >= 0, ahead * params.lot_step, np.nan)
    return Simulation(fills, inventory, sends)


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
