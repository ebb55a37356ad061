"""KPI records for downstream consumers: built from shadow iterations or a snapshot, validated against the
shipped JSON Schema before anything is written, so a reader never sees a half-valid record."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import pandas as pd

from shadow_pipeline.domain.kpis.catalogue import EXPORTED, names
from shadow_pipeline.domain.kpis.run_notes import RunNotes
from shadow_pipeline.domain.market.instruments import InstrumentId

SCHEMA_PACKAGE = "shadow_pipeline.schemas"
SCHEMA_FILE = "kpi_record.schema.json"
KPI_FIELDS = names(kpi for kpi in EXPORTED if not kpi.integer)  # null when undefined (no fills)
COUNT_FIELDS = names(kpi for kpi in EXPORTED if kpi.integer)
LIVE_TIMES = ("closed_ns", "published_ns")  # a live record's close and publication (ns), beside ``closed_by``
REASONS = "reasons"  # a list in records and in shadow:kpi:all, its JSON text in a hash field or stream entry
PENDING = "PENDING"  # the verdict of a live window: its partition is judged only when the hour has ended


class KpiRecordError(ValueError):
    """A record that does not match the schema; nothing of the batch it belongs to was written."""


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(resources.files(SCHEMA_PACKAGE).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def _timestamp(ns: int) -> str:
    return pd.Timestamp(int(ns), tz="UTC").isoformat().replace("+00:00", "Z")


def _instrument(key: str) -> dict[str, str]:
    """``symbol`` (the partition's instrument key, bare on the default venue, as Redis keys use it) with the full
    id and the venue spelled out, so that a reader never has to know which venue is the default."""
    instrument = InstrumentId.parse(key)
    return {"symbol": key, "instrument": str(instrument), "venue": instrument.venue}


def reason_list(reasons: Any) -> list[str]:
    """A report's reasons as a list: a list (a snapshot), its JSON text (a ``shadow_report`` row), or the
    ``; ``-joined text of a row written before the list was stored (kept whole: a reason may hold ``; ``)."""
    if reasons is None or isinstance(reasons, float):  # a missing cell reads back as NaN
        return []
    if isinstance(reasons, str):
        try:
            reasons = json.loads(reasons)
        except json.JSONDecodeError:
            return [reasons] if reasons else []
    if not isinstance(reasons, list) or not all(isinstance(reason, str) for reason in reasons):
        raise KpiRecordError(f"reasons are not a list of texts: {str(reasons)[:80]!r}")
    return list(reasons)


def iteration_records(
    iterations: pd.DataFrame, notes: RunNotes, verdict: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One record per window of a shadow_iterations partition, in window order; ``verdict``: the partition's
    verdict fields (:func:`report_judgement`, or a live window's ``PENDING``) that every window carries."""
    records = []
    for row in iterations.to_dict(orient="records"):
        records.append(
            {
                "timestamp": _timestamp(row["window_end"]),
                **_instrument(notes.symbol),
                **{name: _number(row[name]) for name in KPI_FIELDS},
                **{name: int(row[name]) for name in COUNT_FIELDS},
                "partition": notes.partition,
                "profile": notes.profile,
                "window_seconds": float(notes.window_seconds),
                "params_digest": notes.params_digest,
                "fill_model": notes.fill_model,
                "scope": "iteration",
                "iteration": int(row["iteration"]),
                "valid": bool(row["valid"]),
                **(verdict or {}),
            }
        )
    return records


def partition_record(
    kpis: Mapping[str, Any],
    *,
    symbol: str,
    partition: str,
    profile: str,
    window_seconds: float,
    digest: str,
    fill_model: str,
    timestamp_ns: int,
    verdict: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A partition's aggregate KPIs (``domain.kpis.per_window.aggregate``, or a snapshot's ``kpis``) as one record,
    with its verdict fields (:func:`report_judgement`)."""
    return {
        "timestamp": _timestamp(timestamp_ns),
        **_instrument(symbol),
        **{name: _number(kpis.get(name)) for name in KPI_FIELDS},
        **{name: int(kpis.get(name) or 0) for name in COUNT_FIELDS},
        "partition": partition,
        "profile": profile,
        "window_seconds": float(window_seconds),
        "params_digest": digest,
        "fill_model": fill_model,
        "scope": "partition",
        **(verdict or {}),
    }


def report_record(report: Mapping[str, Any], kpis: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The partition record of a shadow report: a row of ``shadow_report`` (KPIs beside the notes), or a
    POST_SHADOW_SNAPSHOT.json with its ``kpis`` given apart. The aggregate is the report's, never recomputed."""
    needed = ("symbol", "partition", "profile", "window_seconds", "params_digest", "fill_model", "as_of")
    missing = [key for key in needed if key not in report]
    if missing:
        raise KpiRecordError(f"report lacks {', '.join(missing)} (written by an older version? re-run the report)")
    return partition_record(
        report if kpis is None else kpis,
        symbol=str(report["symbol"]),
        partition=str(report["partition"]),
        profile=str(report["profile"]),
        window_seconds=float(report["window_seconds"]),
        digest=str(report["params_digest"]),
        fill_model=str(report["fill_model"]),
        timestamp_ns=pd.Timestamp(report["as_of"]).value,
        verdict=report_judgement(report),
    )


def report_judgement(report: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict fields of a shadow report (a ``shadow_report`` row or a snapshot): ``verdict`` and ``reasons``,
    or none for a report of a version without the verdict."""
    if report.get("verdict") is None:
        return {}
    return {"verdict": str(report["verdict"]), REASONS: reason_list(report.get(REASONS))}


def validate(records: Sequence[Mapping[str, Any]]) -> None:
    """Raise KpiRecordError naming the first bad record and rule; checks the whole batch before any write."""
    validator = _validator()
    for index, record in enumerate(records):
        infinite = [k for k, v in record.items() if isinstance(v, float) and math.isinf(v)]
        if infinite:
            raise KpiRecordError(
                f"KPI record {index} ({record.get('symbol')}, {record.get('partition')}) has infinite "
                f"{', '.join(infinite)}; nothing was written"
            )
        error = jsonschema.exceptions.best_match(validator.iter_errors(dict(record)))
        if error is not None:
            where = "/".join(map(str, error.absolute_path)) or "(record)"
            raise KpiRecordError(
                f"KPI record {index} ({record.get('symbol')}, {record.get('partition')}) is invalid at {where}: "
                f"{error.message}; nothing was written"
            )


def to_fields(record: Mapping[str, Any]) -> dict[str, str]:
    """Redis field values: numbers in their shortest exact form, booleans 1/0, lists as JSON, null as the empty
    string."""
    fields = {}
    for name, value in record.items():
        if value is None:
            fields[name] = ""
        elif isinstance(value, bool):
            fields[name] = "1" if value else "0"
        elif isinstance(value, list):
            fields[name] = json.dumps(value)
        else:
            fields[name] = repr(value) if isinstance(value, float) else str(value)
    return fields


def from_fields(fields: Mapping[str, str]) -> dict[str, Any]:
    """The inverse of :func:`to_fields`, typed again by the field's schema type."""
    record: dict[str, Any] = dict(fields)
    for name in (*KPI_FIELDS, "window_seconds"):
        if name in record:
            record[name] = float(record[name]) if record[name] != "" else None
    for name in (*COUNT_FIELDS, "iteration", *LIVE_TIMES):
        if name in record:
            record[name] = int(record[name])
    if "valid" in record:
        record["valid"] = record["valid"] == "1"
    if REASONS in record:
        record[REASONS] = reason_list(record[REASONS])
    return record
