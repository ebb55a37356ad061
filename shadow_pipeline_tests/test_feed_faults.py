"""The live feed under the venue server's faults, one test each: it reconnects or resyncs, publishes no touch from
a book it knows is inconsistent (the published quote touches are an in-order subsequence of the replay's), keeps
``seq`` 1..N per instrument, counts the fault, and stops cleanly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis

from shadow_pipeline.feed.live.config import FeedConfig
from shadow_pipeline.feed.live.service import FeedSummary
from shadow_pipeline.feed.venue_server import (
    FrameSource,
    ServerFaults,
    ServerThread,
    VenueServer,
    recording_frames,
    synthetic_frames,
)
from shadow_pipeline.redis_io.depth_stream import read_depth
from shadow_pipeline_tests.live_feed_helpers import (
    FeedRun,
    fast_config,
    forget_seq_counters,
    is_subsequence,
    quote_touches,
    recording,
    replay_ticks,
    seqs,
    stream_ticks,
    synthetic_ticks,
    wait_until,
)

BYBIT = "bybit-linear"
RECONNECTS = "shadow_feed_reconnects_total"
RESYNCS = "shadow_feed_resyncs_total"


@pytest.fixture(autouse=True)
def _seq_counters(redis_client: redis.Redis, stream: str) -> Iterator[None]:
    yield
    forget_seq_counters(redis_client, stream)


def _consistent(
    client: redis.Redis, stream: str, expected: dict[str, list[dict[str, str]]]
) -> dict[str, list[dict[str, str]]]:
    """The stream's ticks, checked: seq 1..N per instrument, quote touches in the replay's order."""
    got = stream_ticks(client, stream)
    assert got and set(got) <= set(expected)
    for key, ticks in got.items():
        assert seqs(ticks) == list(range(1, len(ticks) + 1)), key
        assert is_subsequence(quote_touches(ticks), quote_touches(expected[key])), key
    return got


@dataclass(frozen=True)
class _Market:
    """What a Bybit server plays and the ticks a replay of it gives."""

    frames: FrameSource
    expected: dict[str, list[dict[str, str]]]
    book_depth: int | None


@pytest.fixture(params=["recording", "synthetic"])
def bybit(request: pytest.FixtureRequest) -> _Market:
    """The linear recording (shared data), and the synthetic market (none needed: runs everywhere)."""
    if request.param == "recording":
        return _Market(recording_frames(BYBIT, recording(BYBIT)), replay_ticks(BYBIT), None)
    symbols, minutes, seed = ["BTCUSDT", "ETHUSDT"], 0.3, 21
    return _Market(synthetic_frames(BYBIT, symbols, minutes, seed), synthetic_ticks(BYBIT, symbols, minutes, seed), 50)


def _market_frames(run: FeedRun) -> float:
    """Market frames the feed has handled (a subscription's snapshot among them; acks and pongs not)."""
    counts = run.metrics.counts(run.metrics.messages)
    return sum(counts.get(kind, 0) for kind in ("book", "trade", "other", "malformed"))


def _run_bybit(
    redis_url: str, stream: str, market: _Market, faults: ServerFaults, speed: float = 0.0, **options: object
) -> tuple[FeedRun, FeedSummary, int]:
    """Play ``market`` with ``faults`` until it is done and the feed has handled every frame that reached it;
    the feed run, its summary and the server's connection count."""
    with ServerThread(VenueServer(BYBIT, market.frames, speed=speed, faults=faults)) as running:
        symbols = sorted(market.frames.symbols)
        config = fast_config(BYBIT, symbols, running.ws_url, None, stream, book_depth=market.book_depth, **options)
        with FeedRun(config, redis_url) as run:
            wait_until(lambda: running.stats.done, "the market played")
            # frames in flight when a connection ended never arrive: then the stream is checked as it is
            wait_until(
                lambda: running.stats.connections > 1 or _market_frames(run) >= running.stats.frames_sent,
                "every frame handled",
            )
            summary = run.stop()
        return run, summary, running.stats.connections


def test_dropped_connection(bybit: _Market, redis_client: redis.Redis, redis_url: str, stream: str) -> None:
    run, summary, connections = _run_bybit(redis_url, stream, bybit, ServerFaults(drop_after=300, lose_frames=50))
    assert run.count(RECONNECTS, cause="connection_lost") >= 1
    assert connections >= 2
    _consistent(redis_client, stream, bybit.expected)
    assert summary.lost_at_stop == 0


def test_silent_stall_longer_than_the_watchdog(
    bybit: _Market, redis_client: redis.Redis, redis_url: str, stream: str
) -> None:
    faults = ServerFaults(stall_after=300, stall_seconds=30.0)
    run, summary, connections = _run_bybit(redis_url, stream, bybit, faults, stale_seconds=0.3)
    assert run.count(RECONNECTS, cause="stale") >= 1 and summary.stale_timeouts >= 1
    assert connections >= 2
    _consistent(redis_client, stream, bybit.expected)


def test_gap_in_the_update_id_resubscribes(
    bybit: _Market, redis_client: redis.Redis, redis_url: str, stream: str
) -> None:
    run, summary, connections = _run_bybit(redis_url, stream, bybit, ServerFaults(gap_at=100))
    assert run.count(RESYNCS, cause="gap") == 1
    assert connections == 1 and summary.lost_at_stop == 0  # resubscribed on the same connection, nothing lost
    _consistent(redis_client, stream, bybit.expected)


def test_bybit_restart_overwrites_the_book(
    bybit: _Market, redis_client: redis.Redis, redis_url: str, stream: str
) -> None:
    """u = 1 is a snapshot, not a gap: nothing is resubscribed, and the book it brings is the venue's, so the stream
    is the replay's tick for tick."""
    run, _, connections = _run_bybit(redis_url, stream, bybit, ServerFaults(restart_at=100))
    assert run.count(RESYNCS, cause="venue_restart") == 1 and run.count(RESYNCS, cause="gap") == 0
    assert connections == 1
    got = _consistent(redis_client, stream, bybit.expected)
    assert {key: quote_touches(ticks) for key, ticks in got.items()} == {
        key: quote_touches(ticks) for key, ticks in bybit.expected.items()
    }


def test_malformed_frame_is_counted_and_skipped(
    bybit: _Market, redis_client: redis.Redis, redis_url: str, stream: str
) -> None:
    run, summary, _ = _run_bybit(redis_url, stream, bybit, ServerFaults(malformed_at=120))
    assert summary.malformed_frames == 1 and run.count("shadow_feed_malformed_frames_total") == 1
    _consistent(redis_client, stream, bybit.expected)


def test_proactive_reconnect_before_max_age(
    bybit: _Market, redis_client: redis.Redis, redis_url: str, stream: str
) -> None:
    run, _, connections = _run_bybit(redis_url, stream, bybit, ServerFaults(), speed=20.0, max_age_seconds=0.5)
    assert run.count(RECONNECTS, cause="max_age") >= 1
    assert connections >= 2
    _consistent(redis_client, stream, bybit.expected)


def _run_binance(
    redis_url: str,
    stream: str,
    faults: ServerFaults,
    until: Callable[[FeedRun], bool],
    speed: float = 0.0,
    **options: object,
) -> tuple[FeedRun, FeedSummary, int]:
    """Play the Binance spot ETH recording with ``faults`` until ``until`` holds and ticks came after it."""
    venue = "binance-spot"
    frames = recording_frames(venue, recording(venue))
    with ServerThread(VenueServer(venue, frames, speed=speed, faults=faults)) as running:
        config = fast_config(venue, ["ETHUSDT"], running.ws_url, running.rest_url, stream, **options)
        with FeedRun(config, redis_url) as run:
            wait_until(lambda: until(run), "the fault counted")
            seen = run.count("shadow_feed_ticks_published_total", instrument="ETHUSDT.binance-spot")
            wait_until(
                lambda: (
                    run.count("shadow_feed_ticks_published_total", instrument="ETHUSDT.binance-spot") > seen + 50
                    or running.stats.done
                ),
                "ticks after the fault",
            )
            summary = run.stop()
        return run, summary, running.stats.connections


def test_binance_depth_gap_resyncs_from_a_new_snapshot(redis_client: redis.Redis, redis_url: str, stream: str) -> None:
    key = "ETHUSDT.binance-spot"
    try:
        _, summary, _ = _run_binance(
            redis_url,
            stream,
            ServerFaults(gap_at=60),
            lambda run: run.count(RESYNCS, cause="gap") >= 1,
            speed=40.0,
            depth=True,
        )
        assert summary.resyncs.get("gap") == 1
        depth = read_depth(redis_client, key, 0, 2**62)  # every entry in order: nothing from the gapped book
        assert depth is not None and depth.deltas > 0
        _consistent(redis_client, stream, replay_ticks("binance-spot"))
    finally:
        redis_client.delete(f"lob:depth:{key}")


def test_slow_reader_is_cut_and_reconnects(redis_client: redis.Redis, redis_url: str, stream: str) -> None:
    """The feed stops reading for a while (a test-only pause, with a small receive buffer so that the server's
    sends back up at once); the server closes it as a slow consumer and the feed reconnects."""
    venue = "binance-spot"
    frames = recording_frames(venue, recording(venue))
    faults = ServerFaults(slow_reader_seconds=0.2)
    with ServerThread(VenueServer(venue, frames, faults=faults)) as running:
        config = fast_config(
            venue,
            ["ETHUSDT"],
            running.ws_url,
            running.rest_url,
            stream,
            pause_after_frames=300,
            pause_seconds=2.0,
            receive_buffer_bytes=8192,
        )
        with FeedRun(config, redis_url) as run:
            wait_until(
                lambda: (
                    running.stats.connections >= 2
                    or (running.stats.done and _market_frames(run) >= running.stats.frames_sent)
                ),
                "a second connection, or every frame handled",
            )
            run.stop()
        stats = running.stats
        fired, connections = stats.faults.get("slow_reader", 0), stats.connections
    # with compression on, the backlog would fit the socket buffers and never show; on a loaded machine a later
    # connection can be cut too (the server gives a reader 0.2 s), which the feed survives the same way
    assert fired >= 1, stats
    causes = ("policy_close", "connection_lost")  # the close frame waits behind unread data, or is cut
    assert sum(run.count(RECONNECTS, cause=cause) for cause in causes) >= 1
    assert connections >= 2
    _consistent(redis_client, stream, replay_ticks(venue))


def test_venue_closes_at_its_connection_age(redis_client: redis.Redis, redis_url: str, stream: str) -> None:
    faults = ServerFaults(max_connection_seconds=0.5)
    run, _, connections = _run_binance(
        redis_url, stream, faults, lambda run: run.count(RECONNECTS, cause="closed_by_venue") >= 1, speed=20.0
    )
    assert run.count(RECONNECTS, cause="closed_by_venue") >= 1 and connections >= 2
    _consistent(redis_client, stream, replay_ticks("binance-spot"))


def test_bad_config_is_refused_before_connecting() -> None:
    with pytest.raises(ValueError, match="backoff_initial_seconds"):
        FeedConfig(BYBIT, ("BTCUSDT",), backoff_initial_seconds=5.0, backoff_max_seconds=1.0)
