"""pipeline_job on the executors $SHADOW_EXECUTOR chooses: multiprocess and dagster-celery store what in-process does.

Each run goes through ``dg.execute_job`` on a persistent test instance (steps in other processes load the run from
it) and writes under its own temp folder; the celery worker is started here, on a queue of this test alone.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import celery
import dagster as dg
import kombu
import pandas as pd
import pytest
import redis
import yaml

from shadow_pipeline import settings
from shadow_pipeline.definitions import celery_config, defs
from shadow_pipeline.defs.pipeline.jobs import PIPELINE_JOB
from shadow_pipeline.defs.shadow.assets import ShadowConfig
from shadow_pipeline.parquet import read_frame
from shadow_pipeline_tests.ingest_helpers import pipeline_resources, replay_synthetic
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.shadow_helpers import loose_profiles

HOUR, SYMBOL = "2024-08-09-00:00", "BTCUSDT"
RABBITMQ = ("127.0.0.1", 5672)
BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
COMPARED = ("shadow_iterations", "shadow_report")
# Steps forked from a server that imported the code location once: a second or more less per step than a spawn.
FORKSERVER = {"forkserver": {"preload_modules": ["shadow_pipeline.definitions"]}}
MULTIPROCESS = {"max_concurrent": 2, "start_method": FORKSERVER}
# What a step in another process logs: proof that the chosen executor ran the steps, not the in-process one.
ROOT = Path(__file__).resolve().parents[1]  # the checkout: step processes import this module from it
STEP_ELSEWHERE = {"multiprocess": "Launching subprocess for", "celery": "in celery worker"}


def pipeline_job(executor: str) -> dg.JobDefinition:
    """The code location's pipeline_job, rebuilt in each process that runs a step (the worker, a subprocess);
    ``executor`` is what the launcher chose, so a process that sees another setting fails loudly."""
    assert settings.executor() == executor, f"${settings.EXECUTOR_ENV} differs in this process"
    return defs().resolve_job_def(PIPELINE_JOB)


HOSTILE = ["k8s", "in-process", "CELERY", "nan", "1e309", "celery;rm -rf /", "in_process,celery", "\u00e9"]


@pytest.mark.parametrize("value", HOSTILE)
def test_a_bad_executor_setting_loads_in_process_and_fails_runs_with_one_line(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(settings.EXECUTOR_ENV, value)
    assert defs().resolve_job_def(PIPELINE_JOB).executor_def is dg.in_process_executor  # the UI still loads
    with pytest.raises(settings.SettingsError) as raised:
        settings.check()  # what every run's io_manager and every CLI command that runs does first
    assert str(raised.value) == f"${settings.EXECUTOR_ENV}={value!r}: expected one of in_process, multiprocess, celery"


def test_the_executor_setting_is_read_when_the_definitions_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.EXECUTOR_ENV, " multiprocess ")
    assert defs().resolve_job_def(PIPELINE_JOB).executor_def is dg.multiprocess_executor
    monkeypatch.delenv(settings.EXECUTOR_ENV)
    assert defs().resolve_job_def(PIPELINE_JOB).executor_def is dg.in_process_executor


CELERY_DEFAULTS = {"broker": {"env": settings.CELERY_BROKER_ENV}, "backend": "rpc://"}
CELERY_CONFIGS = [
    ({}, {**CELERY_DEFAULTS, "config_source": {"task_default_queue": "shadow"}}),
    (
        {"broker": "pyamqp://other//", "config_source": {"task_default_queue": "q", "task_acks_late": True}},
        {
            "broker": "pyamqp://other//",
            "backend": "rpc://",
            "config_source": {"task_default_queue": "q", "task_acks_late": True},
        },
    ),
    (
        {"config_source": {"worker_prefetch_multiplier": 1}},
        {**CELERY_DEFAULTS, "config_source": {"task_default_queue": "shadow", "worker_prefetch_multiplier": 1}},
    ),
    ({"config_source": "shadow"}, {**CELERY_DEFAULTS, "config_source": "shadow"}),  # left for the schema to refuse
]


@pytest.mark.parametrize(("given", "expected"), CELERY_CONFIGS)
def test_a_celery_run_without_an_execution_block_reaches_the_deployments_broker_and_queue(
    given: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert celery_config(given) == expected


def test_the_celery_setting_loads_the_executor_with_those_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.EXECUTOR_ENV, "celery")
    monkeypatch.setenv(settings.CELERY_BROKER_ENV, "pyamqp://desk@rabbitmq//")
    job = defs().resolve_job_def(PIPELINE_JOB)
    executor = dg.validate_run_config(job, {})["execution"]["celery"]  # what a sensor's run request gets
    assert (executor["broker"], executor["config_source"]) == (
        "pyamqp://desk@rabbitmq//",
        {"task_default_queue": "shadow"},
    )
    with pytest.raises(dg.DagsterInvalidConfigError, match="retries"):
        dg.validate_run_config(job, {"execution": {"config": {"retries": "often"}}})


def _rabbitmq_reachable() -> bool:
    try:
        socket.create_connection(RABBITMQ, timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def ticks(redis_url: str) -> Iterator[str]:
    """Two minutes of one symbol in a stream of this module alone; each run drains it in its own group."""
    client = redis.Redis.from_url(redis_url)
    stream = f"test:{uuid.uuid4().hex[:12]}:ticks"
    replay_synthetic(client, stream, seconds=120, symbols=(SYMBOL,), start="2024-08-09T00:00:00Z")
    yield stream
    for pattern in (f"{stream}*", "shadow:kpi:*"):  # and what export wrote, as test_dagster_dryrun does
        for name in client.scan_iter(match=pattern):
            client.delete(name)


@pytest.fixture(scope="module")
def in_process(redis_url: str, ticks: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of an in-process run: what every other executor must store."""
    folder = tmp_path_factory.mktemp("executors") / "in_process"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(settings.EXECUTOR_ENV, raising=False)
        _run("in_process", folder, redis_url, ticks)
    return folder


