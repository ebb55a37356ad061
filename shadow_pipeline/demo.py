"""The README's main command: the pipeline through Dagster on the embedded default, then what it produced.

Today: replay the synthetic market into the tick stream (``main_job``), then ingest each (hour, symbol) it
covered (``ingest_job``). The demo lands into ``$SHADOW_DATA_DIR/demo``, emptied first: the embedded Redis
starts empty every time, so ticks landed by an earlier demo would otherwise count as duplicates.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

import dagster as dg
import numpy as np
import pandas as pd
from upath import UPath

from shadow_pipeline.definitions import defs
from shadow_pipeline.domain.synthetic import DEFAULT_START
from shadow_pipeline.domain.windows import hour_keys
from shadow_pipeline.io_managers import DATA_DIR_ENV, data_dir
from shadow_pipeline.jobs import INGEST_JOB, MAIN_JOB
from shadow_pipeline.partitions import SYMBOLS_ENV, configured_symbols, partition_key
from shadow_pipeline.redis_io.connect import connect, resolve_url
from shadow_pipeline.redis_io.streams import DEFAULT_STREAM, read_entries
from shadow_pipeline.redis_io.url import REDIS_URL_ENV, redact

QUALITY_COLUMNS = ("dagster/row_count", "gaps", "duplicates", "reordered", "drops", "dead_letters")


def _instance() -> dg.DagsterInstance:
    """The project's instance when DAGSTER_HOME is set (the run then shows in `dagster dev`)."""
    return dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()


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


def _ingest_row(result: dg.ExecuteInProcessResult, hour: str, symbol: str) -> dict[str, object]:
    row: dict[str, object] = {"hour": hour, "symbol": symbol, "run": "success" if result.success else "FAILED"}
    materialized = result.asset_materializations_for_node("normalized_ticks")
    if materialized:
        metadata = materialized[0].metadata
        row.update({name.split("/")[-1]: metadata[name].value for name in QUALITY_COLUMNS})
    failed = [e.check_name for e in result.get_asset_check_evaluations() if not e.passed]
    row["failed_checks"] = ", ".join(failed) or "-"
    return row


def run_demo(minutes: float, symbols: Sequence[str], seed: int) -> str:
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
    run_config = {"ops": {"replayed_feed": {"config": {"minutes": minutes, "symbols": list(symbols), "seed": seed}}}}
    lines: list[str] = []
    rows = []
    with _instance() as instance:
        feed = defs.resolve_job_def(MAIN_JOB).execute_in_process(run_config=run_config, instance=instance)
        lines += [f"{MAIN_JOB} run {feed.run_id}: {'success' if feed.success else 'FAILED'}", stream_summary(), ""]
        ingest = defs.resolve_job_def(INGEST_JOB)
        for hour in demo_hours(minutes):
            for symbol in symbols:
                result = ingest.execute_in_process(
                    partition_key=partition_key(hour, symbol), instance=instance, raise_on_error=False
                )
                rows.append(_ingest_row(result, hour, symbol))
    lines += [f"{INGEST_JOB} per partition (stored under {demo_dir}):", pd.DataFrame(rows).to_string(index=False)]
    return "\n".join(lines)
