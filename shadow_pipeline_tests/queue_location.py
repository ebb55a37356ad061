"""A code location for the run-queue test: one partitioned job that only sleeps, each partition tagged as one of
the project's runs would be, so the instance's limits (not the work) decide when each run starts. One backfill
launches them all (one CLI process instead of one per run: the machine has two shared cores)."""

from __future__ import annotations

import time
from typing import Any

import dagster as dg

from shadow_pipeline.defs.run_queue import TUNE_TAGS, shadow_tags

NAP_S = 2.0
# Two of the four shadow runs drain the same stream: the queue must never overlap those either.
RUN_TAGS = {
    "shadow-1": shadow_tags("test:a"),
    "shadow-2": shadow_tags("test:a"),
    "shadow-3": shadow_tags("test:b"),
    "shadow-4": shadow_tags("test:c"),
    "tune-1": TUNE_TAGS,
    "tune-2": TUNE_TAGS,
}


@dg.static_partitioned_config(partition_keys=list(RUN_TAGS), tags_for_partition_key_fn=lambda key: RUN_TAGS[key])
def nap_config(partition_key: str) -> dict[str, Any]:
    return {}


@dg.op
def nap() -> None:
    time.sleep(NAP_S)


@dg.job(config=nap_config)
def nap_job() -> None:
    nap()


defs = dg.Definitions(jobs=[nap_job])
