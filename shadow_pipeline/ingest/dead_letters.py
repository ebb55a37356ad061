"""Reading the dead-letter stream back, attributed to (hour, symbol) partitions where the entry allows it."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import redis

from shadow_pipeline.domain.windows import hour_keys

UNATTRIBUTED = ("", "")  # a dead letter without a readable symbol or exchange time


def dead_letters_by_partition(client: redis.Redis, dead_letter_stream: str, chunk: int = 10_000) -> Counter:
    """Dead letters per (hour key, symbol), by the original entry's ``symbol`` and ``ts_server`` fields."""
    counts: Counter = Counter()
    start = "-"
    while True:
        entries = client.xrange(dead_letter_stream, min=start, max="+", count=chunk)
        if not entries:
            return counts
        fields = pd.DataFrame([f for _, f in entries])
        for name in ("field.symbol", "field.ts_server"):
            if name not in fields:
                fields[name] = None
        symbols = fields["field.symbol"].astype(object).where(fields["field.symbol"].notna(), "")
        ts = pd.to_numeric(fields["field.ts_server"], errors="coerce")
        known = ts.notna().to_numpy() & (symbols != "").to_numpy()
        hours = np.full(len(fields), "", dtype=object)
        if known.any():
            hours[known] = hour_keys(ts[known].astype("int64").to_numpy())
        counts.update(zip(hours.tolist(), np.where(known, symbols, "").tolist(), strict=True))
        last = entries[-1][0]
        start = f"({last.decode() if isinstance(last, bytes) else last}"
        if len(entries) < chunk:
            return counts
