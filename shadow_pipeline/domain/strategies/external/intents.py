"""A bot's order intents (``shadow_pipeline/schemas/order_intent.schema.json``), checked one by one in stream order.

A bot in any language publishes what it would send: ``place`` (client order id, side, price, quantity, post-only,
decision time), ``cancel`` and ``replace`` by client order id. The shadow fills exactly those orders, so an
intent that no venue would accept, or that contradicts the bot's own earlier intents, must not be simulated as
if it made sense, nor silently dropped: it is rejected with the rule it broke (the stream's dead letters, as for
bad ticks), and the rest of the stream goes on. A cancel of an order the shadow has filled is not an error: the
bot could not know, and a venue answers it the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

import pandas as pd

from shadow_pipeline.domain.market.ticks import TS_SERVER_MIN, ts_server_max
from shadow_pipeline.domain.strategies.external.plan import BUY, NEVER, PLAN_COLUMNS, SELL, OrderPlan

PLACE, CANCEL, REPLACE = "place", "cancel", "replace"
ACTIONS = (PLACE, CANCEL, REPLACE)
_FIELDS = {
    PLACE: ({"action", "order_id", "ts_decision", "side", "qty"}, {"price", "type", "post_only", "symbol"}),
    CANCEL: ({"action", "order_id", "ts_decision"}, {"symbol"}),
    REPLACE: ({"action", "order_id", "new_order_id", "ts_decision", "price", "qty"}, {"side", "post_only", "symbol"}),
}
ORDER_ID = re.compile(r"[A-Za-z0-9._:/+=-]{1,64}")  # a superset of Binance's and Bybit's client id alphabets
_NUMBER = re.compile(r"[0-9]{1,20}(\.[0-9]{1,18})?")  # plain decimals: no sign, exponent, NaN or inf
_TS = re.compile(r"[0-9]{1,19}")
_SIDES = {"buy": BUY, "sell": SELL}
_FLAGS = {"1": True, "true": True, "0": False, "false": False}
_MAX_STEPS = 2**50  # prices in ticks and sizes in lots stay exact in float64 and far from int64's end


class BadIntent(ValueError):
    """An intent that breaks a rule; the message is the dead letter's reason."""


@dataclass(frozen=True)
class Grid:
    """What the checks need of the instrument: its key (``BTCUSDT``, ``BTCUSDT.bybit-linear``; an intent's
    optional ``symbol`` may be the key or the bare symbol) and its grid."""

    symbol: str
    tick_size: float
    lot_step: float


@dataclass(frozen=True)
class Rejected:
    entry_id: str
    reason: str


@dataclass
class CheckedIntents:
    """The orders the accepted intents describe, and the rejected intents with their reasons."""

    plan: OrderPlan
    rejected: list[Rejected] = field(default_factory=list)
    accepted: int = 0


@dataclass
class _Order:
    row: dict[str, object]
    open: bool = True


def _steps(text: str, step: float, name: str) -> int:
    """Whole steps of a decimal, exactly: a venue rejects a price or size off its grid however close (float
    arithmetic would let 60000.004 pass as 6,000,000 ticks of 0.01)."""
    if not _NUMBER.fullmatch(text):
        raise BadIntent(f"{name} {text[:40]!r} is not a plain positive decimal")
    steps = Decimal(text) / Decimal(repr(step))
    if not steps > 0 or steps >= _MAX_STEPS:
        raise BadIntent(f"{name} {text} is out of range")
    if steps != steps.to_integral_value():
        unit = "tick_size" if name == "price" else "lot_step"
        raise BadIntent(f"{name} {text} is off the grid ({unit} {step:g})")
    return int(steps)


def _flag(fields: Mapping[str, str], name: str, default: bool) -> bool:
    if name not in fields:
        return default
    if fields[name] not in _FLAGS:
        raise BadIntent(f"{name} {fields[name][:20]!r} is not 1/0/true/false")
    return _FLAGS[fields[name]]


def _id(fields: Mapping[str, str], name: str) -> str:
    value = fields[name]
    if not ORDER_ID.fullmatch(value):
        raise BadIntent(f"{name} {value[:70]!r} is not 1-64 characters of A-Z a-z 0-9 . _ : / + = -")
    return value


def _shape(fields: Mapping[str, str], grid: Grid) -> tuple[str, int]:
    """(action, decision time) of an intent whose fields fit its action, else BadIntent."""
    action = fields.get("action", "")
    if action not in _FIELDS:
        raise BadIntent(f"action {action[:20]!r} is not one of {', '.join(ACTIONS)}")
    required, optional = _FIELDS[action]
    missing = sorted(required - set(fields))
    if missing:
        raise BadIntent(f"{action}: missing {', '.join(missing)}")
    unknown = sorted(set(fields) - required - optional)
    if unknown:
        raise BadIntent(f"{action}: unknown field {', '.join(name[:40] for name in unknown)}")
    if "symbol" in fields and fields["symbol"] not in (grid.symbol, grid.symbol.split(".")[0]):
        raise BadIntent(f"symbol {fields['symbol'][:40]!r} is not this stream's instrument {grid.symbol}")
    if not _TS.fullmatch(fields["ts_decision"]) or int(fields["ts_decision"]) >= NEVER:
        raise BadIntent(f"ts_decision {fields['ts_decision'][:40]!r} is not integer nanoseconds")
    ts = int(fields["ts_decision"])
    if not TS_SERVER_MIN <= ts <= ts_server_max():  # one absurd time would make every later intent "go backwards"
        raise BadIntent(f"ts_decision {ts} is outside the sane range of exchange time (2009 to a day from now)")
    return action, ts


