"""The README's main command: the pipeline through Dagster on the embedded default, then what it produced.

Replay the synthetic market into the tick stream (``feed_replay_job``), then run each (hour, symbol) it
covered end to end (``shadow_job``: ingest, simulate the profile's quotes, KPIs per window, Go/No-Go report).
The demo keeps its data in ``<data dir>/demo``, emptied first: the embedded Redis starts empty every time, so
ticks landed by an earlier demo would otherwise count as duplicates. That folder reaches the runs as resource
config. Windows are 5 s so that twenty minutes of market give more than the 48 valid windows (enough ticks and
at least one fill) a verdict needs.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence

import numpy as np
import pandas as pd
import redis
from upath import UPath

from shadow_pipeline import settings
from shadow_pipeline.defs.feed.assets import FeedConfig
from shadow_pipeline.defs.feed.jobs import FEED_REPLAY_JOB
from shadow_pipeline.defs.partitions import PartitionOutOfRange, configured_symbols
from shadow_pipeline.defs.shadow.assets import ShadowConfig
from shadow_pipeline.defs.shadow.jobs import SHADOW_JOB
from shadow_pipeline.domain.market.synthetic import DEFAULT_START
from shadow_pipeline.domain.market.windows import hour_keys
from shadow_pipeline.launch import (
    Placement,
    console_level,
    default,
    definitions,
    partition_keys,
    project_instance,
    run_config,
    run_shadow,
)
from shadow_pipeline.redis_io.connect import connect, resolve_url
from shadow_pipeline.redis_io.streams import read_entries
from shadow_pipeline.redis_io.url import redact
from shadow_pipeline.resources import TickStreamResource

DEMO_WINDOW_SECONDS = 5.0


def stream_summary(client: redis.Redis, stream: str) -> str:
    """Per-symbol entry counts and seq ranges of ``stream``, as text."""
    entries = read_entries(client, stream)
    if not entries:
        return f"{stream}: empty"
    frame = pd.DataFrame([fields for _, fields in entries])
    frame["seq"] = pd.to_numeric(frame["seq"])
    per_symbol = frame.groupby("symbol").agg(
        entries=("seq", "size"),
        first_seq=("seq", "min"),
        last_seq=("seq", "max"),
        trades=("last_side", lambda s: int((s != "").sum())),
    )
    header = f"{stream} at {redact(resolve_url())}: {len(entries)} entries, ids {entries[0][0]} .. {entries[-1][0]}"
    return "\n".join([header, per_symbol.to_string()])


def demo_hours(minutes: float) -> list[str]:
    """The hourly partitions that the synthetic market's default window covers."""
    start = DEFAULT_START.value
    return sorted(set(hour_keys(np.array([start, start + int(minutes * 60e9)])).tolist()))


def run_demo(
    minutes: float, symbols: Sequence[str], seed: int, profile: str = default(ShadowConfig, "profile")
) -> tuple[str, bool]:
    """What the demo prints, and whether every run completed (a No-Go completes: it is a verdict)."""
    outside = sorted(set(symbols) - set(configured_symbols()))
    if outside:
        raise PartitionOutOfRange(
            f"symbols {outside} have no partitions: add them to ${settings.SYMBOLS_ENV} (now {configured_symbols()})"
        )
    keys = partition_keys(demo_hours(minutes), symbols)
    client = connect(decode_responses=True)  # this process's Redis: the runs below share it
    demo_dir = UPath(settings.data_dir()) / "demo"
    if demo_dir.exists():
        shutil.rmtree(demo_dir.path)
    placement = Placement(data_dir=str(demo_dir))
    feed_config = FeedConfig(minutes=minutes, symbols=list(symbols), seed=seed)
    lines: list[str] = []
    with project_instance() as instance:
        feed = (
            definitions()
            .resolve_job_def(FEED_REPLAY_JOB)
            .execute_in_process(
                run_config=run_config(placement, {"replayed_feed": feed_config}, console_level()), instance=instance
            )
        )
        stream = default(TickStreamResource, "stream")
        lines += [f"{FEED_REPLAY_JOB} run {feed.run_id}: {'success' if feed.success else 'FAILED'}"]
        lines += [stream_summary(client, stream), ""]
        shadow = ShadowConfig(profile=profile, window_seconds=DEMO_WINDOW_SECONDS)
        table = run_shadow(keys, shadow, placement, instance, console_level())
    lines += [
        f"{SHADOW_JOB} per partition, profile {profile}, {DEMO_WINDOW_SECONDS:g} s windows (data under {demo_dir}, "
        f"reports under {settings.artifacts_dir() / 'shadow'}):",
        table.to_string(index=False, float_format=lambda v: f"{v:.4g}"),
    ]
    completed = feed.success and bool((table["run"] == "success").all())
    return "\n".join(lines), completed
