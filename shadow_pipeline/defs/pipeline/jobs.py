"""The job that runs every stage for one partition: what the sensor and the schedule launch."""

import dagster as dg

from shadow_pipeline.defs.run_queue import shadow_tags

PIPELINE_JOB = "pipeline_job"

pipeline_job = dg.define_asset_job(
    name=PIPELINE_JOB,
    selection=dg.AssetSelection.groups("ingest", "shadow", "export", "dryrun"),
    tags=shadow_tags(),
    description="One (hour, symbol), everything: ingest, shadow report, KPI export to Redis, dry-run accuracy. "
    "Export and dry-run depend on the iterations, not on the verdict, so a No-Go is exported and validated too.",
)
