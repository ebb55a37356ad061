"""The code location: everything under `defs/`, plus what applies to all of it (the executor)."""

from pathlib import Path
from typing import Any

import dagster as dg

from shadow_pipeline import settings

CELERY_QUEUE = "shadow"  # deploy/celery.yaml's workers take this queue (`-q shadow`)


def executor() -> dg.ExecutorDefinition:
    """The executor ``$SHADOW_EXECUTOR`` names: one setting, no code change, to scale out (docs/scaling.md).

    In-process is the default: a partition's steps are short and share one Redis connection pool, and a process
    per step costs about a second here. Each executor keeps its own run config (``execution: {config: ...}``:
    ``max_concurrent`` for multiprocess, ``broker`` and ``config_source`` for celery). dagster-celery is the
    ``scale`` extra, imported only when chosen.
    """
    chosen = settings.executor()
    if chosen == "celery":
        from dagster_celery import celery_executor

        return celery_executor.configured(celery_config, config_schema=dg.Permissive(), name="celery")
    return dg.multiprocess_executor if chosen == "multiprocess" else dg.in_process_executor


def celery_config(given: dict[str, Any]) -> dict[str, Any]:
    """The celery executor's run config with the deployment's defaults under what a run gives: the broker from
    ``$SHADOW_CELERY_BROKER`` (resolved by Dagster in the run's process, so no password is stored with the run),
    results over the broker, and the workers' queue of deploy/celery.yaml. Without them, a run the daemon launches
    (a sensor's or schedule's, with no ``execution`` block) would send its steps to dagster-celery's default broker
    ``guest@localhost`` and queue ``dagster``, where no worker of this deployment listens."""
    source = given.get("config_source", {})
    return {
        "broker": {"env": settings.CELERY_BROKER_ENV},
        "backend": "rpc://",
        **given,  # anything malformed is left to the celery executor's own schema, which names the field
        "config_source": {"task_default_queue": CELERY_QUEUE, **source} if isinstance(source, dict) else source,
    }


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=executor()),
    )
