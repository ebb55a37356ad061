"""The live feed (``shadow-pipeline feed``) against the local venue server: its stream equals the replay of the
same recording, ``seq`` continues across restarts, and the pieces (protocols, the Lua publisher, the command)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis

from shadow_pipeline.domain.market.synthetic import generate
from shadow_pipeline.feed.live import outbox as outbox_module
from shadow_pipeline.feed.live.binance import BinanceProtocol, ClockOffset
from shadow_pipeline.feed.live.bybit import BybitProtocol
from shadow_pipeline.feed.live.config import FeedConfig
from shadow_pipeline.feed.live.connection import backoff_delay
from shadow_pipeline.feed.live.metrics import FeedMetrics
from shadow_pipeline.feed.live.outbox import Outbox
from shadow_pipeline.feed.live.protocol import MalformedFrame
from shadow_pipeline.feed.live.ticks import Tick, TouchCarry
from shadow_pipeline.feed.live.venues import protocol_for
from shadow_pipeline.feed.venue_server import ServerThread, VenueServer, recording_frames, synthetic_frames
from shadow_pipeline.redis_io.depth_stream import read_depth
from shadow_pipeline.redis_io.feed_publisher import FeedPublisher
from shadow_pipeline.redis_io.keys import feed_seq_key
from shadow_pipeline.redis_io.server import RedisServer
from shadow_pipeline.redis_io.streams import read_entries
from shadow_pipeline_tests.live_feed_helpers import (
    FeedRun,
    fast_config,
    forget_seq_counters,
    market,
    recording,
    replay_ticks,
    seqs,
    stream_ticks,
    wait_until,
)

REPO = Path(__file__).resolve().parents[1]
NOW = 1_723_161_256_400_000_000  # a receive time (ns) for frames fed to a protocol by hand
SYNTHETIC_DEPTH = {"bybit-linear": 50}  # the venue server's synthetic books are orderbook.50


@pytest.fixture(autouse=True)
def _seq_counters(redis_client: redis.Redis, stream: str) -> Iterator[None]:
    yield
    forget_seq_counters(redis_client, stream)


def _total(expected: dict[str, list[dict[str, str]]]) -> int:
    return sum(map(len, expected.values()))


@pytest.mark.parametrize("venue", ["bybit-linear", "bybit-spot", "binance-usdm", "binance-spot"])
def test_live_stream_equals_the_replay(venue: str, redis_client: redis.Redis, redis_url: str, stream: str) -> None:
    frames = recording_frames(venue, recording(venue))
    expected = replay_ticks(venue)
    with ServerThread(VenueServer(venue, frames)) as running:
        config = fast_config(venue, tuple(sorted(frames.symbols)), running.ws_url, running.rest_url, stream)
        with FeedRun(config, redis_url) as run:
            wait_until(lambda: redis_client.xlen(stream) >= _total(expected), "every tick in the stream")
            summary = run.stop()
    got = stream_ticks(redis_client, stream)
    assert sorted(got) == sorted(expected)
    for key, ticks in expected.items():
        assert market(got[key]) == market(ticks), key
        assert seqs(got[key]) == list(range(1, len(ticks) + 1)), key
        if venue != "binance-spot":  # spot's bookTicker has no time: both place it by a clock offset, fitted apart
            assert [t["ts_server"] for t in got[key]] == [t["ts_server"] for t in ticks], key
    assert summary.ticks == {key: len(ticks) for key, ticks in expected.items()}
    assert summary.malformed_frames == 0 and not summary.resyncs


def test_binance_depth_stream_is_a_readable_book(redis_client: redis.Redis, redis_url: str, stream: str) -> None:
    """With --depth the REST snapshot and the diffs make ``lob:depth:{symbol}``, which the dry-run's reader takes
    (checked entry by entry, ids in order); paced, so that the server answers REST while it plays."""
    venue = "binance-spot"
    frames = recording_frames(venue, recording(venue))
    key = "ETHUSDT.binance-spot"
    with ServerThread(VenueServer(venue, frames, speed=40.0)) as running:
        config = fast_config(venue, ("ETHUSDT",), running.ws_url, running.rest_url, stream, depth=True)
        with FeedRun(config, redis_url) as run:
            wait_until(lambda: run.count("shadow_feed_depth_records_published_total", instrument=key) > 100, "depth")
            summary = run.stop()
    try:
        assert summary.depth_records.get(key, 0) > 100, summary
        depth = read_depth(redis_client, key, 0, 2**62)
        assert depth is not None and depth.snapshots >= 1 and depth.deltas > 100
    finally:
        redis_client.delete(f"lob:depth:{key}")


@pytest.mark.parametrize("venue", ["bybit-linear", "binance-usdm"])
def test_synthetic_frames_give_the_synthetic_ticks(
    venue: str, redis_client: redis.Redis, redis_url: str, stream: str
) -> None:
    """No shared data needed: the synthetic market served as the venue's frames comes back as its own ticks."""
    frames = synthetic_frames(venue, ["BTCUSDT"], 0.5, seed=3)
    source = pd.concat(generate(["BTCUSDT"], 30.0, seed=3), ignore_index=True)
    with ServerThread(VenueServer(venue, frames)) as running:
        config = fast_config(
            venue, ("BTCUSDT",), running.ws_url, running.rest_url, stream, book_depth=SYNTHETIC_DEPTH.get(venue)
        )
        with FeedRun(config, redis_url) as run:
            wait_until(lambda: running.stats.done, "the market played")
            wait_until(lambda: redis_client.xlen(stream) >= len(source), "every tick in the stream")
            run.stop()
    [ticks] = stream_ticks(redis_client, stream).values()
    assert seqs(ticks) == list(range(1, len(source) + 1))
    got = pd.DataFrame(ticks)
    for column in ("bid", "ask", "bid_qty", "ask_qty"):
        assert got[column].astype(float).tolist() == pytest.approx(source[column].astype(float).tolist())
    assert got["last_side"].tolist() == source["last_side"].fillna("").tolist()


