"""The run tags the instance's queue limits by (dagster.yaml, ``concurrency.runs.tag_concurrency_limits``).

The limits live in the instance, not in code, so an operator tunes them per deployment; the jobs and the sensor
only label their runs. Renaming a tag here means renaming it in dagster.yaml too.
"""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg

from shadow_pipeline.defs.partitions import hour_and_symbol, tick_partitions
from shadow_pipeline.domain.market.shards import instrument_stream
from shadow_pipeline.redis_io.keys import TICK_STREAM
from shadow_pipeline.settings import stream_shards

STREAM_TAG = "shadow/stream"  # the stream a run drains: one run per value at a time
KIND_TAG = "shadow/kind"
SHADOW_KIND = "shadow"  # runs that simulate and judge partitions: N at a time
TUNE_KIND = "tune"  # walk-forward tuning: one at a time


def drain_tags(stream: str = TICK_STREAM) -> dict[str, str]:
    """Tags of a run that drains ``stream`` (the job default is the project's tick stream; the sensor passes the
    stream it actually watches)."""
    return {STREAM_TAG: stream}


def shadow_tags(stream: str = TICK_STREAM) -> dict[str, str]:
    """Tags of a run that drains ``stream`` and then simulates and judges its partition."""
    return {**drain_tags(stream), KIND_TAG: SHADOW_KIND}


def partition_stream(partition_key: str) -> str:
    """The shard stream that holds an (hour, symbol) partition's ticks: all its run drains (``landing_zone``)."""
    _, symbol = hour_and_symbol(partition_key)
    return instrument_stream(TICK_STREAM, symbol, stream_shards())


def shard_slot_config(tags: Callable[[str], dict[str, str]]) -> dg.PartitionedConfig[dg.PartitionsDefinition]:
    """The config of a tick-partitioned job whose runs drain: a run of one (hour, symbol), however it is launched
    (the launchpad, a backfill, the schedule, the sensor), is tagged with its shard stream, so it takes that shard's
    slot and runs of different shards go at once; a run of a range keeps the job's tags (the base stream: it drains
    every shard)."""
    return dg.PartitionedConfig(
        tick_partitions,
        run_config_for_partition_key_fn=lambda _: {},
        tags_for_partition_key_fn=lambda key: tags(partition_stream(key)),
    )


TUNE_TAGS = {KIND_TAG: TUNE_KIND}
