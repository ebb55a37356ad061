"""The code location: everything under `defs/`, plus what applies to all of it (the executor)."""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    # In-process: a partition's steps are short and share one Redis connection pool; a multiprocess executor
    # costs about a second per step here. Scale out by changing this one line (docs/configuration.md).
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=dg.in_process_executor),
    )
