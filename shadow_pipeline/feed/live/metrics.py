"""Prometheus metrics of the live feed, in a registry of their own (as ``ingest.metrics``); docs/feed.md lists
them. The run's summary is read back from them, so every count is defined once."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server, write_to_textfile

# Receive lag, exchange time to our receipt: sub-millisecond on a colocated host, seconds when a feed lags.
LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass
class FeedMetrics:
    venue: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.messages = Counter("shadow_feed_messages", "Frames received, by type", ["venue", "type"], registry=r)
        self.ticks = Counter("shadow_feed_ticks_published", "Ticks XADDed", ["venue", "instrument"], registry=r)
        self.depth = Counter(
            "shadow_feed_depth_records_published", "Depth entries XADDed", ["venue", "instrument"], registry=r
        )
        self.reconnects = Counter(
            "shadow_feed_reconnects", "Connections ended, by cause", ["venue", "cause"], registry=r
        )
        self.resyncs = Counter("shadow_feed_resyncs", "Books resynced, by cause", ["venue", "cause"], registry=r)
        self.stale = Counter(
            "shadow_feed_stale_timeouts",
            "Books unchanged past their timeout (a reconnect)",
            ["venue", "book"],
            registry=r,
        )
        self.malformed = Counter("shadow_feed_malformed_frames", "Frames that could not be read", ["venue"], registry=r)
        self.dropped = Counter(
            "shadow_feed_dropped", "Messages dropped on purpose, by reason", ["venue", "reason"], registry=r
        )
        self.lag = Histogram(
            "shadow_feed_receive_lag_seconds",
            "ts_local - ts_server of each tick (includes the clock offset to the venue)",
            ["venue"],
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.last_message = time.monotonic()
        self.age = Gauge("shadow_feed_last_message_age_seconds", "Seconds since the last frame", ["venue"], registry=r)
        self.age.labels(self.venue).set_function(lambda: time.monotonic() - self.last_message)

    def counts(self, counter: Counter) -> dict[str, float]:
        """A counter's values by its label other than ``venue`` (the summary's view)."""
        out: dict[str, float] = {}
        for metric in counter.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total"):
                    key = ",".join(v for k, v in sample.labels.items() if k != "venue") or "all"
                    out[key] = out.get(key, 0) + sample.value
        return out

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        start_http_server(port, addr=addr, registry=self.registry)

    def write_textfile(self, path: str) -> None:
        write_to_textfile(path, self.registry)