def test_seq_continues_across_a_restart_of_the_feed(redis_client: redis.Redis, redis_url: str, stream: str) -> None:
    """The counter is in Redis: a second feed process numbers on from the first one's last seq."""
    venue = "bybit-linear"
    frames = synthetic_frames(venue, ["BTCUSDT"], 0.5, seed=5)
    with ServerThread(VenueServer(venue, frames, speed=0.0)) as running:
        config = fast_config(venue, ("BTCUSDT",), running.ws_url, None, stream, book_depth=50)
        with FeedRun(config, redis_url) as first:
            wait_until(lambda: redis_client.xlen(stream) >= 50, "the first feed's ticks")
            first.stop()
        published = redis_client.xlen(stream)
        with FeedRun(config, redis_url) as second:
            wait_until(lambda: running.stats.done, "the market played")
            wait_until(lambda: redis_client.xlen(stream) > published, "the second feed's ticks")
            second.stop()
    [ticks] = stream_ticks(redis_client, stream).values()
    assert seqs(ticks) == list(range(1, len(ticks) + 1))


def test_publisher_numbers_each_instrument_atomically(redis_client: redis.Redis, stream: str) -> None:
    publisher = FeedPublisher(redis_client, stream, maxlen=None)

    def tick(symbol: str, ts: int) -> tuple[str, list[str]]:
        return symbol, ["symbol", symbol, "ts_server", str(ts), "last_side", ""]

    first = publisher.publish([tick("AAA", 1), tick("BBB", 2), tick("AAA", 3)])
    assert first == {"AAA": 1, "BBB": 1}
    again = FeedPublisher(redis_client, stream, maxlen=1000)  # a new process: the counter is Redis's
    assert again.publish([tick("AAA", 4)]) == {"AAA": 3}
    assert redis_client.get(feed_seq_key(stream, "AAA")) == "3"
    entries = stream_ticks(redis_client, stream)
    assert seqs(entries["AAA"]) == [1, 2, 3] and seqs(entries["BBB"]) == [1]
    assert list(entries["AAA"][0]) == ["symbol", "seq", "ts_server", "last_side"]  # seq where the schema has it


