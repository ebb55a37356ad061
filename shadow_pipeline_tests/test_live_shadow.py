"""The live shadow: its close rule, its records in Redis, the check that holds it to the batch (through Dagster,
on a real Redis), and its command line."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import redis

from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.live.checks import LIVE_MATCHES_BATCH, live_windows_match_batch
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.shadow.assets import ShadowConfig, shadow_iterations
from shadow_pipeline.domain.market.faults import FaultSpec
from shadow_pipeline.domain.market.reorder import DEFAULT_WATERMARK_NS, ReorderBuffer
from shadow_pipeline.domain.market.windows import hour_keys
from shadow_pipeline.domain.simulation.simulator import simulate
from shadow_pipeline.domain.strategies.external.from_sends import intents_from_sends
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.live.closing import Frontier, closing_arrivals, thresholds
from shadow_pipeline.live.comparison import compare
from shadow_pipeline.live.shadow_loop import LiveOptions, LiveShadow
from shadow_pipeline.parquet import read_frame
from shadow_pipeline.redis_io.keys import dead_letter_stream, live_kpi_hash, live_kpi_stream, order_stream
from shadow_pipeline.redis_io.live_kpis import read_live_records
from shadow_pipeline.redis_io.order_stream import publish_intents
from shadow_pipeline_tests.ingest_helpers import pipeline_resources, replay_synthetic
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.live_helpers import (
    SYMBOL,
    WINDOW_SECONDS,
    clear_live_keys,
    closed_windows,
    entry_in_window,
    run_live,
)
from shadow_pipeline_tests.shadow_helpers import shadow_run_config

_S = 1_000_000_000
SECONDS = 120  # of synthetic market: 12 windows of 10 s
ROOT = Path(__file__).resolve().parents[1]


# -- the close rule (pure) -----------------------------------------------------------------------------------


def test_the_frontier_releases_what_the_reorder_buffer_releases() -> None:
    rng = np.random.default_rng(5)
    ts = np.cumsum(rng.integers(0, 30_000_000, 3000)) + rng.integers(-60_000_000, 60_000_000, 3000)  # late ticks
    frontier, buffer = Frontier(DEFAULT_WATERMARK_NS), ReorderBuffer(DEFAULT_WATERMARK_NS, capacity=10**6)
    released = np.iinfo(np.int64).min
    got = []
    for batch in np.array_split(ts, 97):
        got.append(frontier.advance(batch))
    expected = []
    for value in ts:
        out = buffer.push(pd.DataFrame({"symbol": ["X"], "seq": [0], "ts_server": [value]})).released
        if len(out):
            released = max(released, int(out["ts_server"].max()))
        expected.append(released)
    assert np.array_equal(np.concatenate(got), expected)


def test_a_window_closes_at_end_plus_horizon_and_the_last_at_the_next_hour() -> None:
    hour = 1_723_161_600 * _S
    needed = thresholds(hour // (10 * _S), 360, 10 * _S, 5 * _S, hour + 3600 * _S)
    assert needed[0] == hour + 15 * _S and needed[1] == hour + 25 * _S
    assert needed[-1] == hour + 3600 * _S  # 3600 + 5 s would be the next hour's: a tick of it closes the window
    frontier = Frontier(40_000_000)
    arrivals = np.array([hour + 14 * _S, hour + 15 * _S, hour + 15 * _S + 40_000_000, hour + 15 * _S + 40_000_001])
    released = frontier.advance(arrivals)
    # the tick at 15 s is released only by one more than 40 ms newer: the fourth arrival closes window 0
    assert closing_arrivals(released, needed[:2]).tolist() == [3, 4]


def test_live_and_batch_records_compare_kpi_by_kpi() -> None:
    batch = [{"iteration": 0, "net_bps": 1.0, "p95_latency_ms": None, "valid": True, "timestamp": "t"}]
    same = [{**batch[0], "net_bps": 1.0 + 1e-12}]
    assert compare(same, batch).passed
    other = [{**batch[0], "net_bps": 1.1}, {**batch[0], "iteration": 3}]
    result = compare(other, batch)
    assert not result.passed and result.differing_windows == [0, 3] and result.missing_in_batch == [3]
    assert [d.kpi for d in result.differences] == ["net_bps"]


# -- through Dagster, on Redis ---------------------------------------------------------------------------------


def _materialize(
    redis_url: str,
    stream: str,
    folder: Path,
    hour: str,
    profile: str = "moderate",
    shadow_only: bool = False,
    profiles_file: str | None = None,
) -> dg.ExecuteInProcessResult:
    """Ingest and shadow the partition (``shadow_only``: the shadow again on the ticks ingested before)."""
    with dagster_instance() as instance:
        return dg.materialize(
            [landing_zone, raw_ticks, normalized_ticks, shadow_iterations, live_windows_match_batch],
            selection=[shadow_iterations] if shadow_only else None,
            partition_key=partition_key(hour, SYMBOL),
            resources=pipeline_resources(redis_url, stream, folder, "live-test"),
            run_config=shadow_run_config(window_seconds=WINDOW_SECONDS, profile=profile, profiles_file=profiles_file),
            instance=instance,
            raise_on_error=False,
        )


def _evaluation(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == LIVE_MATCHES_BATCH]
    return evaluation


@pytest.fixture
def replayed(redis_client: redis.Redis, stream: str) -> Iterator[str]:
    """``SECONDS`` of the synthetic market for SYMBOL in ``stream``; no live records of SYMBOL yet."""
    clear_live_keys(redis_client, stream)
    replay_synthetic(redis_client, stream, SECONDS, symbols=(SYMBOL,))
    yield stream
    clear_live_keys(redis_client, stream)


def _hour(client: redis.Redis, stream: str) -> str:
    return str(hour_keys(np.array([_first_ts(client, stream)]))[0])


def _first_ts(client: redis.Redis, stream: str) -> int:
    entries: list = client.xrange(stream, count=1)  # type: ignore[assignment]
    return int(entries[0][1]["ts_server"])


def test_live_windows_equal_the_partitions_and_the_check_passes(
    redis_url: str, redis_client: redis.Redis, replayed: str, tmp_path: Path
) -> None:
    summary = run_live(redis_client, replayed)
    hour = _hour(redis_client, replayed)
    result = _materialize(redis_url, replayed, tmp_path, hour)
    assert result.success
    evaluation = _evaluation(result)
    assert evaluation.passed, evaluation.description
    iterations = read_frame(str(tmp_path / "assets/shadow_iterations" / hour / f"{SYMBOL}.parquet"))
    ticks = read_frame(str(tmp_path / "assets/normalized_ticks" / hour / f"{SYMBOL}.parquet"))
    params, _ = resolve(load_profiles(), "moderate", SYMBOL)
    expected = closed_windows(
        iterations["window_end"].to_numpy(),
        ticks["ts_server"].to_numpy(),
        params.markout_horizon_s,
        DEFAULT_WATERMARK_NS,
    )
    assert expected == len(iterations) - 1  # every window but the last: its end + 5 s is past the market's end
    assert evaluation.metadata["live_windows"].value == expected == summary.published
    live = read_live_records(redis_client, SYMBOL)
    assert [r["iteration"] for r in live] == list(range(expected))
    assert all(r["source"] == "live" and r["published_ns"] >= r["closed_ns"] > 0 for r in live)
    assert all(r["verdict"] == "PENDING" and "reasons" not in r for r in live)  # the hour is judged when it ends
    latest = redis_client.hgetall(live_kpi_hash(SYMBOL))
    assert latest["iteration"] == str(expected - 1) and latest["source"] == "live" and latest["verdict"] == "PENDING"
    # a restart resumes at the hour's first entry and republishes nothing
    again = run_live(redis_client, replayed)
    assert again.published == 0 and again.already == expected
    assert redis_client.xlen(live_kpi_stream(SYMBOL)) == expected


def test_a_tick_altered_after_the_fact_fails_the_check_naming_its_window(
    redis_url: str, redis_client: redis.Redis, replayed: str, tmp_path: Path
) -> None:
    run_live(redis_client, replayed)
    hour = _hour(redis_client, replayed)
    first = _first_ts(redis_client, replayed)
    window = 10 * _S
    start = (first // window + 3) * window  # window 3
    entry_id, fields = entry_in_window(redis_client, replayed, start, start + window)
    redis_client.xdel(replayed, entry_id)
    fields["bid_qty"] = fields["ask_qty"] = "0.001"  # one lot at the touch: the queue ahead of a quote empties
    redis_client.xadd(replayed, fields)  # same seq, arriving late
    result = _materialize(redis_url, replayed, tmp_path, hour)
    evaluation = _evaluation(result)
    assert not evaluation.passed
    assert evaluation.description is not None and "(windows 3" in evaluation.description
    table = str(evaluation.metadata["differences"].value)
    assert re.search(r"^\|\s+3 \| \w+", table, re.MULTILINE) and not re.search(r"^\|\s+[012] \|", table, re.MULTILINE)


def test_a_later_hours_tick_closes_the_hours_last_windows(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    clear_live_keys(redis_client, stream)
    try:
        replay_synthetic(redis_client, stream, 60, symbols=(SYMBOL,), start="2024-08-09T00:59:30Z")
        summary = run_live(redis_client, stream)
        result = _materialize(redis_url, stream, tmp_path, "2024-08-09-00:00")
        evaluation = _evaluation(result)
        assert evaluation.passed, evaluation.description
        iterations = read_frame(str(tmp_path / "assets/shadow_iterations/2024-08-09-00:00" / f"{SYMBOL}.parquet"))
        assert evaluation.metadata["live_windows"].value == len(iterations) == 3  # all, the last at the hour's end
        # the next hour's: all but the last (its end + 5 s is past the market's end); the position has moved on
        assert summary.published == 3 + 2
        assert run_live(redis_client, stream).ticks < summary.ticks
    finally:
        clear_live_keys(redis_client, stream)


def test_a_first_start_at_the_newest_entry_reads_only_new_ones(redis_client: redis.Redis, replayed: str) -> None:
    assert run_live(redis_client, replayed, start_id="$").ticks == 0
    assert run_live(redis_client, replayed).ticks == 0  # a restart resumes after the newest entry read or pinned


def test_no_live_windows_pass_and_say_so(
    redis_url: str, redis_client: redis.Redis, replayed: str, tmp_path: Path
) -> None:
    evaluation = _evaluation(_materialize(redis_url, replayed, tmp_path, _hour(redis_client, replayed)))
    assert evaluation.passed and evaluation.description == "no live windows for this hour"


# -- the command ---------------------------------------------------------------------------------------------


def _command(redis_url: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "shadow_pipeline.cli_live", "--redis-url", redis_url, *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_command_until_idle_publishes_and_summarizes(redis_url: str, redis_client: redis.Redis, replayed: str) -> None:
    textfile = Path(f"/tmp/live-{os.getpid()}.prom")
    done = subprocess.run(
        _command(
            redis_url,
            "--stream",
            replayed,
            "--window-seconds",
            "10",
            "--until-idle",
            "0.5",
            "--metrics-textfile",
            str(textfile),
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "11 windows published (0 published before)" in done.stdout
    metrics = textfile.read_text()
    textfile.unlink()
    assert 'shadow_live_windows_published_total{symbol="BTCUSDT"} 11.0' in metrics
    assert 'shadow_live_kpi{kpi="net_bps",profile="moderate",symbol="BTCUSDT"}' in metrics


def test_command_stops_on_sigterm(redis_url: str, replayed: str) -> None:
    child = subprocess.Popen(
        _command(redis_url, "--stream", replayed, "--window-seconds", "10"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        deadline = time.monotonic() + 60
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        while not client.exists(live_kpi_stream(SYMBOL)) and time.monotonic() < deadline:
            time.sleep(0.2)  # serving: wait until it has published, then stop it
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert out.startswith("live-shadow: ") and "windows published" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--window-seconds", "7"], "error: window_seconds: window_seconds 7 does not divide 3600"),
        (["--profile", "nope"], "unknown profile 'nope'"),
        (["--bogus"], "error: No such option '--bogus'"),
    ],
)
def test_bad_options_are_one_error_line(redis_url: str, args: list[str], message: str) -> None:
    done = subprocess.run(
        _command(redis_url, *args), capture_output=True, text=True, timeout=60, env=_env(), check=False
    )
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_a_bot_s_order_stream_is_shadowed_live_as_the_partition_shadows_it(
    redis_url: str, redis_client: redis.Redis, replayed: str, tmp_path: Path
) -> None:
    """Profile ``external``: the live shadow fills the bot's own orders (here the built-in strategy's decisions on
    the same ticks, published as intents), and its windows equal the partition's, which reads the same stream."""
    hour = _hour(redis_client, replayed)
    redis_client.delete(order_stream(SYMBOL), dead_letter_stream(order_stream(SYMBOL)))
    try:
        built_in = _materialize(redis_url, replayed, tmp_path, hour)
        assert built_in.success
        ticks = read_frame(str(tmp_path / "assets/normalized_ticks" / hour / f"{SYMBOL}.parquet"))
        params, _ = resolve(load_profiles(), "moderate", SYMBOL)
        sends = simulate(ticks, params).sends
        assert sends is not None
        publish_intents(redis_client, SYMBOL, intents_from_sends(sends, params.tick_size, params.lot_step))
        config = ShadowConfig(profile="external", window_seconds=WINDOW_SECONDS)
        summary = LiveShadow(redis_client, LiveOptions(replayed, config, until_idle_s=0.3)).run()
        assert summary.published > 0
        result = _materialize(redis_url, replayed, tmp_path, hour, profile="external", shadow_only=True)
        assert result.success
        evaluation = _evaluation(result)
        assert evaluation.passed, evaluation.description
        assert evaluation.metadata["live_windows"].value == summary.published
        live = read_live_records(redis_client, SYMBOL, profile="external")
        assert sum(int(r["total_fills"]) for r in live) > 0
    finally:
        redis_client.delete(order_stream(SYMBOL), dead_letter_stream(order_stream(SYMBOL)))


