"""The tuning job: the tuned profile of one symbol for the hours up to a partition's hour."""

import dagster as dg

from shadow_pipeline.defs.run_queue import TUNE_TAGS

TUNE_JOB = "tune_job"

tune_job = dg.define_asset_job(
    name=TUNE_JOB,
    selection=dg.AssetSelection.assets("tuned_profile"),
    tags=TUNE_TAGS,
    description="Walk-forward auto-tune of one symbol on the stored normalized_ticks of the hours up to the "
    "partition's hour (materialize them first, e.g. with ingest_job). A No-Go is a verdict: the run succeeds, "
    "the out-of-sample check fails (ERROR) and no LIVE_READY_PROFILE.json is written.",
)
