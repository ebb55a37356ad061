"""The run tags the instance's queue limits by (dagster.yaml, ``concurrency.runs.tag_concurrency_limits``).

The limits live in the instance, not in code, so an operator tunes them per deployment; the jobs and the sensor
only label their runs. Renaming a tag here means renaming it in dagster.yaml too.
"""

from __future__ import annotations

from shadow_pipeline.redis_io.keys import TICK_STREAM

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


TUNE_TAGS = {KIND_TAG: TUNE_KIND}
