"""Prometheus metrics of the live shadow, in a registry of their own (as ingest's): the last closed window's KPIs
per instrument and profile, how long a window took from its close to its record in Redis, and throughput."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server, write_to_textfile

from shadow_pipeline.domain.kpis.records import COUNT_FIELDS, KPI_FIELDS

# close -> publish delay buckets (s): the target is one second
DELAY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)


@dataclass
class LiveMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        labels = ["symbol", "profile", "kpi"]
        self.kpi = Gauge("shadow_live_kpi", "A KPI of the last window the live shadow closed", labels, registry=r)
        self.delay = Histogram(
            "shadow_live_close_to_publish_seconds",
            "From a window's close (its closing entry entering Redis) to its record in Redis",
            ["symbol"],
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.windows = Counter("shadow_live_windows_published", "Windows published", ["symbol"], registry=r)
        self.ticks = Counter("shadow_live_ticks_read", "Ticks read from the stream", registry=r)
        self.invalid = Counter("shadow_live_invalid_entries", "Stream entries that are not ticks (skipped)", registry=r)

    def published(self, record: Mapping[str, Any]) -> None:
        symbol, profile = str(record["symbol"]), str(record["profile"])
        for name in (*KPI_FIELDS, *COUNT_FIELDS):
            value = record.get(name)
            self.kpi.labels(symbol, profile, name).set(math.nan if value is None else float(value))
        self.delay.labels(symbol).observe((int(record["published_ns"]) - int(record["closed_ns"])) / 1e9)
        self.windows.labels(symbol).inc()

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        start_http_server(port, addr=addr, registry=self.registry)

    def write_textfile(self, path: str) -> None:
        write_to_textfile(path, self.registry)
