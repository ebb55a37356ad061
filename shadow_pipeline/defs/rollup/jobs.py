"""The rollup job: a (day, symbol) rolled up from its stored hours, and its profiles compared."""

import dagster as dg

ROLLUP_JOB = "rollup_job"

rollup_job = dg.define_asset_job(
    name=ROLLUP_JOB,
    selection=dg.AssetSelection.groups("rollup"),
    description="One (day, symbol): the stored shadow hours of the day rolled up for a profile (default: the "
    "newest hour's), and every profile kept for the day ranked side by side. Reads what shadow_job stored; "
    "a day without a shadowed hour fails with the reason.",
)
