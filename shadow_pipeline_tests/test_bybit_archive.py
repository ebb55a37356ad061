"""Bybit's public historical archives read directly: the book rules, trades merged by time, no receive stamp, and
the latency KPI "not measured" all the way through Redis, ingest and Shadow Mode."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import redis
from click.testing import CliRunner

from shadow_pipeline import cli
from shadow_pipeline.defs.feed.assets import FeedConfig, replayed_feed
from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.shadow.assets import ShadowConfig, shadow_iterations, shadow_report
from shadow_pipeline.domain.kpis.per_window import FEED_UNSTAMPED
from shadow_pipeline.domain.market.ticks import parse_entries
from shadow_pipeline.feed.recordings import read_bybit_archives
from shadow_pipeline.feed.sources import LATENCY_MEASURED, LATENCY_UNMEASURED, SourceKind, open_source
from shadow_pipeline.parquet import read_frame
from shadow_pipeline.redis_io.streams import read_entries
from shadow_pipeline.reporting.snapshot import SNAPSHOT_FILE
from shadow_pipeline.settings import REDIS_URL_ENV
from shadow_pipeline_tests.bybit_archives import START_MS, compact, frame, random_market, write_ob500, write_trades
from shadow_pipeline_tests.ingest_helpers import pipeline_resources
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.partition_env import has_partitions

MS = 1_000_000
QUOTE = ["ts_server", "bid", "ask", "bid_qty", "ask_qty"]


def _quotes(ticks: pd.DataFrame) -> list[tuple[int, str, str, str, str]]:
    rows = ticks[ticks["last_side"] == ""][QUOTE]
    return [(int(t) // MS, b, a, bq, aq) for t, b, a, bq, aq in rows.itertuples(index=False)]


def test_the_book_rules_snapshot_delta_delete_and_restart(tmp_path: Path) -> None:
    t = START_MS
    frames = [
        frame("BTCUSDT", "delta", t, [["99.0", "9"]], [], 5),  # before any snapshot: cannot be placed
        frame("BTCUSDT", "snapshot", t + 1, [["100.0", "1"], ["99.9", "2"]], [["100.1", "3"], ["100.2", "4"]], 6),
        frame("BTCUSDT", "delta", t + 2, [["99.9", "5"]], [], 7),  # below the touch: no tick
        frame("BTCUSDT", "delta", t + 3, [["100.0", "0"]], [], 8),  # the best bid deleted
        frame("BTCUSDT", "delta", t + 4, [], [["100.10", "6"]], 9),  # the same level, written otherwise
        frame("BTCUSDT", "delta", t + 5, [["99.5", "1"]], [["101.0", "1"]], 1),  # u = 1: overwrites the book
    ]
    del frames[-2]["cts"]  # no matching-engine time: the system time ts stands in
    ticks = read_bybit_archives([write_ob500(tmp_path, "BTCUSDT", frames)])
    assert _quotes(ticks) == [
        (t + 1, "100.0", "100.1", "1", "3"),
        (t + 3, "99.9", "100.1", "5", "3"),
        (t + 5, "99.9", "100.10", "5", "6"),  # ts = cts + 1 in these frames
        (t + 5, "99.5", "101.0", "1", "1"),
    ]
    assert (ticks["ts_local"] == ticks["ts_server"]).all()  # no receive stamp, said the documented way


def test_book_and_trades_merge_by_exchange_time(tmp_path: Path) -> None:
    market = random_market(seconds=60)
    book = write_ob500(tmp_path, "BTCUSDT", market.frames)
    trades = write_trades(tmp_path, "BTCUSDT", market.trades)
    source = open_source("bybit", files=[trades, book])
    assert source.latency == LATENCY_UNMEASURED == "not measured (source has no receive stamp)"
    ticks = next(source.chunks)
    assert _quotes(ticks) == market.touches
    traded = ticks[ticks["last_side"] != ""]
    assert len(traded) == len(market.trades) > 100
    assert np.all(np.diff(ticks["ts_server"].to_numpy()) >= 0)
    for ts, bid, ask, bid_qty, ask_qty, price, side in traded[[*QUOTE, "last_px", "last_side"]].to_numpy():
        # the touch the taker hit: the latest quote before the book frame of the same millisecond
        before = [touch for touch in market.touches if touch[0] < ts // MS][-1]
        assert (bid, ask, bid_qty, ask_qty) == before[1:]
        assert price == (ask if side == "buy" else bid)


def test_an_unzipped_archive_and_a_renamed_zip_are_read_by_content(tmp_path: Path) -> None:
    market = random_market(seconds=5)
    zipped = write_ob500(tmp_path, "BTCUSDT", market.frames)
    renamed = zipped.rename(tmp_path / "book.gz")
    unzipped = tmp_path / "book.data"
    unzipped.write_bytes(zipfile.ZipFile(renamed).read("2024-08-08_BTCUSDT_ob500.data"))
    for path in (renamed, unzipped):
        assert _quotes(read_bybit_archives([path])) == market.touches


def test_a_live_recording_keeps_its_receive_stamps(tmp_path: Path) -> None:
    path = tmp_path / "live.ws"
    market = random_market(seconds=2)
    path.write_text("".join(f"{(f['ts'] + 100) * MS} {compact(f)}\n" for f in market.frames))
    source = open_source("bybit", files=[path])
    assert source.latency == LATENCY_MEASURED
    ticks = next(source.chunks)
    assert ((ticks["ts_local"] - ticks["ts_server"]) == 101 * MS).all()


def test_the_replay_command_says_latency_is_not_measured(
    redis_url: str, stream: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    market = random_market(seconds=10)
    book = write_ob500(tmp_path, "BTCUSDT", market.frames)
    monkeypatch.setenv(REDIS_URL_ENV, redis_url)
    args = ["replay", "--source", "bybit", "--file", str(book), "--stream", stream]
    result = CliRunner().invoke(cli.main, args)
    assert result.exit_code == 0, result.stderr
    assert "             latency: not measured (source has no receive stamp)" in result.stdout.splitlines()
    summary = json.loads(CliRunner().invoke(cli.main, [*args, "--json"]).stdout)
    assert summary["latency"] == LATENCY_UNMEASURED and summary["entries_written"] == len(market.touches)


def test_an_archive_through_dagster_feed_ingest_and_shadow_reports_latency_not_measured(
    redis_url: str, stream: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    key = "BTCUSDT.bybit-linear"  # an ob500 archive is of a derivative: it lands as Bybit's linear BTCUSDT
    if not has_partitions(request, redis_url, key):
        return
    market = random_market(seconds=120)
    files = [write_ob500(tmp_path, "BTCUSDT", market.frames), write_trades(tmp_path, "BTCUSDT", market.trades)]
    hour, window_seconds = "2024-08-08-23:00", 10
    feed = FeedConfig(source=SourceKind.BYBIT, files=[str(f) for f in files], symbols=["BTCUSDT"], maxlen=0)
    shadow = ShadowConfig(window_seconds=window_seconds)
    resources = pipeline_resources(redis_url, stream, tmp_path)
    with dagster_instance() as instance:
        fed = dg.materialize(
            [replayed_feed],
            resources=resources,
            run_config=dg.RunConfig(ops={"replayed_feed": feed}),
            instance=instance,
        )
        run = dg.materialize(
            [landing_zone, raw_ticks, normalized_ticks, shadow_iterations, shadow_report],
            partition_key=partition_key(hour, key),
            resources=resources,
            run_config=dg.RunConfig(ops={"shadow_iterations": shadow}),
            instance=instance,
        )
    assert fed.success and run.success
    metadata = fed.asset_materializations_for_node("replayed_feed")[0].metadata
    assert metadata["latency"].value == LATENCY_UNMEASURED
    assert metadata["entries_written"].value == len(market.touches) + len(market.trades)
    entries = [fields for _, fields in read_entries(redis.Redis.from_url(redis_url), stream)]
    batch = parse_entries(entries)
    assert batch.rejects.empty and (batch.ticks["ts_local"] == batch.ticks["ts_server"]).all()

    landed = read_frame(str(tmp_path / "assets/normalized_ticks" / hour / f"{key}.parquet"))
    assert _quotes(landed) == [(ms, *map(float, touch)) for ms, *touch in market.touches]  # typed at ingest
    assert int(landed["is_trade"].sum()) == len(market.trades)
    iterations = read_frame(str(tmp_path / "assets/shadow_iterations" / hour / f"{key}.parquet"))
    assert len(iterations) == 120 // window_seconds
    latency = ["p95_latency_ms", "p95_raw_ms", "p99_ms", "feed_p95_ms", "broker_p95_ms"]
    assert iterations[latency].isna().all().all() and (iterations["decision_p95_ms"] > 0).all()
    snapshot = json.loads((tmp_path / "artifacts/shadow" / hour / key / SNAPSHOT_FILE).read_text())
    assert snapshot["latency_notes"] == FEED_UNSTAMPED
    assert any("unknown: latency not measured (source has no receive stamp)" in r for r in snapshot["reasons"])
    assert snapshot["kpis"]["p95_latency_ms"] is None
