"""Jobs: what `dagster job execute`, sensors, schedules and the README's main command launch."""

from __future__ import annotations

import dagster as dg

MAIN_JOB = "main_job"
INGEST_JOB = "ingest_job"

main_job = dg.define_asset_job(
    name=MAIN_JOB,
    selection=dg.AssetSelection.groups("feed"),
    description="The demo's stand-in feed: replay the synthetic market into the tick stream.",
    executor_def=dg.in_process_executor,
)

ingest_job = dg.define_asset_job(
    name=INGEST_JOB,
    selection=dg.AssetSelection.groups("ingest"),
    description="One (hour, symbol): drain the tick stream into the landing zone, then raw and normalized ticks.",
    executor_def=dg.in_process_executor,
)

SHADOW_JOB = "shadow_job"

shadow_job = dg.define_asset_job(
    name=SHADOW_JOB,
    selection=dg.AssetSelection.groups("ingest", "shadow"),
    description="One (hour, symbol) end to end: ingest, simulate the profile's quotes, KPIs per window, Go/No-Go. "
    "A No-Go fails the run (blocking gates).",
    executor_def=dg.in_process_executor,
)

PIPELINE_JOB = "pipeline_job"

pipeline_job = dg.define_asset_job(
    name=PIPELINE_JOB,
    selection=dg.AssetSelection.groups("ingest", "shadow", "export", "dryrun"),
    description="One (hour, symbol), everything: ingest, shadow report, KPI export to Redis, dry-run accuracy. "
    "Export and dry-run depend on the iterations, not on the Go/No-Go, so a No-Go is exported and validated too.",
    executor_def=dg.in_process_executor,
)
