"""The shadow stage's job: one partition from the stream to its Go/No-Go."""

import dagster as dg

from shadow_pipeline.defs.run_queue import shadow_tags

SHADOW_JOB = "shadow_job"

shadow_job = dg.define_asset_job(
    name=SHADOW_JOB,
    selection=dg.AssetSelection.groups("ingest", "shadow"),
    tags=shadow_tags(),
    description="One (hour, symbol) end to end: ingest, simulate the profile's quotes, KPIs per window, Go/No-Go. "
    "A No-Go is a verdict: the run succeeds, the gate checks fail (ERROR) and live_ready_profile is not written.",
)