def test_a_shard_write_that_fails_is_retried_without_the_shards_already_written(
    own_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BTCUSDT's shard is written, then ETHUSDT's call loses its connection (the server drops a request beyond its
    query buffer limit, every try): the retries must not write BTCUSDT's tick again under a new seq."""
    client = redis.Redis.from_url(own_server.url, decode_responses=True)
    client.config_set("client-query-buffer-limit", 1024 * 1024)
    publisher = FeedPublisher(client, "ticks", maxlen=None, shards=2)
    assert publisher.stream_of("BTCUSDT") != publisher.stream_of("ETHUSDT")
    outbox = Outbox(publisher, 100, FeedMetrics("bybit-linear"), threading.Event())
    big = ["symbol", "ETHUSDT", "ts_server", "2", "pad", "x" * 2 * 1024 * 1024]
    outbox.put([Tick("BTCUSDT", ["symbol", "BTCUSDT", "ts_server", "1"], 0), Tick("ETHUSDT", big, 0)], [])
    outbox.close()
    monkeypatch.setattr(outbox_module, "REDIS_RETRY_SECONDS", 0.0)
    asyncio.run(outbox.run())
    assert outbox.lost == 1 and outbox.fatal is None
    assert [fields["seq"] for _, fields in read_entries(client, publisher.stream_of("BTCUSDT"))] == ["1"]
    assert client.exists(publisher.stream_of("ETHUSDT")) == 0
    client.close()


def _bybit_book(kind: str, u: int, bids: list[list[str]], asks: list[list[str]]) -> str:
    data = {"s": "BTCUSDT", "b": bids, "a": asks, "u": u, "seq": u}
    return json.dumps(
        {"topic": "orderbook.200.BTCUSDT", "type": kind, "ts": 1, "cts": 1_786_310_818_000 + u, "data": data}
    )


def test_bybit_protocol_resubscribes_on_a_gap_and_takes_a_restart() -> None:
    protocol = BybitProtocol("bybit-linear", ("BTCUSDT",))
    subscribe = json.loads(protocol.on_connect().send[0])
    assert subscribe["op"] == "subscribe" and subscribe["args"] == ["orderbook.200.BTCUSDT", "publicTrade.BTCUSDT"]
    snapshot = protocol.on_frame(_bybit_book("snapshot", 10, [["100", "1"]], [["101", "1"]]), NOW)
    assert [row["bid"] for row in snapshot.rows] == ["100"]
    assert protocol.on_frame(_bybit_book("delta", 11, [["100", "2"]], []), NOW).rows[0]["bid_qty"] == "2"
    gap = protocol.on_frame(_bybit_book("delta", 13, [["100.5", "1"]], []), NOW)
    assert gap.resyncs == ["gap"] and not gap.rows
    assert [json.loads(m)["op"] for m in gap.send] == ["unsubscribe", "subscribe"]
    assert protocol.on_frame(_bybit_book("delta", 14, [["100.6", "1"]], []), NOW).dropped == ["delta_without_book"]
    restart = protocol.on_frame(_bybit_book("delta", 1, [["99", "1"]], [["102", "1"]]), NOW)
    assert restart.resyncs == ["venue_restart"] and restart.rows[0]["bid"] == "99"
    assert not protocol.on_frame(_bybit_book("delta", 2, [["98", "1"]], []), NOW).resyncs


def test_binance_protocol_drops_a_stale_ticker_and_resyncs_a_gapped_book() -> None:
    protocol = BinanceProtocol("binance-usdm", ("BTCUSDT",), depth=True)
    assert protocol.on_connect().snapshots == ["BTCUSDT"]

    def ticker(u: int) -> str:
        data = {"u": u, "s": "BTCUSDT", "b": "1", "B": "1", "a": "2", "A": "1", "E": 1_723_161_256_313}
        return json.dumps({"stream": "btcusdt@bookTicker", "data": data})

    def diff(first: int, last: int, previous: int) -> str:
        data = {"e": "depthUpdate", "E": 1_723_161_256_313, "s": "BTCUSDT", "U": first, "u": last, "pu": previous}
        return json.dumps({"stream": "btcusdt@depth@0ms", "data": data | {"b": [["1", "2"]], "a": []}})

    assert protocol.on_frame(ticker(5), NOW).rows
    assert protocol.on_frame(ticker(4), NOW).dropped == ["stale_book_ticker"]
    assert not protocol.on_frame(diff(8, 10, 7), NOW).depth  # buffered until the snapshot
    snapshot = json.dumps({"lastUpdateId": 9, "E": 1_723_161_256_300, "bids": [["1", "1"]], "asks": [["2", "1"]]})
    assert [r["kind"] for r in protocol.on_snapshot("BTCUSDT", snapshot, NOW).depth] == ["snapshot", "delta"]
    assert protocol.on_frame(diff(11, 12, 10), NOW).depth
    gap = protocol.on_frame(diff(14, 15, 13), NOW)
    assert gap.resyncs == ["gap"] and gap.snapshots == ["BTCUSDT"] and not gap.depth
    assert protocol.on_frame(ticker(6), NOW).rows  # the touch is the venue's: not held back by the depth resync


def test_spot_clock_offset_is_a_running_median() -> None:
    offset = ClockOffset()
    assert offset.median() == 0
    for value in (5, 1, 9, 3, 7):
        offset.add(value)
    assert offset.median() == 5


def test_config_and_venues_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="symbols"):
        FeedConfig("bybit-linear", ())
    with pytest.raises(ValueError, match="stale_seconds"):
        FeedConfig("bybit-linear", ("BTCUSDT",), stale_seconds=float("nan"))
    with pytest.raises(ValueError, match="ws_url"):
        FeedConfig("bybit-linear", ("BTCUSDT",), ws_url="http://x")
    with pytest.raises(ValueError, match="serves orderbook"):
        protocol_for(FeedConfig("bybit-linear", ("BTCUSDT",), book_depth=500))
    with pytest.raises(ValueError, match="live feed speaks"):
        protocol_for(FeedConfig("kraken-spot", ("BTCUSDT",)))


