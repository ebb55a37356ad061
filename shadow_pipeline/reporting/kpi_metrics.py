"""Prometheus metrics of a shadow report, for alerting on the KPIs without Redis or Dagster in the way.

Each gated KPI is exported beside the profile's own threshold for it, so the rules in
docs/alerts/shadow.rules.yml compare a value against its gate and no threshold is copied into them: a profile
edit changes the alerts too. A batch export writes one node_exporter textfile per instrument and profile (one
partition's file never erases another instrument's) or pushes one pushgateway group per instrument and profile.
docs/metrics.md lists the metrics and the rules.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway, write_to_textfile

from shadow_pipeline.domain.kpis.catalogue import BY_NAME, TOTAL_FILLS
from shadow_pipeline.domain.kpis.gates import GO, Gate, kpi_gates, min_windows_gate
from shadow_pipeline.domain.market.instruments import InstrumentId
from shadow_pipeline.domain.strategies.profiles import Thresholds

PREFIX = "shadow_kpi_"
LABELS = ("instrument", "venue", "profile")
JOB = "shadow_kpis"  # the pushgateway job; its groups are keyed by instrument and profile
PUSH_TIMEOUT_S = 10.0
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class MetricsError(ValueError):
    """A metrics sink that cannot be used (a bad directory or URL, a gateway that is down), with the reason."""


def gates(thresholds: Thresholds) -> list[Gate]:
    """Every gate of the verdict, valid windows first, as ``domain.kpis.gates.judge`` applies them."""
    return [min_windows_gate(thresholds), *kpi_gates(thresholds)]


@dataclass(frozen=True)
class KpiMetrics:
    """One report's metrics in a registry of their own, and the labels that name its file and push group."""

    instrument: str
    profile: str
    registry: CollectorRegistry

    @property
    def file_name(self) -> str:
        return _UNSAFE.sub("_", f"shadow_kpis_{self.instrument}_{self.profile}") + ".prom"

    def write_textfile(self, folder: Path) -> Path:
        """Atomically (prometheus_client writes a temporary file and renames it; the textfile collector reads
        only ``*.prom``), replacing this instrument and profile's previous file only."""
        check_textfile_dir(folder)
        path = folder / self.file_name
        try:
            write_to_textfile(str(path), self.registry)
        except OSError as exc:
            raise MetricsError(f"metrics not written to {path}: {exc.strerror or exc}") from None
        return path

    def push(self, gateway: str) -> None:
        """Replaces the group of this instrument and profile (a PUT): no KPI of an earlier report lingers."""
        key = {"instrument": self.instrument, "profile": self.profile}
        try:
            push_to_gateway(check_pushgateway(gateway), JOB, self.registry, grouping_key=key, timeout=PUSH_TIMEOUT_S)
        except OSError as exc:  # urllib's URLError and HTTPError are OSErrors
            raise MetricsError(f"metrics not pushed to {gateway}: {getattr(exc, 'reason', None) or exc}") from None


def kpi_metrics(
    report: Mapping[str, Any], thresholds: Thresholds, exported_at: pd.Timestamp | None = None
) -> KpiMetrics:
    """The metrics of a shadow report (a ``shadow_report`` row, or a snapshot's notes with its ``kpis``):
    ``symbol``, ``profile``, ``verdict``, ``as_of`` and the KPIs; ``thresholds``: the gates it was judged by."""
    instrument = InstrumentId.parse(str(report["symbol"]))
    profile = str(report["profile"])
    labels = (str(instrument), instrument.venue, profile)
    registry = CollectorRegistry()

    def gauge(name: str, meaning: str, value: Any) -> None:
        Gauge(PREFIX + name, meaning, LABELS, registry=registry).labels(*labels).set(_number(value))

    for gate in gates(thresholds):
        passes = ">=" if gate.at_least else "<="
        kpi = BY_NAME[gate.kpi]
        gauge(kpi.name, kpi.meaning + ("" if kpi.integer else " (NaN: unknown)"), report.get(kpi.name))
        gauge(f"threshold_{gate.kpi}", f"The profile's gate: {gate.kpi} {passes} this passes", gate.threshold)
    gauge(TOTAL_FILLS.name, TOTAL_FILLS.meaning + " in the valid windows", report.get(TOTAL_FILLS.name))
    gauge("verdict", "Go/No-Go of the report: 1 Go, 0 No-Go", 1.0 if report["verdict"] == GO else 0.0)
    gauge(
        "window_end_timestamp_seconds",
        "End of the report's last window (the data's time), unix seconds",
        pd.Timestamp(report["as_of"]).timestamp(),
    )
    exported = exported_at if exported_at is not None else pd.Timestamp.now(tz="UTC")
    gauge("exported_timestamp_seconds", "When the report was exported, unix seconds", exported.timestamp())
    return KpiMetrics(str(instrument), profile, registry)


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)


def check_sinks(textfile_dir: str | None, pushgateway: str | None) -> None:
    """Refuse a bad directory or URL (MetricsError) before anything is written anywhere."""
    if textfile_dir is not None:
        check_textfile_dir(Path(textfile_dir))
    if pushgateway is not None:
        check_pushgateway(pushgateway)


def publish(metrics: KpiMetrics, textfile_dir: str | None, pushgateway: str | None) -> tuple[list[str], list[str]]:
    """To each sink given; both are tried, so one failing does not cost the other its metrics. Where they went,
    and why not."""
    sent, failures = [], []
    if textfile_dir is not None:
        try:
            sent.append(str(metrics.write_textfile(Path(textfile_dir))))
        except MetricsError as exc:
            failures.append(str(exc))
    if pushgateway is not None:
        try:
            metrics.push(pushgateway)
            sent.append(pushgateway)
        except MetricsError as exc:
            failures.append(str(exc))
    return sent, failures


def check_textfile_dir(folder: Path) -> Path:
    """An existing, writable directory: a missing one is refused rather than made, since the textfile collector
    reads only the directory it was started with (a typo would lose every metric in silence)."""
    name = repr(str(folder))
    if "\x00" in str(folder):
        raise MetricsError(f"textfile_dir {name} holds a NUL byte")
    try:
        exists, is_dir = folder.exists(), folder.is_dir()
    except OSError as exc:  # a name too long for the filesystem
        raise MetricsError(f"textfile_dir {name}: {exc.strerror or exc}") from None
    if not exists:
        raise MetricsError(f"textfile_dir {name} does not exist (the node_exporter's --collector.textfile.directory)")
    if not is_dir:
        raise MetricsError(f"textfile_dir {name} is not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MetricsError(f"textfile_dir {name} is not writable")
    return folder


def check_pushgateway(url: str) -> str:
    """``http(s)://host[:port][/path]``; the scheme is required, as ``host:port`` alone would parse as a scheme."""
    reason = _url_fault(url)
    if reason:
        raise MetricsError(f"pushgateway {url!r}: {reason} (expected e.g. http://127.0.0.1:9091)")
    return url


def _url_fault(url: str) -> str | None:
    if not url or len(url) > 2048 or any(c.isspace() or not c.isprintable() for c in url):
        return "empty, too long, or holds whitespace or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in ("http", "https"):
        return "scheme must be http or https"
    if not parts.hostname:
        return "no host"
    if port == 0:
        return "port 0"
    if parts.query or parts.fragment or parts.username or parts.password:
        return "a query, fragment or credentials are not accepted"
    return None
