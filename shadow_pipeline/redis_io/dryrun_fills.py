"""Fills a real dry-run or testnet bot reported into ``dryrun:fills:{symbol}`` (docs/dry-run.md has the schema).

Entry fields: ``ts`` (exchange time of the fill, integer ns), ``side`` (buy/sell), ``price``, ``qty`` (base),
``is_maker`` (1/0), ``fee`` (quote currency, negative = rebate), and optionally ``order_id``: the client order
id of the order filled, which the per-order reconciliation matches with the shadow's order (entries written
before the field existed read as ``""``, no order). A malformed entry is an error naming its id: a validator that
skipped fills would report a wrong accuracy.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import redis

from shadow_pipeline.domain.strategies.external.intents import ORDER_ID as ORDER_ID_PATTERN
from shadow_pipeline.redis_io.keys import fills_stream

FILL_FIELDS = ("ts", "side", "price", "qty", "is_maker", "fee")
ORDER_ID = "order_id"  # checked as the order stream checks it: an id no intent can carry matches no order


class BadFillEntry(ValueError):
    """A fills-stream entry that cannot be read as a fill."""


def read_fills(client: redis.Redis, symbol: str, start_ns: int, end_ns: int) -> pd.DataFrame:
    """The reported fills of ``symbol`` with ``start_ns <= ts < end_ns``, typed, in time order."""
    rows = []
    entries: list[Any] = client.xrange(fills_stream(symbol))  # type: ignore[assignment]
    for entry_id, fields in entries:
        text = {
            # undecodable bytes become U+FFFD, which no field accepts: the error then names the entry
            (k.decode(errors="replace") if isinstance(k, bytes) else k): (
                v.decode(errors="replace") if isinstance(v, bytes) else v
            )
            for k, v in fields.items()
        }
        missing = [name for name in FILL_FIELDS if name not in text]
        if missing:
            raise BadFillEntry(f"{fills_stream(symbol)} entry {entry_id!r}: missing {', '.join(missing)}")
        try:
            ts, price, qty, fee = int(text["ts"]), float(text["price"]), float(text["qty"]), float(text["fee"])
        except ValueError as exc:
            raise BadFillEntry(f"{fills_stream(symbol)} entry {entry_id!r}: {exc}") from None
        if text["side"] not in ("buy", "sell") or not price > 0 or not qty > 0 or not math.isfinite(price + qty + fee):
            raise BadFillEntry(
                f"{fills_stream(symbol)} entry {entry_id!r}: want side buy/sell, price and qty > 0, finite numbers"
            )
        order_id = text.get(ORDER_ID, "")
        if ORDER_ID in text and not ORDER_ID_PATTERN.fullmatch(order_id):
            raise BadFillEntry(
                f"{fills_stream(symbol)} entry {entry_id!r}: order_id {order_id[:70]!r} is not 1-64 characters of "
                "A-Z a-z 0-9 . _ : / + = -"
            )
        if start_ns <= ts < end_ns:
            is_maker = text["is_maker"] in ("1", "true", "True")
            fill = {"ts": ts, "side": text["side"], "price": price, "qty": qty, "is_maker": is_maker, "fee": fee}
            rows.append({**fill, ORDER_ID: order_id})
    frame = pd.DataFrame(rows, columns=[*FILL_FIELDS, ORDER_ID]).astype(
        {"ts": "int64", "price": "float64", "qty": "float64", "is_maker": "bool", "fee": "float64", ORDER_ID: "object"}
    )
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)
