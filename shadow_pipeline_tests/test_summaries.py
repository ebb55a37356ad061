"""The typed stage summaries: what an asset emits is what launch.py reads back, field for field."""

from __future__ import annotations

import dagster as dg

from shadow_pipeline.summaries import DryRunSummary, ExportSummary, ShadowSummary, TuneSummary, finite

SUMMARIES = [
    ShadowSummary(
        verdict="NO-GO", reasons=["net_bps 1 < 2 by 1"], kpis={"net_bps": 1.0, "fill_rate": None}, knob_flips=True
    ),
    ExportSummary(written={"hash": 2, "stream": 70}, keys={"hash": "shadow:kpi:all", "stream": "shadow:kpi:stream:X"}),
    DryRunSummary(
        status="PASS",
        windows=12,
        predicted_fills=30,
        actual_fills=28,
        report="/tmp/r.md",
        no_data=["taker_count"],
        not_judged=["p95_latency_ms"],
    ),
    TuneSummary(
        verdict="GO",
        live_ready=True,
        reasons=[],
        objective="net_bps",
        base_out_of_sample=1.5,
        in_sample=None,
        out_of_sample=2.0,
        pbo=0.25,
        max_pbo=0.5,
        judged_hours="2024-08-09-00:00",
        folds=1,
        out_of_sample_valid_windows=55,
        sets_evaluated=40,
        sets_per_second=12.5,
        summary="/tmp/s.md",
    ),
]


def test_a_summary_survives_its_metadata_entry() -> None:
    for summary in SUMMARIES:
        metadata = summary.metadata()
        assert all(isinstance(value, dg.MetadataValue) for value in metadata.values())
        assert type(summary).from_metadata(metadata) == summary


def test_numbers_json_cannot_hold_become_none() -> None:
    assert [finite(v) for v in (1, 2.5, float("nan"), float("inf"), None, True, "3")] == [
        1.0,
        2.5,
        None,
        None,
        None,
        None,
        None,
    ]