def _run(
    executor: str, folder: Path, redis_url: str, stream: str, execution: dict[str, Any] | None = None
) -> dg.JobExecutionResult:
    """One partition of pipeline_job on ``executor``, its own consumer group and folders; the run must succeed."""
    (folder / "dagster_home").mkdir(parents=True)
    config = dg.RunConfig(
        ops={"shadow_iterations": ShadowConfig(window_seconds=10, profiles_file=loose_profiles(folder))},
        resources=pipeline_resources(redis_url, stream, folder, group=f"executors-{executor}"),
        execution={"config": execution or {}},
    )
    job = dg.build_reconstructable_job(__name__, pipeline_job.__name__, reconstructable_args=(executor,))
    tags = {"dagster/partition": f"{HOUR}|{SYMBOL}", "dagster/partition/hour": HOUR, "dagster/partition/symbol": SYMBOL}
    with dagster_instance(temp_dir=str(folder / "dagster_home")) as instance:
        result = dg.execute_job(job, instance=instance, run_config=config.to_config_dict(), tags=tags)
        messages = [e.message or "" for e in instance.all_logs(result.run_id)]
    assert result.success, [m for m in messages if "error" in m.lower()]
    if executor in STEP_ELSEWHERE:
        assert any(STEP_ELSEWHERE[executor] in m for m in messages)
    return result


def _stored(folder: Path, asset: str) -> pd.DataFrame:
    return read_frame(str(folder / "assets" / asset / HOUR / f"{SYMBOL}.parquet"))


def _assert_same_outputs(expected: Path, actual: Path) -> None:
    for asset in COMPARED:
        left, right = _stored(expected, asset), _stored(actual, asset)
        assert len(left) > 0
        pd.testing.assert_frame_equal(left, right, check_exact=True)
    report = _stored(actual, "shadow_report")  # judged on valid windows (the loose gates), not an empty hour
    assert report["verdict"].iloc[0] == "GO" and report["valid_windows"].iloc[0] > 0


def _wait_until_ready(worker: subprocess.Popen[bytes], queue: str, attempts: int = 90) -> None:
    control = celery.Celery(broker=BROKER).control
    for _ in range(attempts):
        if worker.poll() is not None:
            pytest.fail(f"the celery worker exited with {worker.returncode} before it answered (its stderr is above)")
        if any(name.startswith(f"{queue}@") for reply in control.ping(timeout=1) for name in reply):
            return
    pytest.fail(f"the celery worker did not answer a ping in {attempts} attempts")


def test_multiprocess_stores_what_in_process_stores(
    redis_url: str, ticks: str, in_process: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(settings.EXECUTOR_ENV, "multiprocess")  # the subprocesses inherit it
    _run("multiprocess", tmp_path / "multiprocess", redis_url, ticks, MULTIPROCESS)
    _assert_same_outputs(in_process, tmp_path / "multiprocess")


@pytest.fixture
def celery_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A dagster-celery worker on a queue of this test alone (a broker may serve other runs), stopped and its
    queue deleted afterwards; yields the run's executor config that sends steps to it: the queue alone, as the
    broker and backend are the code location's defaults (the broker from $SHADOW_CELERY_BROKER)."""
    queue = f"shadow-test-{uuid.uuid4().hex[:12]}"
    execution = {"broker": BROKER, "backend": "rpc://", "config_source": {"task_default_queue": queue}}
    config_file = tmp_path / "celery.yaml"
    config_file.write_text(yaml.safe_dump({"execution": {"config": execution}}))
    monkeypatch.setenv(settings.CELERY_BROKER_ENV, BROKER)
    home = tmp_path / "worker_home"
    home.mkdir()
    monkeypatch.setenv(settings.EXECUTOR_ENV, "celery")
    venv = str(Path(sys.executable).parent)  # dagster-celery starts `celery` from the PATH
    environment = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "PATH": f"{venv}:{os.environ['PATH']}",
    }
    start = [f"{venv}/dagster-celery", "worker", "start", "-A", "dagster_celery.app"]
    command = [*start, "-y", str(config_file), "-q", queue]
    worker = subprocess.Popen(
        [*command, "-n", f"{queue}@%h", "--", "--concurrency=1"],
        env=environment,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_until_ready(worker, queue)  # else a run whose steps nobody takes would wait for ever
        yield {"config_source": {"task_default_queue": queue}}
    finally:
        os.killpg(worker.pid, signal.SIGTERM)  # dagster-celery and the celery worker it started
        worker.wait(timeout=30)
        with kombu.Connection(BROKER) as connection:
            connection.default_channel.queue_delete(queue)
            connection.default_channel.exchange_delete(queue)  # celery declares one of the queue's name


@pytest.mark.skipif(
    not _rabbitmq_reachable(), reason=f"RabbitMQ is not reachable on {RABBITMQ[0]}:{RABBITMQ[1]} (celery's broker)"
)
@pytest.mark.filterwarnings("ignore:Task name 'execute_plan' is already registered")  # dagster-celery's own
def test_celery_stores_what_in_process_stores(
    redis_url: str, ticks: str, in_process: Path, tmp_path: Path, celery_worker: dict[str, Any]
) -> None:
    _run("celery", tmp_path / "celery", redis_url, ticks, celery_worker)
    _assert_same_outputs(in_process, tmp_path / "celery")
