"""Writing KPI records to Redis for dashboards and the live bot's risk manager, and reading them back.

- hash mode: ``shadow:kpi:all`` holds one field per symbol (the latest partition record as JSON); with
  ``per_symbol`` also ``shadow:kpi:{symbol}``, one hash field per KPI. Both expire after ``ttl_seconds``.
- stream mode: ``shadow:kpi:stream:{symbol}``, one entry per window (``MAXLEN ~``). An index hash
  ``shadow:kpi:stream:{symbol}:ids`` maps partition|profile|iteration to the entry id
  (:func:`streams.append_once`), so re-exporting a partition adds nothing and two exporters never race.

Records are validated (``domain.kpi_records.validate``) before anything is written: an invalid record is an
error and the batch is not written at all.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import redis

from shadow_pipeline.domain.kpis.records import (
    from_fields,
    iteration_records,
    report_judgement,
    report_record,
    to_fields,
    validate,
)
from shadow_pipeline.domain.kpis.run_notes import run_notes
from shadow_pipeline.redis_io.keys import KPI_ALL_HASH, kpi_stream, kpi_symbol_hash
from shadow_pipeline.redis_io.streams import append_once

DEFAULT_TTL_SECONDS = 24 * 3600
DEFAULT_STREAM_MAXLEN = 100_000


def record_key(record: Mapping[str, Any]) -> str:
    """What makes a window's prediction unique: partition, profile, window length, parameters, window."""
    return "|".join(str(record[k]) for k in ("partition", "profile", "window_seconds", "params_digest", "iteration"))


@dataclass(frozen=True)
class ExportResult:
    mode: str
    keys: list[str]
    written: int
    skipped: int = 0  # records already in the stream (a re-export)


def write_hashes(
    client: redis.Redis, records: Sequence[Mapping[str, Any]], per_symbol: bool, ttl_seconds: int
) -> ExportResult:
    """The latest record per symbol into ``shadow:kpi:all`` (and ``shadow:kpi:{symbol}``), in one MULTI."""
    validate(records)
    pipe = client.pipeline(transaction=True)
    keys = [KPI_ALL_HASH]
    for record in records:
        pipe.hset(KPI_ALL_HASH, str(record["symbol"]), json.dumps(dict(record), sort_keys=True))
        if per_symbol:
            key = kpi_symbol_hash(str(record["symbol"]))
            replace_hash(pipe, key, record, ttl_seconds)
            keys.append(key)
    pipe.expire(KPI_ALL_HASH, ttl_seconds)
    pipe.execute()
    return ExportResult("hash", keys, len(records))


def replace_hash(pipe: redis.client.Pipeline, key: str, record: Mapping[str, Any], ttl_seconds: int) -> None:
    """``record`` as the hash ``key``, one field per KPI, expiring after ``ttl_seconds``."""
    pipe.delete(key)  # a field that is null now must not keep an older value
    pipe.hset(key, mapping=to_fields(record))  # type: ignore[arg-type]
    pipe.expire(key, ttl_seconds)


def append_by_symbol(
    client: redis.Redis, records: Sequence[Mapping[str, Any]], stream_of: Callable[[str], str], maxlen: int
) -> dict[str, tuple[int, list[Mapping[str, Any]]]]:
    """Validated window records appended once to their symbol's stream (``stream_of``): per symbol, how many
    were new and the symbol's records."""
    validate(records)
    by_symbol: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for record in records:
        by_symbol[str(record["symbol"])].append(record)
    return {
        symbol: (append_once(client, stream_of(symbol), [(record_key(r), to_fields(r)) for r in batch], maxlen), batch)
        for symbol, batch in by_symbol.items()
    }


def append_streams(client: redis.Redis, records: Sequence[Mapping[str, Any]], maxlen: int) -> ExportResult:
    """Window records into ``shadow:kpi:stream:{symbol}``; records exported before are skipped."""
    appended = append_by_symbol(client, records, kpi_stream, maxlen)
    added = sum(new for new, _ in appended.values())
    return ExportResult("stream", [kpi_stream(s) for s in appended], added, len(records) - added)


def export_partition(
    client: redis.Redis,
    iterations: pd.DataFrame,
    report: Mapping[str, Any],
    mode: str,
    per_symbol: bool = True,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
    maxlen: int = DEFAULT_STREAM_MAXLEN,
) -> list[ExportResult]:
    """One partition: its windows (shadow_iterations) to the stream and/or its report's aggregate (a
    shadow_report row) to the hashes; every record carries the report's verdict and reasons.

    Every record of both modes is built and validated before the first write: all or nothing."""
    notes = run_notes(iterations)
    if iterations.empty:
        raise ValueError(f"{notes.partition}: no windows to export")
    windows = iteration_records(iterations, notes, report_judgement(report)) if mode in ("stream", "both") else []
    aggregates = [report_record(report)] if mode in ("hash", "both") else []
    validate([*windows, *aggregates])
    results = []
    if windows:
        results.append(append_streams(client, windows, maxlen))
    if aggregates:
        results.append(write_hashes(client, aggregates, per_symbol, ttl_seconds))
    return results


def read_stream_records(client: redis.Redis, symbol: str, **match: Any) -> list[dict[str, Any]]:
    """Window records of ``symbol`` back from Redis (typed), those whose fields equal ``match`` (e.g. partition,
    profile, window_seconds, params_digest)."""
    entries: list[Any] = client.xrange(kpi_stream(symbol))  # type: ignore[assignment]
    records = [from_fields(_text(fields)) for _, fields in entries]
    return [r for r in records if all(r.get(name) == value for name, value in match.items())]


def _text(fields: Mapping[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else str(v))
        for k, v in fields.items()
    }
