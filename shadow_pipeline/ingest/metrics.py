"""Prometheus metrics of ingest, with the seed's names, in a registry of their own.

A long-lived consumer serves them over HTTP; a batch run writes a textfile (node_exporter) or pushes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    pushadd_to_gateway,
    start_http_server,
    write_to_textfile,
)


@dataclass
class IngestMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        # By stream: one ingest process may consume several shards (docs/ingest.md "Shards").
        self.lag = Gauge(
            "shadow_ingest_lag_msgs", "Entries in the stream not yet delivered to the group", ["stream"], registry=r
        )
        self.ticks = Counter("shadow_ingest_ticks", "Ticks landed", ["symbol"], registry=r)
        self.gaps = Counter("shadow_seq_gaps", "Seqs skipped when a higher seq arrived", ["symbol"], registry=r)
        self.missing = Gauge("shadow_seq_missing", "Seqs still missing", ["symbol"], registry=r)
        self.duplicates = Counter("shadow_seq_duplicates", "Seqs that arrived again", ["symbol"], registry=r)
        self.out_of_order = Counter(
            "shadow_seq_out_of_order", "Seqs that arrived after a higher one", ["symbol"], registry=r
        )
        self.reordered = Counter("shadow_reordered", "Ticks put back in exchange-time order", ["symbol"], registry=r)
        self.drops = Counter(
            "shadow_backpressure_drops", "Ticks dropped by a full reorder buffer", ["symbol"], registry=r
        )
        self.dead_letters = Counter(
            "shadow_dead_letters", "Malformed entries sent to the dead-letter stream", ["stream"], registry=r
        )
        self.landing_blocked = Gauge(
            "shadow_ingest_landing_blocked", "1 while landing waits for space in a full landing zone", registry=r
        )
        self.landing_errors = Counter(
            "shadow_ingest_landing_errors", "Landing file writes that failed, by errno", ["errno"], registry=r
        )

    def consuming(self, stream: str) -> None:
        """Show the stream's dead letters at 0 from the start, so a rate() over them has a first sample."""
        self.dead_letters.labels(stream)

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        start_http_server(port, addr=addr, registry=self.registry)

    def write_textfile(self, path: str) -> None:
        write_to_textfile(path, self.registry)

    def push(self, gateway: str, job: str = "shadow_ingest") -> None:
        pushadd_to_gateway(gateway, job=job, registry=self.registry)
