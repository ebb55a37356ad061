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

from shadow_pipeline import settings
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


BASE = (REPO / "dagster.yaml").read_text()
HOSTILE_INSTANCE_FILES = {
    "a limit that is a word": BASE.replace("limit: 4", "limit: four"),
    "a limit of 0 (never runs)": BASE.replace("limit: 4", "limit: 0"),
    "a negative limit": BASE.replace("limit: 1\n", "limit: -1\n", 1),
    "a huge limit": BASE.replace("limit: 4", "limit: 1e309"),
    "a NaN limit": BASE.replace("limit: 4", "limit: .nan"),
    "a limit without its tag": BASE.replace("- key: shadow/kind\n        value: shadow\n", "- value: shadow\n"),
    "no run at all": BASE.replace("max_concurrent_runs: 6", "max_concurrent_runs: 0"),
    "below Dagster's -1": BASE.replace("max_concurrent_runs: 6", "max_concurrent_runs: -5"),
    "a setting Dagster does not know": BASE + "\nbogus_setting: 1\n",
    # Dagster's older places for the same limits, read when concurrency.runs is absent
    "a limit of 0 in the run coordinator's config": "run_coordinator:\n  module: dagster.core.run_coordinator\n"
    "  class: QueuedRunCoordinator\n  config:\n    tag_concurrency_limits:\n"
    "      - {key: shadow/kind, value: shadow, limit: 0}\n",
    "no run at all in run_queue": "run_queue:\n  max_concurrent_runs: 0\n",
    "not YAML": "concurrency: [",
    "not YAML, on a line holding a literal secret": "telemetry:\n  password: TOPSECRET: z\n",
    "a list": "- runs\n- limits\n",
    "binary": "\x00\x01\x02",
}


def write_instance(tmp_path: Path, text: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`shadow-pipeline instance` from a base file holding ``text``, on SQLite: what it said, and where it wrote."""
    base, out = tmp_path / "dagster.yaml", tmp_path / "home" / "dagster.yaml"
    base.write_text(text)
    done = subprocess.run(
        [sys.executable, "-m", "shadow_pipeline.cli_instance", "--base", str(base), "--out", str(out)],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != settings.DAGSTER_PG_URL_ENV},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, out


@pytest.mark.parametrize("text", HOSTILE_INSTANCE_FILES.values(), ids=HOSTILE_INSTANCE_FILES.keys())
def test_an_instance_file_with_unusable_run_limits_is_one_error_line(tmp_path: Path, text: str) -> None:
    """An operator's edit of the limits fails `shadow-pipeline instance` (which every make target that runs
    Dagster calls first), rather than every Dagster process that opens the file, or a queue that never drains."""
    done, out = write_instance(tmp_path, text)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "TOPSECRET" not in done.stderr  # the problem and its line number, not the line
    assert not out.exists()


@pytest.mark.parametrize("text", [BASE, BASE.replace("max_concurrent_runs: 6", "max_concurrent_runs: -1"), ""])
def test_the_checked_in_limits_and_dagsters_no_limit_are_accepted(tmp_path: Path, text: str) -> None:
    done, out = write_instance(tmp_path, text)
    assert done.returncode == 0, done.stderr
    assert out.read_text() == text


def test_every_job_that_drains_or_shadows_takes_its_queue_slot() -> None:
    """The limits match tags, so a job without them runs beside the limited ones: every job of the code location
    that drains the stream (materializes landing_zone) carries the stream tag, and every one that shadows
    (materializes shadow_report) the shadow kind. Not Dagster's implicit asset job, which the asset graph's
    Materialize button launches and which has no tags of its own (docs/scaling.md says so)."""
    from shadow_pipeline.definitions import defs

    location = defs()
    drains, shadows = dg.AssetKey("landing_zone"), dg.AssetKey("shadow_report")
    checked = []
    for job in location.resolve_all_job_defs():
        if job.name.startswith("__ASSET_JOB"):
            continue
        keys = job.asset_layer.selected_asset_keys if job.asset_layer else set()
        if drains in keys:
            assert STREAM_TAG in job.tags, job.name
            checked.append(job.name)
        if shadows in keys:
            assert job.tags.get(KIND_TAG) == SHADOW_KIND, job.name
    assert {"shadow_job", "pipeline_job", "reconcile_job", "ingest_job"} <= set(checked)
