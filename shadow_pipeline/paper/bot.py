"""The example bot: a built-in strategy deciding on the tick stream, publishing what it would send.

It reads the ticks as any bot would (the tick stream, parsed by the project's tick rules), lets the profile's
strategy decide on one hour of one instrument (the shadow's kernel, with its own order mechanics), and publishes
the kernel's sends as order intents (``domain/strategies/external/from_sends.py``) to ``bot:orders:{symbol}``,
with client ids unique across hours. A desk replaces this with its own bot; nothing downstream knows the difference.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import redis

from shadow_pipeline.domain.market.ticks import FIELDS, parse_table
from shadow_pipeline.domain.market.windows import hour_bounds
from shadow_pipeline.domain.simulation.simulator import simulate
from shadow_pipeline.domain.strategies.external.from_sends import intents_from_sends
from shadow_pipeline.domain.strategies.profiles import StrategyParams
from shadow_pipeline.redis_io.order_stream import publish_intents
from shadow_pipeline.redis_io.streams import read_entries


def read_stream_ticks(client: redis.Redis, stream: str) -> pd.DataFrame:
    """Every typed tick of the tick stream; the entries the tick rules reject are left out, as ingest leaves them."""
    entries = read_entries(client, stream)
    columns = {name: np.array([fields.get(name) for _, fields in entries], dtype=object) for name in FIELDS}
    return parse_table(columns).ticks


def partition_ticks(ticks: pd.DataFrame, symbol: str, hour: str) -> pd.DataFrame:
    """The ticks of instrument ``symbol`` in ``hour``, in (ts_server, seq) order."""
    start, end = hour_bounds(hour)
    ours = ticks[(ticks["symbol"] == symbol) & (ticks["ts_server"] >= start) & (ticks["ts_server"] < end)]
    return ours.sort_values(["ts_server", "seq"], kind="stable").reset_index(drop=True)


def stream_ticks(client: redis.Redis, stream: str, symbol: str, hour: str) -> pd.DataFrame:
    """The typed ticks of instrument ``symbol`` in ``hour`` from the tick stream (one partition's read)."""
    return partition_ticks(read_stream_ticks(client, stream), symbol, hour)


def run_bot(client: redis.Redis, ticks: pd.DataFrame, params: StrategyParams, hour: str) -> int:
    """Publish the intents of ``params``'s strategy on ``ticks`` (one hour of ``params.symbol``); how many."""
    sends = simulate(ticks, params).sends
    if sends is None or not len(sends):
        return 0
    prefix = hour.replace(":", "").replace("-", "")  # 2026-01-01-10:00 -> 202601011000
    intents = intents_from_sends(sends, params.tick_size, params.lot_step, prefix=f"{prefix}")
    return publish_intents(client, params.symbol, intents)
