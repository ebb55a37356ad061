"""What a strategy is: one compiled decision function that both engines call on every tick.

The shadow's kernel (``simulation/simulator.py``) and the hftbacktest reality (``validation/hftbacktest_engine.py``)
both call the same ``decide``, so a strategy is written once and the two engines take exactly the same decisions;
order mechanics stay theirs (latency, ``min_requote_ms``, one order in flight per side, post-only rejects,
cancels, one taker order in flight). ``docs/strategies.md`` walks through writing one.

``decide(params, view, state, quotes)`` is a numba ``@njit`` function with :data:`DECIDE_SIGNATURE`:

- ``params`` (float64): the profile's values, :data:`P_ORDER_QTY` .. :data:`P_HEDGE_TARGET` first (the risk
  settings every strategy shares), then from :data:`P_OWN` the strategy's ``fields`` and its own :class:`Param`
  values, in declared order;
- ``view`` (int64, exact): the tick, ``V_*`` below; prices are integer ticks, sizes integer lot steps;
- ``state`` (float64, zeros at the start of a run, :attr:`Strategy.state_size` long): the strategy's memory;
- ``quotes`` (float64, zeroed before each call): what it wants, ``Q_*`` below. A side with size 0 has no quote;
  a taker quantity (signed lots, + buys) asks for one taker order, sent when none is in flight.

By default ``decide`` is called on every tick. A strategy whose answer is a pure function of ``params`` and a few
view fields may say so, :attr:`Strategy.reads` (``touch_offset``: the touch and the position): the engines may
then skip the call on a tick where none of those fields changed since the last call, and act on that call's
answer again (on most ticks only the sizes or a trade change, so most calls are skipped).

Numba cannot raise rich errors from a compiled loop, so the engines check every answer (:func:`check_quotes`)
and stop with a code and the tick; :func:`raise_for` turns that (or an exception ``decide`` raised) into one
:class:`StrategyError` naming the strategy, the tick index and its time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import pandas as pd
from numba import types

from shadow_pipeline.domain.strategies.profiles import ProfileError, Range, StrategyParams, whole_lots

# params: the shared risk settings, then the strategy's own parameters
P_ORDER_QTY, P_MAX_POS, P_HEDGE_ON, P_HEDGE_TARGET = range(4)
P_OWN = 4
# view: the tick (time ns, index), the touch, the last trade (aggressor +1 buy / -1 sell / 0 none), our position,
# whether our taker order is in flight, then per side (bid, ask) our live order: on, price, lots left, queue
# ahead (-1: the engine does not know it), and whether an order of the side is in flight.
V_TIME, V_INDEX, V_BID, V_ASK, V_BID_QTY, V_ASK_QTY, V_TRADE_SIDE, V_TRADE_PX, V_TRADE_QTY = range(9)
V_POSITION, V_TAKER_PENDING = 9, 10
V_ORDERS = 11
O_LIVE, O_PX, O_LEFT, O_AHEAD, O_IN_FLIGHT = range(5)
ORDER_FIELDS = 5
VIEW_SIZE = V_ORDERS + 2 * ORDER_FIELDS
# quotes: price (ticks) and size (lots) per side, then the taker quantity
Q_BID_PX, Q_BID_QTY, Q_ASK_PX, Q_ASK_QTY, Q_TAKER = range(5)
QUOTE_SIZE = 5

DECIDE_SIGNATURE = types.void(types.float64[::1], types.int64[::1], types.float64[::1], types.float64[::1])
DECIDE_TYPE = types.FunctionType(DECIDE_SIGNATURE)

OK, NOT_FINITE, OFF_GRID, NEGATIVE_SIZE, FRACTIONAL_SIZE = range(5)
_ERRORS = {
    NOT_FINITE: "returned NaN or an infinite number",
    OFF_GRID: "returned a price off the tick grid (not a whole number of ticks)",
    NEGATIVE_SIZE: "returned a negative size",
    FRACTIONAL_SIZE: "returned a size that is not a whole number of lot steps",
}
# status of a run: [error code, tick index reached (-1 before the first)], written by the engines before each
# call of decide
STATUS_CODE, STATUS_TICK = 0, 1


class StrategyError(ValueError):
    """A strategy that cannot be used, or that answered a tick with something no engine can send."""


@dataclass(frozen=True)
class Param:
    """One parameter of a strategy: its name in the profile's ``strategy_params`` (and in ``tune.space``), its
    default and bounds (the strategy is the one place that declares them: the profiles schema cannot know a
    user's strategy)."""

    name: str
    default: float
    minimum: float
    maximum: float
    integer: bool = False

    @property
    def range(self) -> Range:
        return Range(self.name, self.minimum, self.maximum, exclusive_minimum=False, integer=self.integer)


@dataclass(frozen=True)
class Strategy:
    """A named, swappable strategy: ``decide`` (numba ``@njit``, :data:`DECIDE_SIGNATURE`), its own parameters
    and the size of its state. Build one in your own module and name it in a profile as ``"module:attribute"``.
    ``fields``: top-level profile params it reads after the shared ones, before its own (``touch_offset``'s
    ``quote_offset_ticks``, where existing profiles keep it; the profiles schema bounds them)."""

    name: str
    decide: Callable[..., None]
    parameters: tuple[Param, ...] = ()
    state_size: int = 0
    fields: tuple[str, ...] = ()
    reads: tuple[int, ...] | None = None
    """``None`` (the default): ``decide`` is called on every tick. Else the view fields (``V_*`` indices, per
    side ``V_ORDERS + ORDER_FIELDS * s + O_*``) that are all ``decide`` reads of the view, a promise that its
    answer is a pure function of ``params`` and those fields: no ``state`` (``state_size`` 0), no other field,
    nothing but ``quotes`` written. The engines may then skip the call on a tick where none of these fields
    changed since the last call and act on that call's answer again. A wrong promise gives wrong fills: leave
    it ``None`` when in doubt."""

    def param(self, name: str) -> Param | None:
        return next((p for p in self.parameters if p.name == name), None)

    def values(self, params: StrategyParams) -> dict[str, float]:
        """This strategy's own parameter values in ``params``: the profile's, else the declared default; an
        unknown name or a value out of bounds raises ProfileError."""
        own = params.strategy_params
        unknown = sorted(set(own) - {p.name for p in self.parameters})
        if unknown:
            known = ", ".join(p.name for p in self.parameters) or "none"
            raise ProfileError(f"strategy {self.name!r} has no parameter {', '.join(unknown)}; its parameters: {known}")
        return {p.name: p.range.check(own.get(p.name, p.default)) for p in self.parameters}

    def pack(self, params: StrategyParams) -> np.ndarray:
        """The ``params`` array ``decide`` reads (``P_*``)."""
        order_qty = whole_lots(params.min_lot, params.lot_step) or 0
        max_pos = params.max_inventory * order_qty
        shared = [order_qty, max_pos, params.hedge_mode == "cross", int(params.hedge_target * max_pos)]
        fields = [getattr(params, name) for name in self.fields]
        return np.array([*shared, *fields, *self.values(params).values()], np.float64)

    def watched(self) -> np.ndarray:
        """:attr:`reads` as the kernels take it (int64 view indices; empty when ``decide`` runs on every tick,
        see :attr:`pure`)."""
        return np.array(self.reads or (), np.int64)

    @property
    def pure(self) -> bool:
        """Whether ``decide`` may be skipped on a tick where none of :attr:`reads` changed."""
        return self.reads is not None

    def compiled(self) -> Any:
        """``decide`` compiled to :data:`DECIDE_SIGNATURE` (what the shadow's cached kernel accepts)."""
        if not isinstance(self.decide, numba.core.registry.CPUDispatcher):
            raise StrategyError(f"strategy {self.name!r}: decide must be a numba @njit function, got {self.decide!r}")
        if self.reads is not None:
            outside = [f for f in self.reads if not 0 <= f < VIEW_SIZE]
            if outside:
                raise StrategyError(f"strategy {self.name!r}: reads {outside} outside the view (0 .. {VIEW_SIZE - 1})")
            if self.state_size:
                raise StrategyError(
                    f"strategy {self.name!r}: reads declares decide a pure function of the view, but it has a "
                    f"state ({self.state_size}); leave reads None"
                )
        try:
            self.decide.compile(DECIDE_SIGNATURE.args)
        except Exception as exc:
            signature = f"decide{DECIDE_SIGNATURE.args}"
            raise StrategyError(f"strategy {self.name!r}: decide does not compile as {signature}: {exc}") from exc
        return self.decide


@numba.njit(cache=True, inline="always")  # called per tick: a call (and its array refcounts) costs more
def check_quotes(quotes: np.ndarray) -> int:
    """The first rule the answer breaks (``OK``: none): prices finite whole ticks where a size is quoted, sizes
    finite whole lots and not negative."""
    for q in range(QUOTE_SIZE):
        if not np.isfinite(quotes[q]):
            return NOT_FINITE
    for s in range(2):
        qty = quotes[2 * s + 1]
        if qty < 0:
            return NEGATIVE_SIZE
        if qty != np.floor(qty):
            return FRACTIONAL_SIZE
        if qty > 0 and quotes[2 * s] != np.floor(quotes[2 * s]):
            return OFF_GRID
    if quotes[Q_TAKER] != np.floor(quotes[Q_TAKER]):
        return FRACTIONAL_SIZE
    return OK


# The shared risk rules. They take scalars, not the arrays: a helper that takes an array costs a reference count
# in and out on every tick, which the bench showed as a quarter of the kernel's time.
@numba.njit(cache=True, inline="always")
def within_limit(params: np.ndarray, view: np.ndarray, side: int) -> bool:
    """Whether a full order on ``side`` (0 bid, 1 ask) keeps |position| within the inventory limit, or reduces it."""
    return _within_limit(view[V_POSITION], params[P_ORDER_QTY], params[P_MAX_POS], 1 - 2 * side)


@numba.njit(cache=True, inline="always")
def _within_limit(pos: float, order_qty: float, max_pos: float, sign: int) -> bool:
    return abs(pos + sign * order_qty) <= max_pos or sign * pos < 0


@numba.njit(cache=True, inline="always")
def hedge_quantity(params: np.ndarray, view: np.ndarray) -> float:
    """The taker quantity (signed lots) back to the hedge target once |position| reaches the limit, else 0 (the
    ``hedge.mode`` cross rule)."""
    return _hedge(view[V_POSITION], params[P_MAX_POS], params[P_HEDGE_TARGET], params[P_HEDGE_ON])


@numba.njit(cache=True, inline="always")
def _hedge(pos: float, max_pos: float, target: float, on: float) -> float:
    if on and abs(pos) >= max_pos and abs(pos) > target:
        return -(abs(pos) - target) if pos > 0 else abs(pos) - target
    return 0.0


def raise_for(name: str, status: np.ndarray, ts: np.ndarray, raised: Exception | None = None) -> None:
    """Raise the :class:`StrategyError` of a run that stopped (``status`` code set, or ``decide`` raised);
    ``name``: the strategy as the profile names it."""
    code, tick = int(status[STATUS_CODE]), int(status[STATUS_TICK])
    if code == OK and raised is None:
        return
    if raised is not None and tick < 0:  # raised before the first tick: not the strategy's doing
        raise raised
    when = pd.Timestamp(int(ts[tick]), unit="ns", tz="UTC").isoformat() if 0 <= tick < len(ts) else "?"
    what = f"raised {type(raised).__name__}: {raised}" if raised is not None else _ERRORS[code]
    raise StrategyError(f"strategy {name!r} {what} at tick {tick} (ts_server {when})") from raised
