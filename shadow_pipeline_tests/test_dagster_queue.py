"""The run queue keeps the project's limits: more runs are launched than the limits allow, through the project's
instance settings and a running `dagster-daemon`, and the run records' start and end times show that no more
than each limit ever ran at once, and that every run finished."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from shadow_pipeline.defs.run_queue import KIND_TAG, SHADOW_KIND, STREAM_TAG, TUNE_KIND
from shadow_pipeline_tests.instance_helpers import REPO, project_home
from shadow_pipeline_tests.process_helpers import stop_group
from shadow_pipeline_tests.queue_location import RUN_TAGS

LOCATION = "shadow_pipeline_tests.queue_location"
SHADOW_LIMIT = 2  # below the project's 4, so that four runs must queue
FINISH_S = 300.0  # a generous bound on two shared cores; the test fails with the runs' states past it


def _limits_with_shadow(limit: int) -> str:
    """The project's dagster.yaml with the shadow runs' limit set to ``limit`` (every other setting kept)."""
    config = yaml.safe_load((REPO / "dagster.yaml").read_text())
    for rule in config["concurrency"]["runs"]["tag_concurrency_limits"]:
        if rule["key"] == KIND_TAG and rule.get("value") == SHADOW_KIND:
            rule["limit"] = limit
    return yaml.safe_dump(config)


def _backfill(env: dict[str, str]) -> None:
    """Every run of the test's job, submitted to the queue at once."""
    command = [sys.executable, "-m", "dagster", "job", "backfill", "-m", LOCATION, "-j", "nap_job", "--noprompt"]
    done = subprocess.run(
        [*command, "--partitions", ",".join(RUN_TAGS)], cwd=REPO, env=env, capture_output=True, timeout=300
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode()[-2000:]


@pytest.fixture
def daemon_home(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A project instance (limits as above) with `dagster-daemon run` serving the test's code location."""
    home = tmp_path / "home"
    with project_home(home, _limits_with_shadow(SHADOW_LIMIT)) as home_env:
        env = {**os.environ, **home_env, "PYTHONPATH": str(REPO)}
        log = (tmp_path / "daemon.log").open("wb")
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-m", LOCATION],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield home, env
        finally:
            stop_group(daemon)
            log.close()


def most_at_once(spans: Iterable[tuple[float, float]]) -> int:
    """The largest number of [start, end) intervals that overlap at one instant."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])  # an end sorts first
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_most_at_once_counts_overlaps_only() -> None:
    assert most_at_once([(0, 2), (2, 4), (4, 6)]) == 1
    assert most_at_once([(0, 3), (1, 4), (2, 5), (6, 7)]) == 3


def test_queued_runs_keep_the_project_limits(daemon_home: tuple[Path, dict[str, str]]) -> None:
    home, env = daemon_home
    _backfill(env)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        deadline = time.monotonic() + FINISH_S
        while True:
            records = instance.get_run_records()
            if len(records) == len(RUN_TAGS) and all(r.dagster_run.is_finished for r in records):
                break
            assert time.monotonic() < deadline, [(r.dagster_run.status, r.dagster_run.tags) for r in records]
            time.sleep(1.0)

    assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}
    assert all(r.start_time is not None and r.end_time is not None for r in records)

    def spans(key: str, value: str) -> list[tuple[float, float]]:
        return [(r.start_time, r.end_time) for r in records if r.dagster_run.tags.get(key) == value]  # type: ignore[misc]

    assert len(spans(KIND_TAG, SHADOW_KIND)) > SHADOW_LIMIT  # more than the limit, or nothing is tested
    assert most_at_once(spans(KIND_TAG, SHADOW_KIND)) <= SHADOW_LIMIT
    assert most_at_once(spans(KIND_TAG, TUNE_KIND)) == 1
    assert most_at_once(spans(STREAM_TAG, "test:a")) == 1
