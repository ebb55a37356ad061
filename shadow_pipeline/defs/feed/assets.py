"""Stage 0: the feed. Stands in for the exchange feed handler so that the pipeline has live-like ticks."""

import dagster as dg
import pandas as pd
from pydantic import Field

from shadow_pipeline.defs.partitions import configured_symbols
from shadow_pipeline.domain.market.faults import FaultSpec
from shadow_pipeline.feed.replay import ReplayOptions, replay
from shadow_pipeline.feed.sources import SourceKind, open_source
from shadow_pipeline.redis_io.streams import DEFAULT_MAXLEN, read_entries
from shadow_pipeline.resources import RedisResource, TickStreamResource


class FeedConfig(dg.Config):
    """What the stand-in feed replays; the stream it writes is the tick_stream resource's (one setting)."""

    source: SourceKind = Field(default=SourceKind.SYNTHETIC, description="synthetic, binance or bybit")
    symbols: list[str] = Field(
        default_factory=configured_symbols, description="Symbols to replay (default: the partitions' symbols)."
    )
    minutes: float = Field(
        default=10.0, gt=0, le=7 * 24 * 60, allow_inf_nan=False, description="Market minutes of the synthetic market."
    )
    seed: int = Field(default=7, ge=0, le=2**32 - 1, description="Seed of the synthetic market.")
    files: list[str] = Field(default=[], description="Recording files, for binance or bybit sources.")
    venue: str | None = Field(
        default=None,
        description="A venue of the instrument registry. Recordings: default what the messages show (a venue that "
        "contradicts them is refused); synthetic: default binance-usdm.",
    )
    maxlen: int = Field(
        default=DEFAULT_MAXLEN, ge=0, le=1_000_000_000, description="Approximate MAXLEN trim (0 = no trim)."
    )
    speed: float = Field(
        default=0.0,
        ge=0,
        le=1_000_000,
        allow_inf_nan=False,
        description="0 = as fast as possible, 1 = real time, N = N x.",
    )


@dg.asset(group_name="feed", kinds={"redis"})
def replayed_feed(
    context: dg.AssetExecutionContext, config: FeedConfig, redis: RedisResource, tick_stream: TickStreamResource
) -> dg.MaterializeResult:
    """Ticks XADDed into the tick stream by the stand-in feed handler (synthetic market or a recording).

    In production the exchange feed handler writes this stream; here it makes demos and tests self-contained.
    """
    client = redis.get_client()
    source = open_source(
        config.source,
        symbols=config.symbols,
        seconds=config.minutes * 60,
        seed=config.seed,
        files=config.files,
        venue=config.venue,
    )
    context.log.info(
        f"replaying {config.source.value} {config.symbols} into {tick_stream.stream} at {redis.describe()}"
    )
    result = replay(
        client,
        source.chunks,
        ReplayOptions(
            stream=tick_stream.stream,
            maxlen=config.maxlen or None,
            speed=config.speed,
            faults=FaultSpec(),
            progress=False,
            shards=tick_stream.shard_count,
        ),
        source.market_seconds,
    )
    info = result.stream
    per_symbol = pd.DataFrame({"ticks": result.ticks_by_symbol}).rename_axis("symbol")
    preview_rows = pd.DataFrame(
        [{"id": i, **f} for i, f in read_entries(client, tick_stream.streams[0], count=5, newest=True)]
    )
    return dg.MaterializeResult(
        metadata={
            "entries_written": dg.MetadataValue.int(result.entries),
            "entries_per_second": dg.MetadataValue.float(round(result.entries_per_second, 1)),
            "market_seconds": dg.MetadataValue.float(round(result.market_seconds, 3)),
            "latency": source.latency,
            "stream": tick_stream.stream,
            "stream_length": dg.MetadataValue.int(info.length if info else 0),
            "last_entry_id": info.last_id if info and info.last_id else "",
            "ticks_per_symbol": dg.MetadataValue.md(per_symbol.to_markdown()),
            "latest_entries": dg.MetadataValue.md(preview_rows.to_markdown(index=False)),
        }
    )