def _short_horizon_profiles(folder: Path) -> str:
    """moderate with a 1 ms markout horizon: a window then closes 1 ms after its end plus the watermark, so the
    watermark alone decides whether a late tick near the end is in (with 5 s, every late tick is in long before)."""
    data = json.loads(json.dumps(load_profiles().data))
    data.pop("$schema", None)
    data["profiles"]["moderate"]["params"]["markout_horizon_s"] = 0.001
    path = folder / "short_horizon.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize(("watermark_ns", "equal"), [(DEFAULT_WATERMARK_NS, True), (0, False)])
def test_ticks_reordered_within_the_watermark_give_the_partitions_windows_and_only_with_it(
    watermark_ns: int, equal: bool, redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    """Late ticks (half of them delayed by up to 30 ms, inside the 40 ms watermark) are put back in order before a
    window closes, so the live windows are the partition's; without the watermark the windows close before them."""
    clear_live_keys(redis_client, stream)
    profiles = _short_horizon_profiles(tmp_path)
    try:
        replayed = replay_synthetic(
            redis_client, stream, 60, symbols=(SYMBOL,), faults=FaultSpec(reorder=0.5, jitter_ms=30.0, seed=3)
        )
        assert replayed.faults.reordered > 0
        config = ShadowConfig(window_seconds=WINDOW_SECONDS, profiles_file=profiles)
        # a few entries a read, as a live stream arrives (read whole, a batch would hold its own late ticks)
        options = LiveOptions(stream, config, until_idle_s=0.3, watermark_ns=watermark_ns, batch=5)
        summary = LiveShadow(redis_client, options).run()
        assert summary.published > 0
        result = _materialize(redis_url, stream, tmp_path, _hour(redis_client, stream), profiles_file=profiles)
        evaluation = _evaluation(result)
        assert evaluation.passed is equal, evaluation.description
        assert evaluation.metadata["live_windows"].value == summary.published
    finally:
        clear_live_keys(redis_client, stream)