class _Book:
    """The bot's orders as its intents so far describe them."""

    def __init__(self, grid: Grid, placed_later: dict[str, int]) -> None:
        self.grid = grid
        self.orders: dict[str, _Order] = {}
        self.placed_later = placed_later  # id -> stream position of a place still ahead
        self.position = 0

    def _new(self, order_id: str, ts: int, side: int, fields: Mapping[str, str], market: bool) -> dict[str, object]:
        if order_id in self.orders:
            raise BadIntent(f"order id {order_id} is already used")
        post_only = _flag(fields, "post_only", not market)
        if market and post_only:
            raise BadIntent("a market order cannot be post-only")
        if market and "price" in fields:
            raise BadIntent("a market order has no price")
        px = 0 if market else _steps(fields.get("price", ""), self.grid.tick_size, "price")
        qty = _steps(fields["qty"], self.grid.lot_step, "qty")
        return {
            "order_id": order_id,
            "side": side,
            "px": px,
            "qty": qty,
            "post_only": post_only,
            "market": market,
            "decision_ts": ts,
            "cancel_ts": NEVER,
        }

    def _open(self, order_id: str) -> _Order:
        order = self.orders.get(order_id)
        if order is None:
            later = self.placed_later.get(order_id, -1)
            if later > self.position:
                raise BadIntent(f"cancel before place: order id {order_id} is placed later in the stream")
            raise BadIntent(f"unknown order id {order_id}")
        if order.row["market"]:
            raise BadIntent(f"order id {order_id} is a market order: nothing rests to cancel")
        if not order.open:
            raise BadIntent(f"order id {order_id} is already cancelled or replaced")
        return order

    def apply(self, action: str, ts: int, fields: Mapping[str, str]) -> list[dict[str, object]]:
        """The new orders an accepted intent adds (the book changes only if it is accepted)."""
        order_id = _id(fields, "order_id")
        if action == PLACE:
            side = _SIDES.get(fields["side"])
            if side is None:
                raise BadIntent(f"side {fields['side'][:20]!r} is not buy or sell")
            kind = fields.get("type", "limit")
            if kind not in ("limit", "market"):
                raise BadIntent(f"type {kind[:20]!r} is not limit or market")
            row = self._new(order_id, ts, side, fields, kind == "market")
            self.orders[order_id] = _Order(row)
            return [row]
        old = self._open(order_id)
        if action == CANCEL:
            old.row["cancel_ts"] = ts
            old.open = False
            return []
        new_id = _id(fields, "new_order_id")
        side = int(old.row["side"])  # type: ignore[call-overload]
        if "side" in fields and _SIDES.get(fields["side"]) != side:
            raise BadIntent(f"side {fields['side'][:20]!r} differs from order {order_id}'s")
        replacement = {**fields, "post_only": fields.get("post_only", "1" if old.row["post_only"] else "0")}
        row = self._new(new_id, ts, side, replacement, market=False)
        old.row["cancel_ts"] = ts
        old.open = False
        self.orders[new_id] = _Order(row)
        return [row]


def check_intents(entries: Iterable[tuple[str, Mapping[str, str]]], grid: Grid) -> CheckedIntents:
    """Check ``(entry id, fields)`` in stream order; the plan of the accepted ones and the rejected with reasons.

    Decision times must not go backwards (a bot stamps them as it decides; a late intent would rewrite a past the
    shadow has already filled)."""
    listed = list(entries)
    placed_later: dict[str, int] = {}
    for position, (_, fields) in enumerate(listed):
        if fields.get("action") == PLACE and "order_id" in fields:
            placed_later.setdefault(fields["order_id"], position)
        if fields.get("action") == REPLACE and "new_order_id" in fields:
            placed_later.setdefault(fields["new_order_id"], position)
    book = _Book(grid, placed_later)
    rows: list[dict[str, object]] = []
    rejected: list[Rejected] = []
    last_ts = -1
    accepted = 0
    for position, (entry_id, fields) in enumerate(listed):
        book.position = position
        try:
            action, ts = _shape(fields, grid)
            if ts < last_ts:
                raise BadIntent(f"ts_decision {ts} is before the previous intent's {last_ts} (time went backwards)")
            rows.extend(book.apply(action, ts, fields))
        except BadIntent as exc:
            rejected.append(Rejected(entry_id, str(exc)))
            continue
        last_ts = ts
        accepted += 1
    return CheckedIntents(OrderPlan.of(pd.DataFrame(rows, columns=list(PLAN_COLUMNS))), rejected, accepted)
