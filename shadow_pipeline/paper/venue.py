"""The paper venue as a service step: the bot's orders of one hour, matched on the market, fills published.

It reads what a venue would see (the bot's order stream, checked by the same rules the shadow applies, and the
market of the hour from the tick stream) and publishes the fills with client order ids to
``dryrun:fills:{symbol}``, where a live bot's fills would arrive; a rerun publishes nothing twice. Agreement
with this venue is agreement with another model (hftbacktest), not with a live venue (docs/paper-venue.md).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd
import redis

from shadow_pipeline.domain.market.windows import hour_bounds
from shadow_pipeline.domain.simulation.models import fee_model_of, latency_model_of
from shadow_pipeline.domain.strategies.external.intents import Grid
from shadow_pipeline.domain.strategies.profiles import StrategyParams
from shadow_pipeline.domain.validation.depth_events import depth_events
from shadow_pipeline.domain.validation.paper_venue import match_orders
from shadow_pipeline.redis_io.depth_stream import read_depth
from shadow_pipeline.redis_io.order_stream import load_intents
from shadow_pipeline.redis_io.venue_fills import publish_fills


@dataclass(frozen=True)
class VenueResult:
    orders: int
    fills: int
    published: int
    filled_orders: int
    market: str  # what the venue matched on: full depth from the depth stream, or the ticks' top of book


def run_venue(
    client: redis.Redis,
    ticks: pd.DataFrame,
    params: StrategyParams,
    hour: str,
    queue_model: str = "risk_averse",
    entry_latency_ms: float | None = None,
) -> tuple[VenueResult, pd.DataFrame]:
    """Match the bot's orders of ``hour`` for ``params.symbol`` on ``ticks`` (that hour's, from the tick stream);
    the summary and the fills. ``params`` gives the
    grid, the fees and the latency of the order path (``entry_latency_ms``: the venue's own, when it differs
    from what the profile assumes). The market is the full book of the depth stream when it has the hour
    (hftbacktest then sees what the touch hides), else the ticks' top of book."""
    loaded = load_intents(client, params.symbol, Grid(params.symbol, params.tick_size, params.lot_step))
    start, end = hour_bounds(hour)
    plan = loaded.checked.plan.decided_within(start, end)
    venue_params = params if entry_latency_ms is None else replace(params, order_entry_latency_ms=entry_latency_ms)
    latency = latency_model_of(venue_params)
    book = read_depth(client, params.symbol, start, end)
    events = None if book is None else depth_events(book.levels, ticks, params)
    market = "top of book: the tick stream (no depth stream)" if book is None else book.describe()
    fills = match_orders(plan, ticks, params, latency, fee_model_of(params), queue_model, events=events)
    published = publish_fills(client, params.symbol, fills)
    filled = int(fills["order_id"].nunique()) if len(fills) else 0
    return VenueResult(len(plan), len(fills), published, filled, market), fills
