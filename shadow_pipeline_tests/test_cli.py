"""The command line, run as a user runs it: a subprocess with its own environment."""

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import pandas as pd
import pytest
import redis

from shadow_pipeline.defs.live.checks import LIVE_MATCHES_BATCH
from shadow_pipeline.defs.partitions import FIRST_HOUR
from shadow_pipeline.defs.shadow.checks import MIN_VALID_WINDOWS
from shadow_pipeline.domain.kpis.run_notes import run_notes
from shadow_pipeline.parquet import read_frame
from shadow_pipeline.redis_io.server import RedisServer, start_server
from shadow_pipeline.settings import REDIS_URL_ENV

CLI = [sys.executable, "-m", "shadow_pipeline.cli"]
CLI_SHELL = " ".join(CLI)


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env or dict(os.environ), timeout=timeout)


def test_help_lists_commands() -> None:
    out = _run("--help")
    assert out.returncode == 0
    for command in ("replay", "ingest", "shadow", "report", "audit", "demo", "with-redis"):
        assert command in out.stdout
    replay_help = _run("replay", "--help").stdout
    for option in ("--source", "--speed", "--drop", "--duplicate", "--reorder", "--malformed", "--maxlen"):
        assert option in replay_help


def test_replay_prints_a_json_summary(redis_url: str, redis_client: redis.Redis, stream: str) -> None:
    out = _run(
        "replay",
        "--minutes",
        "0.2",
        "--symbols",
        "BTCUSDT",
        "--stream",
        stream,
        "--drop",
        "0.01",
        "--fault-seed",
        "3",
        "--json",
        "--redis-url",
        redis_url,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["entries_written"] == redis_client.xlen(stream) > 0
    assert summary["faults"]["dropped"] > 0
    assert summary["ticks_by_symbol"]["BTCUSDT"] - summary["faults"]["dropped"] == summary["entries_written"]


def test_redis_down_is_a_clear_error_with_no_password() -> None:
    env = {**os.environ, REDIS_URL_ENV: "redis://bob:hunter2@127.0.0.1:1/0"}
    out = _run("replay", "--minutes", "0.1", env=env)
    assert out.returncode == 2
    assert "cannot reach Redis at redis://bob:***@127.0.0.1:1/0" in out.stderr
    assert "hunter2" not in out.stderr + out.stdout


def test_bad_fault_rate_is_rejected() -> None:
    out = _run("replay", "--drop", "1.5")
    assert out.returncode == 2 and "outside [0, 1]" in out.stderr


def test_with_redis_hands_an_embedded_server_to_the_command() -> None:
    env = {k: v for k, v in os.environ.items() if k != REDIS_URL_ENV}
    probe = "import os, redis; print(redis.Redis.from_url(os.environ['REDIS_URL']).ping())"
    out = _run("with-redis", "--", sys.executable, "-c", probe, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_demo_runs_through_to_the_shadow_report_and_audit_agrees(tmp_path) -> None:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k != REDIS_URL_ENV}
    env["DAGSTER_HOME"] = str(tmp_path)
    env["SHADOW_DATA_DIR"] = str(tmp_path / "data")
    env["SHADOW_ARTIFACTS_DIR"] = str(tmp_path / "artifacts")
    out = _run("demo", "--minutes", "0.5", env=env)
    assert out.returncode == 0, out.stderr
    assert "feed_replay_job run" in out.stdout and ": success" in out.stdout
    assert (tmp_path / "data/demo/assets/normalized_ticks/2024-08-09-00:00/BTCUSDT.parquet").exists()
    # Half a minute is at most 6 windows of 5 s: the min-windows gate says No-Go, with its reason, for both.
    verdicts = re.findall(r"^2024-08-09-00:00 (BTCUSDT|ETHUSDT)\s+success\s+NO-GO\s+(\d)\s", out.stdout, re.M)
    assert sorted(symbol for symbol, _ in verdicts) == ["BTCUSDT", "ETHUSDT"], out.stdout
    for _, valid in verdicts:
        assert f"valid_windows {valid} < 48 (short by {48 - int(valid)})" in out.stdout
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert (tmp_path / f"artifacts/shadow/2024-08-09-00:00/{symbol}/POST_SHADOW_SNAPSHOT.json").exists()
    audited = _run("audit", env=env)
    assert audited.returncode == 1, audited.stderr
    assert "0 Go, 2 No-Go" in audited.stdout
    missing = _run("audit", str(tmp_path / "nowhere"), env=env)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr


def test_with_redis_stops_the_command_gracefully_then_redis() -> None:
    env = {k: v for k, v in os.environ.items() if k != REDIS_URL_ENV}
    script = (
        "import os, signal, sys, time, urllib.parse\n"
        "signal.signal(signal.SIGTERM, lambda *a: (print('graceful', flush=True), sys.exit(0)))\n"
        "print(urllib.parse.urlsplit(os.environ['REDIS_URL']).port, flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [*CLI, "with-redis", "--", sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    assert redis.Redis(port=port).ping()
    proc.terminate()
    assert proc.stdout.readline().strip() == "graceful"
    assert proc.wait(timeout=30) == 0
    try:
        redis.Redis(port=port, socket_connect_timeout=0.5).ping()
        raise AssertionError("the embedded Redis outlived with-redis")
    except redis.exceptions.ConnectionError:
        pass


def test_dryrun_validates_predictions_read_back_from_redis(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != REDIS_URL_ENV}
    env["DAGSTER_HOME"] = str(tmp_path)
    env["SHADOW_DATA_DIR"] = str(tmp_path / "data")
    env["SHADOW_ARTIFACTS_DIR"] = str(tmp_path / "artifacts")
    script = (
        f"{CLI_SHELL} replay --source synthetic --symbols BTCUSDT --minutes 3 > /dev/null && "
        f"{CLI_SHELL} dryrun --symbols BTCUSDT --iterations 4 --duration 30"
    )
    out = _run("with-redis", "--", "sh", "-c", script, env=env)
    assert out.returncode in (0, 1), out.stderr
    rows = re.findall(r"^2024-08-09-00:00 BTCUSDT\s+(success|failed)\s+(PASS|WARN|FAIL)\s+4\s", out.stdout, re.M)
    assert len(rows) == 1, out.stdout
    run, status = rows[0]
    assert run == "success"  # a FAIL is a verdict: exit 1, but the run did not crash
    assert out.returncode == (1 if status == "FAIL" else 0)
    report = tmp_path / "artifacts/dryrun/2024-08-09-00:00/BTCUSDT/DRYRUN_ACCURACY_REPORT.json"
    assert json.loads(report.read_text())["predictions"].startswith("6 records from shadow:kpi:stream:BTCUSDT")


def _with(url: str, tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, REDIS_URL_ENV: url, "DAGSTER_HOME": str(tmp_path)}
    env["SHADOW_DATA_DIR"] = str(tmp_path / "data")
    env["SHADOW_ARTIFACTS_DIR"] = str(tmp_path / "artifacts")
    return env


def test_shadow_ingests_from_the_stream_it_is_given(own_server: RedisServer, tmp_path: Path) -> None:
    env = _with(own_server.url, tmp_path)
    for stream, minutes in (("other", "1"), ("lob:ticks", "0.5")):
        replayed = _run("replay", "--symbols", "BTCUSDT", "--minutes", minutes, "--stream", stream, env=env)
        assert replayed.returncode == 0, replayed.stderr
    out = _run("shadow", "--stream", "other", "--symbols", "BTCUSDT", "--window-seconds", "5", env=env)
    assert out.returncode == 1, out.stderr  # a minute of market is a No-Go (too few windows): a verdict, exit 1
    assert re.search(r"^2024-08-09-00:00 BTCUSDT\s+success\s+NO-GO", out.stdout, re.M), out.stdout
    client = redis.Redis.from_url(own_server.url, decode_responses=True)
    assert [g["name"] for g in client.xinfo_groups("other")] == ["shadow"]
    assert client.xinfo_groups("lob:ticks") == []  # the default stream was never read
    stored = pd.read_parquet(tmp_path / "data/assets/normalized_ticks/2024-08-09-00:00/BTCUSDT.parquet")
    assert len(stored) == client.xlen("other")
    # The CLI export goes through exported_kpis on the stored partition; a second export adds nothing.
    first = _run("export", "--mode", "both", env=env)
    assert first.returncode == 0, first.stderr
    windows = client.xlen("shadow:kpi:stream:BTCUSDT")
    assert windows > 0 and client.hget("shadow:kpi:BTCUSDT", "partition") == "2024-08-09-00:00|BTCUSDT"
    again = _run("export", "--mode", "both", env=env)
    assert again.returncode == 0 and client.xlen("shadow:kpi:stream:BTCUSDT") == windows
    assert re.search(rf"stream {windows}", first.stdout) and re.search(r"stream 0", again.stdout), again.stdout


def test_shadow_min_lot_overrides_the_profile_for_the_run(own_server: RedisServer, tmp_path: Path) -> None:
    env = _with(own_server.url, tmp_path)
    replayed = _run("replay", "--symbols", "BTCUSDT", "--minutes", "1", env=env)
    assert replayed.returncode == 0, replayed.stderr
    args = ("shadow", "--symbols", "BTCUSDT", "--window-seconds", "5")
    out = _run(*args, "--min_lot", "0.004", env=env)
    assert out.returncode == 1, out.stderr  # a minute of market: No-Go, a verdict
    assert re.search(r"^2024-08-09-00:00 BTCUSDT\s+success\s+NO-GO", out.stdout, re.M), out.stdout
    stored = tmp_path / "data/assets/shadow_iterations/2024-08-09-00:00/BTCUSDT.parquet"
    assert run_notes(read_frame(str(stored))).params.min_lot == 0.004
    # the profile rejects a size off its lot_step: refused with the rule before any run, one error line, exit 2
    off_step = _run(*args, "--min-lot", "0.0025", env=env)
    assert off_step.returncode == 2, off_step.stderr
    said = [line for line in off_step.stderr.splitlines() if line.startswith("error: ")]
    assert said == [
        "error: override of profile 'moderate' for BTCUSDT: min_lot: 0.0025 is not a positive multiple of "
        "BTCUSDT's lot_step 0.001"
    ], off_step.stderr
    assert off_step.stdout == ""
    # a value no profile can take is refused before any run
    for option, value in (("--min_lot", "0"), ("--touch_dwell_ms", "-1")):
        refused = _run(*args, option, value, env=env)
        assert refused.returncode == 2 and f"Invalid value for '{option}'" in refused.stderr, refused.stderr


def test_an_hour_outside_the_partitions_is_one_line_and_exit_2(own_server: RedisServer, tmp_path: Path) -> None:
    for command in ("shadow", "dryrun"):
        out = _run(command, "--hour", "2019-05-01-00:00", "--symbols", "BTCUSDT", env=_with(own_server.url, tmp_path))
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
        assert "2019-05-01-00:00" in lines[0] and FIRST_HOUR in lines[0] and "SHADOW_FIRST_HOUR" in lines[0]


def test_an_hour_older_than_the_days_kept_names_the_variable(own_server: RedisServer, tmp_path: Path) -> None:
    env = {**_with(own_server.url, tmp_path), "SHADOW_RETENTION_DAYS": "2"}
    old = (datetime.now(UTC) - timedelta(days=5)).strftime("%Y-%m-%d-%H:00")
    out = _run("shadow", "--hour", old, "--symbols", "BTCUSDT", env=env)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: hour {old} is before the hourly partitions"), out.stderr
    assert "raise $SHADOW_RETENTION_DAYS (now 2" in lines[0] and "SHADOW_FIRST_HOUR" not in lines[0]
    # Without --hour, the stream's hours before the start are left out, not an error for the whole command.
    replayed = _run("replay", "--symbols", "BTCUSDT", "--minutes", "0.5", "--stream", "old", env=env)
    assert replayed.returncode == 0, replayed.stderr
    spanned = _run("shadow", "--stream", "old", "--symbols", "BTCUSDT", env=env)
    said = [line for line in spanned.stderr.splitlines() if line.startswith("error: ")]
    assert spanned.returncode == 2 and said == [
        f"error: stream old holds no finished hour from the first partition {_moving_start(2)} on"
    ], spanned.stderr


@pytest.mark.parametrize(("setting", "partition"), [("false", None), ("true", "2024-08-09-00:00|BTCUSDT")])
def test_the_checks_are_partitioned_as_the_variable_says(
    own_server: RedisServer, tmp_path: Path, setting: str, partition: str | None
) -> None:
    """A shadow run's gate evaluations carry their partition, or with SHADOW_PARTITIONED_CHECKS=false none (each
    belongs to its partition's materialization); the standalone live check keeps its partition either way."""
    env = {**_with(own_server.url, tmp_path), "SHADOW_PARTITIONED_CHECKS": setting}
    replayed = _run("replay", "--symbols", "BTCUSDT", "--minutes", "0.5", env=env)
    assert replayed.returncode == 0, replayed.stderr
    out = _run("shadow", "--symbols", "BTCUSDT", "--window-seconds", "5", env=env)
    assert out.returncode == 1, out.stderr  # half a minute of market is a No-Go: a verdict
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:

        def evaluations(asset: str, check: str) -> list[tuple[str | None, str]]:
            key = dg.AssetCheckKey(dg.AssetKey(asset), check)
            history = instance.event_log_storage.get_asset_check_execution_history(key, limit=5)
            return [(record.partition, record.status.value) for record in history]

        assert evaluations("shadow_report", MIN_VALID_WINDOWS) == [(partition, "FAILED")]
        assert evaluations("shadow_iterations", LIVE_MATCHES_BATCH) == [("2024-08-09-00:00|BTCUSDT", "SUCCEEDED")]


def _moving_start(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%d-00:00")


def test_wrong_redis_password_exits_2_with_the_redacted_reason(tmp_path: Path) -> None:
    server = start_server(["--requirepass", "s3cret"])
    try:
        port = urlsplit(server.url).port
        for url in (f"redis://:wrong-pw@127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/0"):
            for command in ("shadow", "dryrun", "export"):
                out = _run(command, "--hour", "2024-08-09-00:00", env=_with(url, tmp_path))
                assert out.returncode == 2, (command, url, out.stdout, out.stderr)
                assert "Traceback" not in out.stderr and "wrong-pw" not in out.stderr + out.stdout
                assert "Redis at redis://" in out.stderr, out.stderr
    finally:
        server.stop()


# Refused credentials and an unreachable server, on every command that talks to Redis: exit 2, one "error:" line
# on stderr that says why and names the server, the password nowhere. A CLI process spends seconds importing
# Dagster, so one process imports the CLI once and forks a child per case; each child sets its own environment
# and standard streams and runs the CLI's entry point as `python -m shadow_pipeline.cli` would.
FORK_RUNNER = r"""
import json, os, sys
import shadow_pipeline.cli as cli
cases = json.load(open(sys.argv[1]))
children = {}
for index, case in enumerate(cases):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.environ.clear()
            os.environ.update(case["env"])
            for fd, name in ((1, "stdout"), (2, "stderr")):
                opened = os.open(case[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
                os.dup2(opened, fd)
                os.close(opened)
            try:
                cli.main.main(args=case["args"], prog_name="shadow-pipeline")
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:
                import traceback
                traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    children[pid] = index
codes = [None] * len(cases)
while children:
    pid, status = os.wait()
    codes[children.pop(pid)] = os.waitstatus_to_exitcode(status)
json.dump(codes, open(sys.argv[2], "w"))
"""


def _run_forked(runs: list[tuple[list[str], dict[str, str]]], folder: Path) -> list[subprocess.CompletedProcess[str]]:
    """Each (args, env) through the CLI's entry point, in children forked from one process that imported it."""
    cases: list[dict[str, Any]] = [
        {"args": args, "env": env, "stdout": str(folder / f"{i}.out"), "stderr": str(folder / f"{i}.err")}
        for i, (args, env) in enumerate(runs)
    ]
    (folder / "cases.json").write_text(json.dumps(cases))
    runner = subprocess.run(
        [sys.executable, "-c", FORK_RUNNER, str(folder / "cases.json"), str(folder / "codes.json")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert runner.returncode == 0, runner.stderr
    codes = json.loads((folder / "codes.json").read_text())
    return [
        subprocess.CompletedProcess(
            case["args"], code, Path(case["stdout"]).read_text(), Path(case["stderr"]).read_text()
        )
        for case, code in zip(cases, codes, strict=True)
    ]


SECRET = "Zq8-Tw3-secret"
HOUR = "2024-08-09-00:00"
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING) ")
CREDENTIALS = {
    "wrong-password": (f"alice:wrong-{SECRET}@", "refused the credentials: invalid username-password pair"),
    "wrong-user": (f"mallory:{SECRET}@", "refused the credentials: invalid username-password pair"),
    "no-password": ("", "refused the credentials: Authentication required"),
    "unreachable": (f"alice:{SECRET}@", "cannot reach Redis"),
    # PING allowed, nothing else: the refusal comes from the command's first real call, or inside a Dagster run.
    "noperm": (f"pinger:{SECRET}@", "no permissions"),
}
COMMANDS: dict[str, list[str]] = {
    "replay": ["replay", "--minutes", "0.05", "--symbols", "BTCUSDT"],
    "ingest": ["ingest", "--drain", "--reconnect-seconds", "0.2"],
    "shadow": ["shadow", "--hour", HOUR, "--symbols", "BTCUSDT"],
    "dryrun": ["dryrun", "--hour", HOUR, "--symbols", "BTCUSDT"],
    "export": ["export", "--hour", HOUR, "--symbols", "BTCUSDT"],
    "export-src": ["export", "--src", "POST_SHADOW_SNAPSHOT.json"],
    "with-redis": ["with-redis", "--", sys.executable, "-c", "pass"],
    "demo": ["demo", "--minutes", "0.05", "--symbols", "BTCUSDT"],
}
# A PING-only user gets past the pre-flight PING: these commands fail on their first real call (with-redis and
# export need nothing more than PING before they do something else).
NOPERM_COMMANDS = ("replay", "ingest", "shadow", "dryrun", "demo")
CASES = [(c, k) for c in COMMANDS for k in CREDENTIALS if k != "noperm" or c in NOPERM_COMMANDS]


@pytest.fixture(scope="module")
def refusals(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[tuple[str, str], subprocess.CompletedProcess[str]]]:
    server = start_server(
        [
            *("--user", "default", "off"),
            *("--user", "alice", "on", f">{SECRET}", "~*", "+@all"),
            *("--user", "pinger", "on", f">{SECRET}", "~*", "-@all", "+ping"),
        ]
    )
    port = urlsplit(server.url).port
    runs = []
    for command, credentials in CASES:
        userinfo = CREDENTIALS[credentials][0]
        url = f"redis://{userinfo}127.0.0.1:{1 if credentials == 'unreachable' else port}/0"
        home = tmp_path_factory.mktemp(f"{command}-{credentials}")
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # no first-run banner on stderr
        runs.append((COMMANDS[command], _with(url, home)))
    try:
        yield dict(zip(CASES, _run_forked(runs, tmp_path_factory.mktemp("forked")), strict=True))
    finally:
        server.stop()


@pytest.mark.parametrize(("command", "credentials"), CASES)
def test_refused_or_unreachable_redis_exits_2_with_one_redacted_line(
    refusals: dict[tuple[str, str], subprocess.CompletedProcess[str]], command: str, credentials: str
) -> None:
    out = refusals[command, credentials]
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert SECRET not in out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    said = [line for line in out.stderr.splitlines() if line.strip() and not LOG_LINE.match(line)]
    assert len(said) == 1 and said[0].startswith("error: "), out.stderr
    assert CREDENTIALS[credentials][1] in said[0], said[0]
    if credentials == "noperm" and command in ("shadow", "dryrun"):  # inside the Dagster run: its root cause
        assert (
            said[0].startswith("error: 1 of 1 runs failed (2024-08-09-00:00 BTCUSDT): ")
            and "NoPermissionError" in said[0]
        )
        assert re.search(r"^2024-08-09-00:00 BTCUSDT\s+failed\s+run failed\s+.*NoPermissionError", out.stdout, re.M)
    elif credentials == "noperm":
        assert "NoPermissionError" in said[0], said[0]
    else:
        assert "Redis at redis://" in said[0] and ":***@" in said[0] if CREDENTIALS[credentials][0] else True