def test_backoff_is_capped_full_jitter() -> None:
    import random

    rng = random.Random(1)
    delays = [backoff_delay(attempt, 0.5, 4.0, rng) for attempt in range(20) for _ in range(20)]
    assert min(delays) >= 0 and max(delays) <= 4.0
    assert max(backoff_delay(0, 0.5, 4.0, rng) for _ in range(50)) <= 0.5


def _feed_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "shadow_pipeline.cli_feed", *args]


def _run_until_sigterm(args: list[str], client: redis.Redis, stream: str, more_than: int) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(_feed_command(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: client.xlen(stream) > more_than or child.poll() is not None, "the command's ticks")
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    return child.returncode, out, err


def test_command_stops_cleanly_on_sigterm_and_a_restart_numbers_on(
    redis_client: redis.Redis, redis_url: str, stream: str, tmp_path: Path
) -> None:
    venue = "bybit-linear"
    frames = synthetic_frames(venue, ["BTCUSDT"], 1.0, seed=7)
    textfile = tmp_path / "feed.prom"
    with ServerThread(VenueServer(venue, frames, speed=2.0)) as running:
        args = ["--venue", venue, "--symbols", "BTCUSDT", "--ws-url", running.ws_url, "--redis-url", redis_url]
        args += ["--book-depth", "50", "--stream", stream, "--metrics-textfile", str(textfile)]
        code, out, err = _run_until_sigterm(args, redis_client, stream, 5)
        assert code == 0, err
        first = redis_client.xlen(stream)
        code, _, err = _run_until_sigterm(args, redis_client, stream, first + 5)  # a new process
        assert code == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["ticks"]["BTCUSDT.bybit-linear"] == first
    assert "Traceback" not in err
    assert "shadow_feed_ticks_published_total" in textfile.read_text()
    [ticks] = stream_ticks(redis_client, stream).values()
    assert seqs(ticks) == list(range(1, len(ticks) + 1))  # no seq reused by the second process


HOSTILE_OPTIONS = [
    (["--stale-seconds", "-1"], "error: stale_seconds must be a positive number of seconds, got -1.0"),
    (["--stale-seconds", "nan"], "stale_seconds"),
    (["--stale-seconds", "inf"], "stale_seconds"),
    (["--max-age-seconds", "nan"], "max_age"),
    (["--maxlen", "0"], "maxlen"),
    (["--maxlen", "99999999999999999999999999"], "maxlen"),
    (["--book-depth", "7"], "7"),
    (["--symbols", ""], "symbols"),
    (["--symbols", "btc usdt"], "symbols"),
    (["--symbols", "BTCUSDT,BTCUSDT"], "twice"),
    (["--venue", "kraken-spot"], "--venue"),
    (["--backoff-initial-seconds", "abc"], "--backoff-initial-seconds"),
]


@pytest.mark.parametrize(("args", "named"), HOSTILE_OPTIONS, ids=[" ".join(a) or "empty" for a, _ in HOSTILE_OPTIONS])
def test_command_refuses_a_bad_option_in_one_line(args: list[str], named: str, redis_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    chosen = {"--venue": "bybit-linear", "--symbols": "BTCUSDT"} | dict(zip(args[::2], args[1::2], strict=True))
    flat = [item for pair in chosen.items() for item in pair]
    command = [sys.executable, "-m", "shadow_pipeline.cli", "feed", *flat, "--redis-url", redis_url]  # as users run it
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("error:") and named in lines[0] and "Traceback" not in done.stderr


HOSTILE_FRAMES = [
    "[" * 100_000,  # deep: json's recursion limit
    "",
    "\x00\x01\xff",
    "NaN",
    "[1, 2]",
    '"text"',
    "true",
    '{"topic": ["x"]}',
    '{"topic":"orderbook.200.BTCUSDT","type":"snapshot","ts":1e400,"data":{"s":"BTCUSDT","b":[["1","1"]],'
    '"a":[["2","1"]],"u":5,"seq":1},"cts":1e400}',
    '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":"x","s":"BTCUSDT","S":"Buy","v":"1"}]}',
    '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":{"a":1}}',
    '{"stream":"btcusdt@bookTicker","data":{"u":"inf","s":"BTCUSDT","b":"1","a":"2","B":"1","A":"1","E":1}}',
    '{"stream":"btcusdt@trade","data":{"s":"BTCUSDT","E":99999999999999999999999,"p":"1","q":"1","m":true}}',
    '{"stream":"btcusdt@trade","data":{"s":"ETHUSDT","E":1723161256322,"p":"1","q":"1","m":true}}',
    '{"stream":5,"data":[]}',
]


@pytest.mark.parametrize("venue", ["bybit-linear", "binance-usdm"])
def test_hostile_frames_are_malformed_or_ignored_never_a_crash(venue: str) -> None:
    """Every frame either raises MalformedFrame (counted and skipped by the feed) or publishes nothing; a frame
    for another venue's shape is ignored. Nothing else may escape: it would end the feed."""
    protocol = protocol_for(FeedConfig(venue, ("BTCUSDT",)))
    for frame in HOSTILE_FRAMES:
        try:
            update = protocol.on_frame(frame, NOW)
        except MalformedFrame:
            continue
        assert not update.rows, (frame[:60], update)


def test_a_redis_refusal_stops_the_feed_with_the_error(redis_client: redis.Redis, redis_url: str, stream: str) -> None:
    """WRONGTYPE on the seq counter: retrying cannot help, so the feed stops and says why (the command shows it
    as one error line)."""
    venue = "bybit-linear"
    redis_client.hset(feed_seq_key(stream, "BTCUSDT.bybit-linear"), "not", "a counter")
    frames = synthetic_frames(venue, ["BTCUSDT"], 0.2, seed=9)
    with ServerThread(VenueServer(venue, frames)) as running:
        run = FeedRun(fast_config(venue, ["BTCUSDT"], running.ws_url, None, stream, book_depth=50), redis_url)
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"), run:
            wait_until(run.stop_event.is_set, "the feed to stop itself")
    assert redis_client.xlen(stream) == 0


def test_bybit_client_pings_and_reads_the_replies(redis_client: redis.Redis, redis_url: str, stream: str) -> None:
    venue = "bybit-linear"
    frames = synthetic_frames(venue, ["BTCUSDT"], 0.2, seed=11)
    with ServerThread(VenueServer(venue, frames, speed=10.0)) as running:
        config = fast_config(venue, ["BTCUSDT"], running.ws_url, None, stream, book_depth=50, ping_seconds=0.05)
        with FeedRun(config, redis_url) as run:
            # the subscription's ack is one control frame; more are the venue's answers to the pings
            wait_until(lambda: run.count("shadow_feed_messages_total", type="control") >= 3, "pong replies")
            summary = run.stop()
    assert summary.malformed_frames == 0 and not summary.reconnects


def test_an_unreachable_venue_is_retried_until_stopped(redis_url: str, stream: str) -> None:
    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = fast_config("bybit-linear", ["BTCUSDT"], f"ws://127.0.0.1:{port}/v5/public/linear", None, stream)
    with FeedRun(config, redis_url) as run:
        wait_until(lambda: run.count("shadow_feed_reconnects_total", cause="connect_failed") >= 3, "retries")
        summary = run.stop()
    assert summary.connections == 0 and not summary.ticks


def test_bybit_depth_stream_is_a_readable_book(redis_client: redis.Redis, redis_url: str, stream: str) -> None:
    venue = "bybit-linear"
    frames = recording_frames(venue, recording(venue))
    key = "BTCUSDT.bybit-linear"
    try:
        with ServerThread(VenueServer(venue, frames)) as running:
            config = fast_config(venue, ["BTCUSDT"], running.ws_url, None, stream, depth=True)
            with FeedRun(config, redis_url) as run:
                wait_until(lambda: running.stats.done, "the recording played")
                wait_until(
                    lambda: run.count("shadow_feed_depth_records_published_total", instrument=key) > 300, "depth"
                )
                run.stop()
        depth = read_depth(redis_client, key, 0, 2**62)
        assert depth is not None and depth.snapshots == 1 and depth.deltas > 300
    finally:
        redis_client.delete(f"lob:depth:{key}")


def test_a_trade_before_the_first_quote_takes_that_quote_s_touch() -> None:
    """As ``frames.finish`` back-fills a recording: the held trade is published just before the first quote."""
    carry = TouchCarry("bybit-linear")
    trade = {"symbol": "BTCUSDT", "ts_server": NOW - 5, "last_px": "100.5", "last_qty": "2", "last_side": "buy"}
    assert carry.ticks([trade], NOW) == []
    quote = {"symbol": "BTCUSDT", "ts_server": NOW - 1, "bid": "100", "ask": "101", "bid_qty": "1", "ask_qty": "3"}
    held, first = carry.ticks([quote], NOW + 7)
    assert held.instrument == first.instrument == "BTCUSDT.bybit-linear"
    held_fields = dict(zip(held.fields[::2], held.fields[1::2], strict=True))
    assert held_fields == {
        "symbol": "BTCUSDT",
        "ts_server": str(NOW - 5),
        "ts_local": str(NOW),
        "bid": "100",
        "ask": "101",
        "bid_qty": "1",
        "ask_qty": "3",
        "last_px": "100.5",
        "last_qty": "2",
        "last_side": "buy",
        "venue": "bybit-linear",
    }
    assert first.fields[-8:-2] == ["last_px", "", "last_qty", "0", "last_side", ""]
