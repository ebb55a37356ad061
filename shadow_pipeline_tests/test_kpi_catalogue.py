"""The KPI catalogue against what uses it: the record schema, the KPI frames, gates, accuracy, snapshot, docs."""

from __future__ import annotations

import json
from dataclasses import fields
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shadow_pipeline.domain.kpis.catalogue import (
    ACCURACY,
    BY_NAME,
    EXPORTED,
    GATED,
    KPIS,
    REPORTED,
    SUMMARY,
    VALID_WINDOWS,
    Kpi,
    names,
)
from shadow_pipeline.domain.kpis.gates import judge, kpi_gates
from shadow_pipeline.domain.kpis.per_window import aggregate
from shadow_pipeline.domain.kpis.records import SCHEMA_FILE, SCHEMA_PACKAGE
from shadow_pipeline.domain.strategies.profiles import Thresholds, load_profiles, resolve
from shadow_pipeline.domain.validation.accuracy import compare
from shadow_pipeline.reporting.snapshot import build_snapshot
from shadow_pipeline_tests.shadow_helpers import synthetic_iterations

# Fields of a record that say what it describes, not what was measured.
RECORD_ENVELOPE = {
    "timestamp", "symbol", "instrument", "venue", "partition", "profile", "window_seconds", "params_digest",
    "fill_model", "scope", "iteration", "valid", "source", "closed_by", "closed_ns", "published_ns", "verdict",
    "reasons",
}  # fmt: skip
DOCS = Path(__file__).resolve().parents[1] / "docs" / "shadow-simulation.md"


@pytest.fixture(scope="module")
def iterations() -> pd.DataFrame:
    frame = synthetic_iterations(symbol="ETHUSDT", seconds=300, window_s=10, gap_s=(120.0, 160.0))
    assert frame["valid"].any() and not frame["valid"].all()  # so "over valid" and "over all" differ
    assert frame["taker_count"].sum() > 0  # so the maker share is not 1 everywhere
    return frame


@pytest.fixture(scope="module")
def thresholds() -> Thresholds:
    return resolve(load_profiles(), "moderate", "ETHUSDT")[1]


def test_names_are_unique() -> None:
    assert len(BY_NAME) == len(KPIS)


def test_the_record_schema_holds_exactly_the_exported_kpis() -> None:
    schema = json.loads(resources.files(SCHEMA_PACKAGE).joinpath(SCHEMA_FILE).read_text(encoding="utf-8"))
    properties = schema["properties"]
    assert set(properties) - RECORD_ENVELOPE == set(names(EXPORTED))
    assert not RECORD_ENVELOPE & set(BY_NAME)
    for kpi in EXPORTED:
        assert kpi.name in schema["required"], kpi.name
        expected = "integer" if kpi.integer else ["number", "null"]  # null: undefined, e.g. no fills
        assert properties[kpi.name]["type"] == expected, kpi.name


def test_every_kpi_is_a_report_column_and_per_window_ones_are_window_columns(iterations: pd.DataFrame) -> None:
    report = aggregate(iterations)
    assert set(names(KPIS)) <= set(report.columns)
    per_window = {kpi.name for kpi in KPIS if kpi.per_window is not None}
    assert per_window <= set(iterations.columns)
    assert not {kpi.name for kpi in KPIS if kpi.per_window is None} & set(iterations.columns)
    for name in per_window & {kpi.name for kpi in KPIS if kpi.integer}:
        assert pd.api.types.is_integer_dtype(iterations[name]), name


def test_kpis_undefined_without_fills_are_the_ones_flagged(iterations: pd.DataFrame) -> None:
    no_fills = iterations[iterations["total_fills"] == 0]
    assert len(no_fills)
    for kpi in KPIS:
        if kpi.per_window is None:
            continue
        if kpi.needs_fills:
            assert no_fills[kpi.name].isna().all(), kpi.name
        if kpi.integer:
            assert iterations[kpi.name].notna().all(), kpi.name


