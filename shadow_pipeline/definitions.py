"""The code location: everything under `defs/`, plus what applies to all of it (the executor)."""

from pathlib import Path

import dagster as dg

from shadow_pipeline import settings


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

        return celery_executor
    return dg.multiprocess_executor if chosen == "multiprocess" else dg.in_process_executor


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=executor()),
    )
