"""Jobs: what `dagster job execute`, schedules and the README's main command launch."""

from __future__ import annotations

import dagster as dg

MAIN_JOB = "main_job"

main_job = dg.define_asset_job(
    name=MAIN_JOB,
    selection=dg.AssetSelection.groups("feed"),
    description="The demo flow on the embedded default: replay the synthetic market into the tick stream.",
    executor_def=dg.in_process_executor,
)
