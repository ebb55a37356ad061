"""The one Definitions object of the code location."""

from __future__ import annotations

import dagster as dg

from shadow_pipeline.assets import feed
from shadow_pipeline.jobs import main_job
from shadow_pipeline.resources import RedisResource

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([feed]),
    jobs=[main_job],
    resources={"redis": RedisResource()},
)
