"""`shadow-pipeline live-validate` as `make shadow-live-validate` runs it: feed, ingest and live shadow as services
on a real Redis against the local venue server, then the dry-run; and a table of hostile options, each one
`error:` line and exit 2."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from shadow_pipeline.redis_io.keys import feed_seq_key, live_kpi_hash, live_kpi_stream, live_position_hash
from shadow_pipeline.settings import REDIS_URL_ENV

STREAM = "test:live-validate:ticks"
SYMBOL = "BTCUSDT"
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def _run(args: list[str], redis_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        REDIS_URL_ENV: redis_url,
        "DAGSTER_HOME": str(tmp_path),
        "SHADOW_DATA_DIR": str(tmp_path / "data"),
        "SHADOW_ARTIFACTS_DIR": str(tmp_path / "artifacts"),
    }
    command = [sys.executable, "-m", "shadow_pipeline.cli", "live-validate", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def _live_keys(client: redis.Redis) -> list[str]:
    live = [live_kpi_stream(SYMBOL), live_kpi_hash(SYMBOL), f"{live_kpi_stream(SYMBOL)}:ids"]
    return [STREAM, feed_seq_key(STREAM, SYMBOL), live_position_hash(STREAM), *live]


def test_three_live_windows_then_the_dry_run(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(*_live_keys(client))
    try:
        done = _run(
            [
                "--symbols",
                SYMBOL,
                "--windows",
                "3",
                "--window-seconds",
                "5",
                "--stream",
                STREAM,
                "--logs",
                str(tmp_path),
            ],
            redis_url,
            tmp_path,
        )
        assert done.returncode in (0, 1), done.stderr[-2000:]
        assert f"live windows: {SYMBOL} 3/3" in done.stderr
        row = next(line for line in done.stdout.splitlines() if f"| {SYMBOL}" in line)
        assert "live windows equal" in row and "success" in row, done.stdout
        for service in ("feed", "ingest", "live-shadow"):
            assert (tmp_path / f"{service}.log").stat().st_size > 0
        feed_summary = (tmp_path / "feed.log").read_text().strip().splitlines()[-1]
        assert '"connections": 1' in feed_summary and '"reconnects": {}' in feed_summary, feed_summary
        assert client.xlen(live_kpi_stream(SYMBOL)) >= 3
    finally:
        client.delete(*_live_keys(client))
        client.close()


HOSTILE = [
    (["--windows", "0"], "--windows"),
    (["--speed", "nan"], "--speed"),
    (["--venue", "kraken-spot"], "--venue"),
    (["--recording", "/nonexistent/file.gz"], "/nonexistent/file.gz"),
    (["--window-seconds", "7"], "does not divide 3600"),
    (["--profile", "nope"], "nope"),
    (["--symbols", "btc usdt"], "btc usdt"),
]


@pytest.mark.parametrize(("args", "named"), HOSTILE, ids=[" ".join(a) for a, _ in HOSTILE])
def test_hostile_options_give_one_error_line(args: list[str], named: str, redis_url: str, tmp_path: Path) -> None:
    done = _run([*args, "--stream", STREAM, "--timeout", "60"], redis_url, tmp_path)
    errors = [line for line in done.stderr.splitlines() if line.strip() and not _LOG_LINE.match(line)]
    assert done.returncode == 2, done.stderr
    assert len(errors) == 1 and errors[0].startswith("error:") and named in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_an_earlier_run_s_keys_are_refused_not_counted(redis_url: str, tmp_path: Path) -> None:
    """Live records of the instrument (from an earlier validation) would count as this run's windows at once."""
    client = redis.Redis.from_url(redis_url)
    client.delete(*_live_keys(client))
    client.xadd(live_kpi_stream(SYMBOL), {"left": "by an earlier run"})
    try:
        done = _run(["--symbols", SYMBOL, "--stream", STREAM, "--logs", str(tmp_path)], redis_url, tmp_path)
        errors = [line for line in done.stderr.splitlines() if line.strip() and not _LOG_LINE.match(line)]
        assert done.returncode == 2 and len(errors) == 1, done.stderr
        assert errors[0].startswith("error: an earlier run left ") and live_kpi_stream(SYMBOL) in errors[0]
        assert not (tmp_path / "feed.log").exists()  # refused before any service started
    finally:
        client.delete(*_live_keys(client))
        client.close()
