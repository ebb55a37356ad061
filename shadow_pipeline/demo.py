"""The README's main command: the main job through Dagster on the embedded default, then what landed."""

from __future__ import annotations

import os
from collections.abc import Sequence

import dagster as dg
import pandas as pd

from shadow_pipeline.definitions import defs
from shadow_pipeline.jobs import MAIN_JOB
from shadow_pipeline.redis_io.connect import connect, resolve_url
from shadow_pipeline.redis_io.streams import DEFAULT_STREAM, read_entries
from shadow_pipeline.redis_io.url import REDIS_URL_ENV, redact


def _instance() -> dg.DagsterInstance:
    """The project's instance when DAGSTER_HOME is set (the run then shows in `dagster dev`)."""
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


def stream_summary(stream: str = DEFAULT_STREAM, sample: int = 3) -> str:
    """Per-symbol entry counts, seq ranges and the newest entries of ``stream``, as text."""
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
    newest = pd.DataFrame([{"id": i, **f} for i, f in entries[-sample:]])
    return "\n".join(
        [
            f"{stream} at {redact(resolve_url())}: {len(entries)} entries, ids {entries[0][0]} .. {entries[-1][0]}",
            per_symbol.to_string(),
            "newest entries:",
            newest.to_string(index=False),
        ]
    )


def run_demo(minutes: float, symbols: Sequence[str], seed: int) -> str:
    # Start (or find) Redis first, and hand its URL to every resource of the run via the environment.
    os.environ[REDIS_URL_ENV] = resolve_url()
    job = defs.resolve_job_def(MAIN_JOB)
    run_config = {"ops": {"replayed_feed": {"config": {"minutes": minutes, "symbols": list(symbols), "seed": seed}}}}
    with _instance() as instance:
        result = job.execute_in_process(run_config=run_config, instance=instance, raise_on_error=True)
    return f"Dagster run {result.run_id}: {'success' if result.success else 'FAILED'}\n" + stream_summary()
