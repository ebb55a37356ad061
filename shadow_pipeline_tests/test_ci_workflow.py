"""CI as it runs: the dry-run workflow passes actionlint and calls the Make target that a test runs here end to end
(`dagster job execute` on a fresh Redis), and `.ci/verdict` keeps a verdict (exit 1) apart from an error (2).

Runs make with the current venv (``-o`` its stamp: nothing is installed) and a private $DAGSTER_HOME.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml
from click.testing import CliRunner

from shadow_pipeline.cli_ci import ci_dryrun_command
from shadow_pipeline.redis_io.server import RedisServer
from shadow_pipeline.reporting.ci_gate import PASSING, GateError, exit_code, gate_table

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github/workflows/dryrun.yml"
BIN = Path(sys.executable).parent
HOUR = "2024-08-09-00:00"  # the synthetic market's first hour


def _make(target: str, *assignments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    venv = BIN.parent
    make_vars = [f"VENV={venv}", f"DAGSTER_HOME={env['DAGSTER_HOME']}"]  # the Makefile's own would win over env
    command = [str(ROOT / ".ci/verdict"), "-o", str(venv / ".installed"), *make_vars, target, *assignments]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    home = tmp_path / "home"
    return {**env, "DAGSTER_HOME": str(home), "SHADOW_ARTIFACTS_DIR": str(tmp_path / "artifacts"), **extra}


def test_workflow_passes_actionlint_and_actionlint_can_fail(tmp_path: Path) -> None:
    lint = subprocess.run([str(BIN / "actionlint"), str(WORKFLOW)], capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("inputs.iterations", "inputs.windows"))
    refused = subprocess.run([str(BIN / "actionlint"), str(broken)], capture_output=True, text=True, check=False)
    assert refused.returncode != 0 and "windows" in refused.stdout


def test_workflow_runs_the_make_target_on_redis_7_with_its_inputs() -> None:
    workflow: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    inputs = workflow[True]["workflow_dispatch"]["inputs"]  # YAML 1.1 reads the key `on` as True
    assert inputs["iterations"]["options"] == ["6", "12", "24"]
    assert {"symbols", "duration"} <= set(inputs)
    job = workflow["jobs"]["dryrun"]
    assert job["services"]["redis"]["image"] == "redis:7"
    runs = "\n".join(step.get("run", "") for step in job["steps"])
    assert "make setup" in runs
    assert '.ci/verdict ci-dryrun ITERATIONS="$ITERATIONS" SYMBOLS="$SYMBOLS" DURATION="$DURATION"' in runs
    [upload] = [step for step in job["steps"] if step.get("uses", "").startswith("actions/upload-artifact")]
    assert upload["with"]["path"] == "artifacts/"


def test_ci_dryrun_end_to_end_and_the_exit_codes_of_make(tmp_path: Path, own_server: RedisServer) -> None:
    env = _env(tmp_path, REDIS_URL=own_server.url)
    done = _make("ci-dryrun", "ITERATIONS=6", "SYMBOLS=BTCUSDT", "DURATION=7", env=env)
    [report_file] = (tmp_path / "artifacts/ci").rglob("DRYRUN_ACCURACY_REPORT.json")
    report = json.loads(report_file.read_text())
    assert (report["hour"], report["symbol"], report["windows_compared"]) == (HOUR, "BTCUSDT", 6)
    assert done.returncode == (0 if report["status"] in PASSING else 1), done.stderr[-2000:]
    [row] = [line.split() for line in done.stdout.splitlines() if line.startswith(HOUR)]
    assert row[:4] == [HOUR, "BTCUSDT", "NO-GO", report["status"]]  # 7 windows: short of the 48 a Go needs

    instance = dg.DagsterInstance.from_config(env["DAGSTER_HOME"])
    runs = {run.job_name: run for run in instance.get_runs()}
    assert runs["feed_replay_job"].is_success
    assert runs["pipeline_job"].is_success and runs["pipeline_job"].tags["dagster/partition"] == f"{HOUR}|BTCUSDT"

    # The same No-Go through a cheaper target: .ci/verdict says 1, make itself 2; an unreadable snapshot is 2.
    audit_env = {**env, "SHADOW_ARTIFACTS_DIR": str(tmp_path / "artifacts/ci")}
    assert _make("shadow-audit", env=audit_env).returncode == 1
    plain = subprocess.run(
        ["make", "-o", str(BIN.parent / ".installed"), f"VENV={BIN.parent}", "shadow-audit"],
        cwd=ROOT,
        env=audit_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert plain.returncode == 2
    [snapshot] = (tmp_path / "artifacts/ci").rglob("POST_SHADOW_SNAPSHOT.json")
    snapshot.write_text('{"symbol": NaN}')
    assert _make("shadow-audit", env=audit_env).returncode == 2


def test_a_bad_make_variable_is_an_error_not_a_verdict(tmp_path: Path) -> None:
    done = _make("ci-dryrun", "ITERATIONS=nan", env=_env(tmp_path))
    assert done.returncode == 2
    assert "error: --iterations: Input should be a valid integer" in done.stderr


@pytest.mark.parametrize(
    ("args", "symbols", "said"),
    [
        (["--iterations", "0"], "BTCUSDT", "--iterations: Input should be greater than or equal to 1"),
        (["--iterations", "-3"], "BTCUSDT", "--iterations: Input should be greater than or equal to 1"),
        (["--iterations", "1e400"], "BTCUSDT", "--iterations: Input should be a valid integer"),
        (["--iterations", "6.5"], "BTCUSDT", "--iterations: Input should be a valid integer"),
        (["--iterations", ""], "BTCUSDT", "--iterations: Input should be a valid integer"),
        (["--iterations", "9" * 30], "BTCUSDT", "--iterations: Input should be less than or equal to 1000000"),
        (["--duration", "nan"], "BTCUSDT", "--duration: Input should be a finite number"),
        (["--duration", "inf"], "BTCUSDT", "--duration: Input should be a finite number"),
        (["--duration", "1e400"], "BTCUSDT", "--duration: Input should be a finite number"),
        (["--duration", "0"], "BTCUSDT", "--duration: Input should be greater than 0"),
        (["--duration", "ten"], "BTCUSDT", "--duration: Input should be a valid number"),
        (["--duration", "100000"], "BTCUSDT", "--duration: Input should be less than or equal to 10080"),
        (["--iterations", "12", "--duration", "6"], "BTCUSDT", "--duration 6 minutes hold fewer than --iterations"),
        ([], "BTC USDT", "$SHADOW_SYMBOLS"),
        ([], "BTCUSDT;rm -rf /", "$SHADOW_SYMBOLS"),
    ],
)
def test_hostile_options_are_one_error_line(args: list[str], symbols: str, said: str) -> None:
    done = CliRunner().invoke(ci_dryrun_command, args, env={"SHADOW_SYMBOLS": symbols, "REDIS_URL": None})
    assert done.exit_code == 2
    [line] = done.stderr.splitlines()
    assert line.startswith("error: ") and said in line


KEYS = f'"hour": "{HOUR}", "symbol": "BTCUSDT"'


def _report(folder: Path, text: str) -> None:
    folder.mkdir(parents=True)
    (folder / "DRYRUN_ACCURACY_REPORT.json").write_text(text)


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "no DRYRUN_ACCURACY_REPORT.json for"),
        (f'{{{KEYS}, "status": NaN}}', "NaN"),
        (f'{{{KEYS}, "status": "GREAT"}}', "status 'GREAT' is none of"),
        (f'{{{KEYS}, "status": 1}}', "must be strings"),
        ('["PASS"]', "not a dry-run accuracy report"),
        ("{" * 100_000, "nested"),
        (f'{{{KEYS}, "status": "PASS", "n": {"9" * 400}}}', "int"),
    ],
)
def test_the_gate_refuses_a_missing_or_unreadable_report(tmp_path: Path, text: str, said: str) -> None:
    if text:
        _report(tmp_path / "dryrun" / HOUR / "BTCUSDT", text)
    with pytest.raises(GateError, match=None) as refused:
        gate_table(tmp_path, [(HOUR, "BTCUSDT")])
    assert said in str(refused.value)


@pytest.mark.parametrize(
    ("status", "windows", "code"), [("PASS", 6, 0), ("WARN", 6, 0), ("PASS", 4, 1), ("FAIL", 6, 1), ("NO DATA", 6, 1)]
)
def test_the_gate_passes_only_on_the_windows_asked_for(tmp_path: Path, status: str, windows: int, code: int) -> None:
    _report(tmp_path / "dryrun" / HOUR / "BTCUSDT", f'{{{KEYS}, "status": "{status}", "windows_compared": {windows}}}')
    assert exit_code(gate_table(tmp_path, [(HOUR, "BTCUSDT")], windows_wanted=6)) == code
    with pytest.raises(GateError, match="no \\(hour, symbol\\) to gate"):
        gate_table(tmp_path, [], windows_wanted=6)
