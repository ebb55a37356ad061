"""The ingest stage's job: drain the stream, then one partition's raw and normalized ticks."""

import dagster as dg

from shadow_pipeline.defs.run_queue import drain_tags

INGEST_JOB = "ingest_job"

ingest_job = dg.define_asset_job(
    name=INGEST_JOB,
    selection=dg.AssetSelection.groups("ingest"),
    tags=drain_tags(),
    description="One (hour, symbol): drain the tick stream into the landing zone (all partitions at once), then "
    "the partition's raw and normalized ticks and data-quality counts.",
)
