"""Running the live feed in-process against the local venue server, and comparing its stream with a replay."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import redis

from shadow_pipeline.domain.market.instruments import instrument_key
from shadow_pipeline.domain.market.synthetic import generate
from shadow_pipeline.feed.live.config import FeedConfig
from shadow_pipeline.feed.live.metrics import FeedMetrics
from shadow_pipeline.feed.live.service import FeedSummary, run_feed
from shadow_pipeline.feed.replay import number_ticks
from shadow_pipeline.feed.sources import open_source
from shadow_pipeline.redis_io.keys import feed_seq_key
from shadow_pipeline.redis_io.streams import read_entries
from shadow_pipeline_tests.conftest import market_file

WAIT_SECONDS = 60.0  # how long a test waits for the feed to get somewhere (a bound on a hang, not a timing check)
TOUCH = ("bid", "ask", "bid_qty", "ask_qty")
TRADE = ("last_px", "last_qty", "last_side")
RECORDINGS = {
    "bybit-linear": ("bybit", ["bybit_cryptofeed/bybit_v5_linear_20260809.ws.gz"]),
    "bybit-spot": ("bybit", ["bybit_cryptofeed/bybit_v5_spot_20260809.ws.gz"]),
    "binance-usdm": ("binance", ["binance_hftbacktest/usdm/btcusdt_20240808.gz"]),
    "binance-spot": ("binance", ["binance_hftbacktest/spot/ethusdt_20240808.gz"]),
}


def fast_config(
    venue: str, symbols: Sequence[str], ws_url: str, rest_url: str | None, stream: str, **options: Any
) -> FeedConfig:
    """A feed config with fast clocks for tests: a fault is noticed and recovered from in well under a second."""
    options = {"backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.2, "open_timeout_seconds": 5.0} | options
    return FeedConfig(venue, tuple(symbols), ws_url, rest_url, stream, **options)


def recording(venue: str) -> list[Path]:
    return [market_file(name) for name in RECORDINGS[venue][1]]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = WAIT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


@dataclass
class FeedRun:
    """``run_feed`` on a thread of its own; ``stop()`` ends it and returns its summary."""

    config: FeedConfig
    redis_url: str
    metrics: FeedMetrics = field(init=False)
    summary: FeedSummary | None = None
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.metrics = FeedMetrics(self.config.venue)
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        client = redis.Redis.from_url(self.redis_url)
        try:
            self.summary = asyncio.run(run_feed(self.config, client, self.stop_event, self.metrics))
        except BaseException as exc:  # handed to the test
            self.error = exc
        finally:
            client.close()

    def __enter__(self) -> FeedRun:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> FeedSummary:
        self.stop_event.set()
        self.thread.join(WAIT_SECONDS)
        assert not self.thread.is_alive(), "the feed did not stop"
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary

    def count(self, name: str, **labels: str) -> float:
        value = self.metrics.registry.get_sample_value(name, {"venue": self.config.venue, **labels})
        return value or 0.0


def stream_ticks(client: redis.Redis, stream: str) -> dict[str, list[dict[str, str]]]:
    """The stream's entries by instrument key, in stream order."""
    out: dict[str, list[dict[str, str]]] = {}
    for _, fields in read_entries(client, stream):
        out.setdefault(instrument_key(fields["symbol"], fields.get("venue")), []).append(fields)
    return out


def replay_ticks(venue: str, symbols: Sequence[str] = ()) -> dict[str, list[dict[str, str]]]:
    """What ``shadow-pipeline replay`` makes of the same recording, numbered, by instrument key."""
    kind, _ = RECORDINGS[venue]
    frame = pd.concat(open_source(kind, files=recording(venue), symbols=symbols, venue=venue).chunks)
    frame = number_ticks(frame, {})
    out: dict[str, list[dict[str, str]]] = {}
    for record in frame.astype(str).to_dict("records"):
        row = {str(name): value for name, value in record.items()}
        venue_cell = row.get("venue")
        key = instrument_key(row["symbol"], venue_cell if venue_cell not in (None, "None", "nan") else None)
        out.setdefault(key, []).append(row)
    return out


def market(ticks: list[dict[str, str]]) -> list[tuple[str, ...]]:
    """What must agree between the feed and the replay: prices, sizes and sides."""
    return [tuple(tick[name] for name in (*TOUCH, *TRADE)) for tick in ticks]


def quote_touches(ticks: list[dict[str, str]]) -> list[tuple[float, ...]]:
    """The touches of the quote ticks, as numbers (the synthetic market's floats print otherwise than its frames)."""
    return [tuple(float(tick[name]) for name in TOUCH) for tick in ticks if not tick["last_side"]]


def synthetic_ticks(venue: str, symbols: Sequence[str], minutes: float, seed: int) -> dict[str, list[dict[str, str]]]:
    """The ticks the synthetic market gives for what ``synthetic_frames`` serves, by instrument key."""
    frame = pd.concat(generate(list(symbols), minutes * 60.0, seed=seed), ignore_index=True)
    frame["last_side"] = frame["last_side"].fillna("")
    out: dict[str, list[dict[str, str]]] = {}
    for record in frame.astype(str).to_dict("records"):
        row = {str(name): value for name, value in record.items()}
        out.setdefault(instrument_key(row["symbol"], venue), []).append(row)
    return out


def is_subsequence(part: list[tuple[float, ...]], whole: list[tuple[float, ...]]) -> bool:
    items = iter(whole)
    return all(any(item == candidate for candidate in items) for item in part)


def seqs(ticks: list[dict[str, str]]) -> list[int]:
    return [int(tick["seq"]) for tick in ticks]


def forget_seq_counters(client: redis.Redis, stream: str) -> None:
    """The feed's seq counters of ``stream`` (the ``stream`` fixture deletes the stream's own keys only)."""
    for name in client.scan_iter(match=feed_seq_key(stream, "*")):
        client.delete(name)