def _rolled_up(iterations: pd.DataFrame, kpi: Kpi) -> float:
    """The partition value as the catalogue describes it, computed independently of ``aggregate``."""
    rollup = kpi.rollup
    windows = iterations[iterations["valid"]] if rollup.over == "valid" else iterations
    if rollup.how == "count":
        return float(len(windows))
    values = windows[kpi.name].to_numpy(dtype=np.float64)
    if rollup.how == "mean":
        assert rollup.weight is not None, kpi.name
        weights = windows[rollup.weight].to_numpy(dtype=np.float64)
        keep = (weights > 0) & ~np.isnan(values)
        return float(np.average(values[keep], weights=weights[keep]))
    if rollup.how == "sum":
        return float(np.sum(values))
    return float(np.median(values) if rollup.how == "median" else np.max(values))


def test_each_rollup_is_what_aggregate_computes(iterations: pd.DataFrame) -> None:
    row = aggregate(iterations).iloc[0]
    for kpi in KPIS:
        assert float(row[kpi.name]) == pytest.approx(_rolled_up(iterations, kpi), rel=1e-9, nan_ok=True), kpi.name


def test_the_gates_are_exactly_the_gated_kpis(iterations: pd.DataFrame, thresholds: Thresholds) -> None:
    judged = judge({str(k): v for k, v in aggregate(iterations).iloc[0].items()}, thresholds)
    gates = [outcome.gate for outcome in judged.outcomes]
    assert [gate.kpi for gate in gates] == [VALID_WINDOWS.name, *(n for n in names(GATED) if n != VALID_WINDOWS.name)]
    assert [gate.kpi for gate in kpi_gates(thresholds)] == [gate.kpi for gate in gates[1:]]
    threshold_fields = {field.name for field in fields(Thresholds)}
    for gate in gates:
        bound = BY_NAME[gate.kpi].gate
        assert bound is not None and bound.threshold in threshold_fields, gate.kpi
        assert (gate.threshold, gate.at_least) == (getattr(thresholds, bound.threshold), bound.at_least), gate.kpi


def test_the_accuracy_table_is_exactly_the_accuracy_kpis(iterations: pd.DataFrame) -> None:
    table = compare(iterations, iterations).table
    assert list(table["kpi"]) == list(names(ACCURACY))
    assert list(table["gated_on"]) == [kpi.accuracy for kpi in ACCURACY]
    assert all(kpi.unit == "bps" for kpi in ACCURACY if kpi.accuracy == "mae")  # its limits are in bps


def test_the_snapshot_carries_the_reported_kpis_and_every_gate(
    iterations: pd.DataFrame, thresholds: Thresholds
) -> None:
    kpis = {str(k): v for k, v in aggregate(iterations).iloc[0].items()}
    snapshot = build_snapshot(kpis, {}, thresholds, judge(kpis, thresholds), {}, "2024-08-08T00:00:00+00:00")
    assert list(snapshot["kpis"]) == list(names(REPORTED))
    assert {gate["kpi"] for gate in snapshot["gates"]} == set(names(GATED))
    # shadow-audit's gates, `export --src` records and the CLI's tables are all read off a snapshot's kpis
    assert set(names(GATED)) | set(names(EXPORTED)) | set(names(SUMMARY)) <= set(names(REPORTED))


def _docs_row(kpi: Kpi) -> str:
    uses = [label for label, on in (("record", kpi.exported), ("snapshot", kpi.reported), ("CLI", kpi.summary)) if on]
    cells = [
        f"`{kpi.name}`",
        kpi.meaning,
        kpi.unit or "-",
        kpi.per_window or "-",
        str(kpi.rollup),
        f"`{kpi.gate}`" if kpi.gate else "-",
        kpi.accuracy or "-",
        ", ".join(uses) or "-",
    ]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def test_the_docs_table_is_the_catalogue() -> None:
    rows = "\n".join(_docs_row(kpi) for kpi in KPIS)
    assert rows in DOCS.read_text(encoding="utf-8"), f"docs/shadow-simulation.md should list:\n{rows}"
