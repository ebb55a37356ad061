"""The README's main command: the pipeline through Dagster on the embedded default, then what it produced.

Replay the synthetic market into the tick stream (``main_job``), then run each (hour, symbol) it covered end
to end (``shadow_job``: ingest, simulate the profile's quotes, KPIs per window, Go/No-Go report). The demo
lands into ``$SHADOW_DATA_DIR/demo``, emptied first: the embedded Redis starts empty every time, so ticks
landed by an earlier demo would otherwise count as duplicates. Windows are 5 s so that twenty minutes of market
give more than the 48 valid windows (enough ticks and at least one fill) a verdict needs.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

import numpy as np
import pandas as pd
from upath import UPath

from shadow_pipeline.definitions import defs
from shadow_pipeline.domain.synthetic import DEFAULT_START
from shadow_pipeline.domain.windows import hour_keys
from shadow_pipeline.io_managers import DATA_DIR_ENV, data_dir
from shadow_pipeline.jobs import MAIN_JOB, SHADOW_JOB
from shadow_pipeline.launch import console_level, project_instance, run_shadow, shadow_run_config
from shadow_pipeline.partitions import SYMBOLS_ENV, configured_symbols
from shadow_pipeline.redis_io.connect import connect, resolve_url
from shadow_pipeline.redis_io.streams import DEFAULT_STREAM, read_entries
from shadow_pipeline.redis_io.url import REDIS_URL_ENV, redact
from shadow_pipeline.resources import artifacts_dir

DEMO_WINDOW_SECONDS = 5.0


def stream_summary(stream: str = DEFAULT_STREAM) -> str:
    """Per-symbol entry counts and seq ranges of ``stream``, as text."""
    entries = read_entries(connect(), stream)
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


def run_demo(minutes: float, symbols: Sequence[str], seed: int, profile: str = "moderate") -> str:
    outside = sorted(set(symbols) - set(configured_symbols()))
    if outside:
        raise ValueError(
            f"symbols {outside} have no partitions: add them to ${SYMBOLS_ENV} (now {configured_symbols()})"
        )
    # Start (or find) Redis first, and hand its URL to every resource of the run via the environment.
    os.environ[REDIS_URL_ENV] = resolve_url()
    demo_dir = UPath(data_dir()) / "demo"
    if demo_dir.exists():
        shutil.rmtree(demo_dir.path)
    os.environ[DATA_DIR_ENV] = str(demo_dir)
    run_config = {
        "ops": {"replayed_feed": {"config": {"minutes": minutes, "symbols": list(symbols), "seed": seed}}},
        "loggers": {"console": {"config": {"log_level": console_level()}}},
    }
    lines: list[str] = []
    with project_instance() as instance:
        feed = defs.resolve_job_def(MAIN_JOB).execute_in_process(run_config=run_config, instance=instance)
        lines += [f"{MAIN_JOB} run {feed.run_id}: {'success' if feed.success else 'FAILED'}", stream_summary(), ""]
        config = shadow_run_config(profile=profile, window_seconds=DEMO_WINDOW_SECONDS)
        table = run_shadow(demo_hours(minutes), symbols, config, instance, console_log_level=console_level())
    lines += [
        f"{SHADOW_JOB} per partition, profile {profile}, {DEMO_WINDOW_SECONDS:g} s windows (data under {demo_dir}, "
        f"reports under {artifacts_dir() / 'shadow'}):",
        table.to_string(index=False, float_format=lambda v: f"{v:.4g}"),
    ]
    return "\n".join(lines)
