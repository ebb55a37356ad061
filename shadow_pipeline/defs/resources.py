"""Every resource of the code location, bound once. Run config may override any field per run (the CLI does).

What the environment sets is bound here, so that the launchpad shows the setting in force rather than ``None``:
a secret as the variable it comes from (``dg.EnvVar``: Dagster stores and shows the name, never the value),
anything else as its value. An unset secret stays ``None``: the resource then falls back (the Redis URL to an
embedded server, Slack to nothing), which an ``EnvVar`` of an unset variable would refuse.
"""

import dagster as dg

from shadow_pipeline import settings
from shadow_pipeline.io_managers import ParquetIOManager
from shadow_pipeline.resources import (
    AlertsResource,
    ArtifactsResource,
    LandingResource,
    RedisResource,
    TickStreamResource,
)


def _secret(variable: str, value: str | None) -> dg.EnvVar | None:
    return dg.EnvVar(variable) if value else None


@dg.definitions
def resources() -> dg.Definitions:
    data_dir = settings.data_dir()
    return dg.Definitions(
        resources={
            "redis": RedisResource(url=_secret(settings.REDIS_URL_ENV, settings.redis_url())),
            "tick_stream": TickStreamResource(),
            "landing": LandingResource.under(data_dir),
            "artifacts": ArtifactsResource(base_path=str(settings.artifacts_dir())),
            "alerts": AlertsResource(slack_token=_secret(settings.SLACK_TOKEN_ENV, settings.slack_token())),
            "io_manager": ParquetIOManager.under(data_dir),  # the default for every asset: Parquet per partition
        }
    )
