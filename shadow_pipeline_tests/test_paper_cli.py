"""`shadow-pipeline bot`, `venue` and `loop` as a user runs them: the happy path on a real Redis, and a table of
hostile options, each one `error:` line and exit 2, never a traceback."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from shadow_pipeline.domain.validation.hftbacktest_engine import hftbacktest_available
from shadow_pipeline.redis_io.keys import append_index, fills_stream, order_stream
from shadow_pipeline.settings import REDIS_URL_ENV
from shadow_pipeline_tests.ingest_helpers import replay_synthetic

HOUR, SYMBOL = "2026-02-01-10:00", "BTCUSDT"
STREAM = "test:paper:ticks"


def _run(args: list[str], redis_url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, REDIS_URL_ENV: redis_url, "DAGSTER_HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "shadow_pipeline.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


@pytest.mark.skipif(not hftbacktest_available(), reason="the paper venue needs the hbt extra")
def test_the_bot_publishes_and_the_venue_fills_once(redis_url: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(redis_url)
    keys = [STREAM, order_stream(SYMBOL), fills_stream(SYMBOL), append_index(fills_stream(SYMBOL))]
    client.delete(*keys)
    try:
        replay_synthetic(client, STREAM, seconds=60, symbols=(SYMBOL,), start="2026-02-01T10:00:00Z")
        where = ["--hour", HOUR, "--symbols", SYMBOL, "--stream", STREAM]
        bot = _run(["bot", *where], redis_url, tmp_path)
        assert bot.returncode == 0, bot.stderr
        published = int(bot.stdout.split(" intents published")[0].rsplit(" ", 1)[1])
        assert published > 0 and client.xlen(order_stream(SYMBOL)) == published
        first = _run(["venue", *where], redis_url, tmp_path)
        again = _run(["venue", *where], redis_url, tmp_path)
        assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
        fills = client.xlen(fills_stream(SYMBOL))
        assert fills > 0 and f"{fills} fills ({fills} new)" in first.stdout
        assert f"{fills} fills (0 new)" in again.stdout and client.xlen(fills_stream(SYMBOL)) == fills
        assert "market top of book: the tick stream (no depth stream)" in first.stdout
    finally:
        client.delete(*keys)
        client.close()


HOSTILE = [
    (["bot", "--hour", "2026-13-01-10:00", "--symbols", SYMBOL], "2026-13-01-10:00"),
    (["bot", "--hour", HOUR, "--symbols", SYMBOL, "--profile", "nope"], "unknown profile 'nope'"),
    (["bot", "--hour", HOUR, "--symbols", SYMBOL, "--profile", "external"], "strategy 'external' has no decide"),
    (["bot", "--hour", HOUR, "--symbols", "btc usdt"], "btc usdt"),
    (["venue", "--hour", HOUR, "--symbols", SYMBOL, "--entry-latency-ms", "nan"], "nan"),
    (["venue", "--hour", HOUR, "--symbols", SYMBOL, "--entry-latency-ms", "-1"], "-1"),
    (["venue", "--hour", HOUR, "--symbols", SYMBOL, "--queue-model", "fifo"], "fifo"),
    (["venue", "--symbols", SYMBOL], "--hour"),
    (["loop", "--recording", "/nonexistent/file.gz"], "/nonexistent/file.gz"),
    (["loop", "--recording", "{binary}"], "expected '<local timestamp> <frame>'"),
    (["loop", "--recording", "{text}"], "expected '<local timestamp> <frame>'"),
    (["loop", "--recording", "{fifo}"], "not a regular file"),
    (["loop", "--minutes", "-3"], "-3"),
    (["loop", "--shadow-profile", "moderate", "--minutes", "0.2"], "external"),
]


@pytest.mark.parametrize(("args", "words"), HOSTILE, ids=[" ".join(a[:1] + a[-2:]) for a, _ in HOSTILE])
def test_a_hostile_option_is_one_error_line(args: list[str], words: str, redis_url: str, tmp_path: Path) -> None:
    files = {"binary": tmp_path / "binary.gz", "text": tmp_path / "text.gz", "fifo": tmp_path / "fifo.gz"}
    files["binary"].write_bytes(bytes(range(256)) * 8)
    files["text"].write_bytes(gzip.compress(b"not json at all\n"))
    os.mkfifo(files["fifo"])
    done = _run([a.format(**files) for a in args], redis_url, tmp_path)
    assert done.returncode == 2, (done.stdout[-500:], done.stderr[-2000:])
    logged = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2},\d{3} (INFO|WARNING) ")  # log lines, not errors
    lines = [line for line in done.stderr.splitlines() if line.strip() and not logged.match(line)]
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr[-2000:]
    assert words in lines[0], lines[0]
    assert "Traceback" not in done.stderr
