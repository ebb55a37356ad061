"""`shadow-pipeline ci-dryrun`: the CI workflow's dry-run, the one command both .github/workflows/dryrun.yml and
`make ci-dryrun` run, so that they cannot drift (docs/ci.md).

It runs the jobs as CI runs them, through `dagster job execute` in processes of their own (the runs are recorded
in $DAGSTER_HOME like a deployment's): feed_replay_job, then pipeline_job per (hour, symbol). Those exit 0 on a
No-Go and on a FAIL, so the gate reads the verdicts back from the reports and gives the CLI's exit codes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import click
import pydantic
import redis

from shadow_pipeline import settings
from shadow_pipeline.cli_errors import fail as _fail
from shadow_pipeline.defs.dryrun.assets import DryRunConfig
from shadow_pipeline.defs.export.assets import ExportConfig
from shadow_pipeline.defs.feed.assets import FeedConfig
from shadow_pipeline.defs.feed.jobs import FEED_REPLAY_JOB
from shadow_pipeline.defs.partitions import hour_and_symbol, tick_partitions
from shadow_pipeline.defs.pipeline.jobs import PIPELINE_JOB
from shadow_pipeline.redis_io.connect import RedisUnavailable, connect
from shadow_pipeline.redis_io.server import NoServerAvailable
from shadow_pipeline.redis_io.streams import DEFAULT_STREAM
from shadow_pipeline.redis_io.url import RedisConfigError
from shadow_pipeline.reporting.ci_gate import exit_code, gate_table

_DAGSTER = str(Path(sys.executable).parent / "dagster")
# ValueError: the configs' validation, a setting, a partition, a report (GateError), a failed run
_REFUSED = (ValueError, RedisUnavailable, NoServerAvailable, RedisConfigError, redis.RedisError)
_OPTIONS = {"minutes": "--duration", "iterations": "--iterations"}  # config field -> the option that set it


def _refusal(exc: BaseException) -> str:
    if isinstance(exc, pydantic.ValidationError):  # which option, and the rule it broke
        return "; ".join(f"{_OPTIONS.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors())
    return f"{type(exc).__name__}: {exc}" if isinstance(exc, redis.RedisError) else str(exc)


def _execute(job: str, ops: dict[str, pydantic.BaseModel], tags: Mapping[str, str] | None = None) -> bool:
    """One `dagster job execute` with this run config; True when the run succeeded (a No-Go is a success)."""
    config = {
        "ops": {name: {"config": value.model_dump(mode="json", exclude_unset=True)} for name, value in ops.items()},
        "loggers": {"console": {"config": {"log_level": "WARNING"}}},
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json") as file:  # JSON is YAML to dagster -c
        json.dump(config, file)
        file.flush()
        command = [_DAGSTER, "job", "execute", "-m", "shadow_pipeline.definitions", "-j", job, "-c", file.name]
        if tags:
            command += ["--tags", json.dumps(tags)]
        click.echo(f"$ dagster job execute -j {job}" + (f" ({tags['dagster/partition']})" if tags else ""), err=True)
        return subprocess.run(command, check=False).returncode == 0


@click.command("ci-dryrun")
@click.option(
    "--iterations",
    default="6",
    show_default=True,
    help="Windows the accuracy gate compares, the newest N: 6 a smoke test, 12 a validation, 24+ a decision.",
)
@click.option(
    "--duration", default="10", show_default=True, help="Minutes of the synthetic market replayed (60 s windows)."
)
def ci_dryrun_command(iterations: str, duration: str) -> None:
    """Replay DURATION minutes of the synthetic market for $SHADOW_SYMBOLS into $REDIS_URL, run pipeline_job
    (ingest, shadow, export, dry-run) per (hour, symbol) through `dagster job execute`, then gate on accuracy.

    Exit status: 0 every symbol PASS or WARN on ITERATIONS windows, 1 any FAIL, NO DATA or fewer windows (a
    verdict, as `dryrun`), 2 an error (bad
    option or setting, Redis unreachable, a run that crashed, a report missing)."""
    from shadow_pipeline.launch import partition_keys, stream_hours

    try:
        settings.check()
        feed = FeedConfig.model_validate({"minutes": duration})  # the options' text, validated by the configs
        dryrun = DryRunConfig.model_validate({"iterations": iterations})
        if dryrun.iterations is not None and feed.minutes < dryrun.iterations:  # windows are 60 s
            raise ValueError(
                f"--duration {feed.minutes:g} minutes hold fewer than --iterations {dryrun.iterations} windows of "
                "60 s: replay at least as many minutes as windows"
            )
        client = connect(decode_responses=True)
        if client.exists(DEFAULT_STREAM):
            raise ValueError(f"stream {DEFAULT_STREAM} already holds ticks: CI replays into an empty Redis")
        if not _execute(FEED_REPLAY_JOB, {"replayed_feed": feed}):
            raise ValueError(f"{FEED_REPLAY_JOB} failed (its log is above)")
        keys = partition_keys(stream_hours(client, DEFAULT_STREAM), feed.symbols)
        ops: dict[str, pydantic.BaseModel] = {
            "exported_kpis": ExportConfig(mode="both"),
            "dryrun_accuracy_report": dryrun,
        }
        tags = {str(key): tick_partitions.get_tags_for_partition_key(key) for key in keys}
        failed = [key for key, run_tags in tags.items() if not _execute(PIPELINE_JOB, ops, run_tags)]
        if failed:
            raise ValueError(f"{len(failed)} of {len(keys)} runs of {PIPELINE_JOB} failed: {', '.join(failed)}")
        table = gate_table(settings.artifacts_dir(), [hour_and_symbol(key) for key in tags], dryrun.iterations or 0)
    except _REFUSED as exc:
        _fail(_refusal(exc))
        return
    click.echo(table.to_string(index=False))
    sys.exit(exit_code(table))


if __name__ == "__main__":
    ci_dryrun_command()
