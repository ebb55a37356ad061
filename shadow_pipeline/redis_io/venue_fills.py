"""The paper venue's fills into ``dryrun:fills:{symbol}``, the stream a real dry-run bot reports to.

Why the same stream: the dry-run and the per-order reconciliation read reality from there
(``redis_io/dryrun_fills.py``), so a demo on the paper venue (``domain/validation/paper_venue.py``) goes through
the path a live bot's fills take. Each fill is appended once per (order_id, ts) through the stream's append-once
index (``dryrun:fills:{symbol}:ids``, :func:`streams.append_once`), so rerunning the venue over the same orders
adds nothing and two publishers never write a fill twice.
"""

from __future__ import annotations

import pandas as pd
import redis

from shadow_pipeline.redis_io.keys import fills_stream
from shadow_pipeline.redis_io.streams import append_once

PUBLISHED_FIELDS = ("ts", "side", "price", "qty", "is_maker", "fee", "order_id")
DEFAULT_MAXLEN = 1_000_000  # about a week of a busy quoting bot's fills
_BATCH = 1000  # fills per append script: a whole hour in one call would hold Redis for its duration


def publish_fills(client: redis.Redis, symbol: str, fills: pd.DataFrame, maxlen: int = DEFAULT_MAXLEN) -> int:
    """XADD each fill (``match_orders``' table) to ``fills_stream(symbol)`` unless one with its (order_id, ts) is
    there; returns how many were added. Numbers are written as Python's shortest round-trip text, so a reader
    gets back the floats the venue computed."""
    missing = [name for name in PUBLISHED_FIELDS if name not in fills.columns]
    if missing:
        raise ValueError(f"fills lack {', '.join(missing)}")
    entries = [
        (
            f"{order_id}|{int(ts)}",
            {
                "ts": str(int(ts)),
                "side": str(side),
                "price": repr(float(price)),
                "qty": repr(float(qty)),
                "is_maker": "1" if is_maker else "0",
                "fee": repr(float(fee)),
                "order_id": str(order_id),
            },
        )
        for ts, side, price, qty, is_maker, fee, order_id in fills[list(PUBLISHED_FIELDS)].itertuples(index=False)
    ]
    stream = fills_stream(symbol)
    return sum(append_once(client, stream, entries[i : i + _BATCH], maxlen) for i in range(0, len(entries), _BATCH))
