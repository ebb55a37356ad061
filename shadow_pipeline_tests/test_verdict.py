"""The verdict where people look: partitioned gate checks, run tags, rounded metadata and Markdown, on real
Dagster runs of two minutes of the synthetic market (a Go under loosened gates, a No-Go under the default ones)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import dagster as dg
import pandas as pd
import pytest
import redis

from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.shadow import checks
from shadow_pipeline.defs.shadow.tags import NO_GO_TAG, REASON_TAG, VERDICT_TAG, partition_label, verdict_tags
from shadow_pipeline.domain.kpis.catalogue import BY_NAME
from shadow_pipeline.domain.kpis.gates import GO, NO_GO, Gate, GateOutcome, Verdict
from shadow_pipeline.domain.kpis.records import KpiRecordError, iteration_records, report_record, to_fields
from shadow_pipeline.domain.kpis.run_notes import run_notes
from shadow_pipeline.launch import definitions
from shadow_pipeline.redis_io.keys import KPI_ALL_HASH, kpi_stream, kpi_symbol_hash
from shadow_pipeline.redis_io.kpi_export import export_partition, read_stream_records
from shadow_pipeline.reporting.pnl_plots import INLINE_MARKDOWN_CHARS
from shadow_pipeline.reporting.snapshot import REPORT_FILE, SNAPSHOT_FILE
from shadow_pipeline_tests.ingest_helpers import pipeline_resources, replay_synthetic
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.partition_env import needs_partitioned_checks
from shadow_pipeline_tests.shadow_helpers import (
    SHADOW_ASSETS,
    loose_profiles,
    shadow_run_config,
    synthetic_iterations,
    synthetic_report,
)

HOUR = "2026-01-01-10:00"
GO_SYMBOL, NO_GO_SYMBOL = "BTCUSDT", "ETHUSDT"
Runs = dict[str, tuple[dg.ExecuteInProcessResult, dict, str]]


@pytest.fixture(scope="module")
def runs(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dg.DagsterInstance, Runs]]:
    """One instance, one hour: BTCUSDT under loosened gates (a Go), ETHUSDT under the default gates (a No-Go:
    two minutes hold 24 windows of 5 s, the profile wants 48 valid ones)."""
    folder = tmp_path_factory.mktemp("verdict")
    client = redis.Redis.from_url(redis_url)
    stream = "test:verdict:ticks"
    client.delete(stream)
    replay_synthetic(client, stream, 120, (GO_SYMBOL, NO_GO_SYMBOL), start="2026-01-01T10:00:00Z")
    resources = pipeline_resources(redis_url, stream, folder, "verdict")
    configs = {
        GO_SYMBOL: shadow_run_config(window_seconds=5, profiles_file=loose_profiles(folder)),
        NO_GO_SYMBOL: shadow_run_config(window_seconds=5),
    }
    with dagster_instance() as instance:
        results = {}
        for symbol, config in configs.items():
            result = dg.materialize(
                SHADOW_ASSETS,
                partition_key=partition_key(HOUR, symbol),
                resources=resources,
                run_config=config,
                instance=instance,
                raise_on_error=False,
            )
            assert result.success, symbol  # a No-Go is a verdict, not a failed run
            written = folder / "artifacts/shadow" / HOUR / symbol
            snapshot = json.loads((written / SNAPSHOT_FILE).read_text())
            results[symbol] = (result, snapshot, (written / REPORT_FILE).read_text())
        yield instance, results
    for key in client.scan_iter(match=f"{stream}*"):
        client.delete(key)


@needs_partitioned_checks
def test_every_check_of_a_partitioned_asset_is_partitioned_like_it() -> None:
    graph = definitions().resolve_asset_graph()
    partitioned = [key for key in graph.asset_check_keys if graph.get(key.asset_key).partitions_def is not None]
    for key in partitioned:
        assert graph.get(key).partitions_def == graph.get(key.asset_key).partitions_def, key
    names = {key.name for key in partitioned}
    assert {checks.MIN_VALID_WINDOWS, checks.KPI_THRESHOLDS, "prediction_accuracy", "rollup_kpi_thresholds"} <= names
    assert len(partitioned) >= 14  # ingest, shadow, live, reconciliation, dry-run, tune and rollup checks


@needs_partitioned_checks
def test_gate_evaluations_belong_to_their_partition(runs: tuple[dg.DagsterInstance, Runs]) -> None:
    instance, results = runs
    for symbol, (result, _, _) in results.items():
        evaluations = [e for e in result.get_asset_check_evaluations() if e.asset_key != dg.AssetKey("landing_zone")]
        assert {e.check_name for e in evaluations} >= {checks.MIN_VALID_WINDOWS, checks.KPI_THRESHOLDS}
        assert {e.partition for e in evaluations} == {str(partition_key(HOUR, symbol))}
    # The stored history tells BTCUSDT's evaluations from ETHUSDT's, and a partition filter finds each.
    check = dg.AssetCheckKey(dg.AssetKey("shadow_report"), checks.KPI_THRESHOLDS)
    history = instance.event_log_storage.get_asset_check_execution_history(check, limit=20)
    assert sorted(r.partition or "" for r in history) == sorted(str(partition_key(HOUR, s)) for s in results)
    for symbol, (result, snapshot, _) in results.items():
        mine = [r for r in history if r.partition == str(partition_key(HOUR, symbol))]
        assert [r.run_id for r in mine] == [result.run_id]
        passed = mine[0].event.asset_check_evaluation.passed  # type: ignore[union-attr]
        assert passed == (snapshot["verdict"] == GO)


def test_the_run_is_tagged_with_its_verdict(runs: tuple[dg.DagsterInstance, Runs]) -> None:
    instance, results = runs
    assert [results[s][1]["verdict"] for s in (GO_SYMBOL, NO_GO_SYMBOL)] == [GO, NO_GO]
    for symbol, (result, snapshot, _) in results.items():
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        tags = run.tags
        assert tags[VERDICT_TAG] == snapshot["verdict"], symbol
        if snapshot["verdict"] == GO:
            assert NO_GO_TAG not in tags and REASON_TAG not in tags
        else:
            assert tags[NO_GO_TAG] == partition_label(HOUR, symbol)
            failed = [g["kpi"] for g in snapshot["gates"] if not g["passed"]]
            assert tags[REASON_TAG].startswith(failed[0])
        dg.AssetSpec("tags_are_strict", tags={k: v for k, v in tags.items() if k.startswith("shadow/")})
        # the runs list filters on the tag
        found = instance.get_run_ids(dg.RunsFilter(tags={VERDICT_TAG: snapshot["verdict"]}))
        assert result.run_id in found
        assert result.asset_materializations_for_node("shadow_report")[0].metadata["run_tags"].value == {
            k: v for k, v in tags.items() if k.startswith("shadow/")
        }


def _outcome(kpi: str, value: float | None) -> GateOutcome:
    return GateOutcome(Gate(kpi, 0.0, at_least=True), value)


@pytest.mark.parametrize(
    ("earlier", "judged", "expected"),
    [
        ({}, Verdict([_outcome("net_bps", 1.0)]), {VERDICT_TAG: GO}),
        # a Go after a No-Go in the same run leaves the run No-Go
        ({VERDICT_TAG: NO_GO, NO_GO_TAG: "2024-08-09T00.ETHUSDT"}, Verdict([_outcome("net_bps", 1.0)]), {}),
        (
            {VERDICT_TAG: NO_GO, NO_GO_TAG: "2024-08-09T00.ETHUSDT", REASON_TAG: "risk_ratio_2_gt_1"},
            Verdict([_outcome("net_bps", -3.25)]),
            {
                VERDICT_TAG: NO_GO,
                NO_GO_TAG: "2024-08-09T00.ETHUSDT_2024-08-09T01.BTCUSDT.bybit-linear",
                REASON_TAG: "risk_ratio_2_gt_1",
            },
        ),
        ({}, Verdict([_outcome("net_bps", None)]), None),
        ({}, Verdict([_outcome("net_bps", -math.inf)]), None),
        ({}, Verdict([_outcome("net_bps", math.nan)]), None),
        ({}, Verdict([_outcome("net_bps", -1e300)]), None),
    ],
)
def test_verdict_tags_merge_and_stay_within_dagsters_rules(
    earlier: dict[str, str], judged: Verdict, expected: dict[str, str] | None
) -> None:
    tags = verdict_tags(earlier, "2024-08-09-01:00", "BTCUSDT.bybit-linear", judged)
    if expected is not None:
        assert tags == expected
    else:
        assert tags[VERDICT_TAG] == NO_GO and tags[REASON_TAG].startswith("net_bps_")
    dg.AssetSpec("tags_are_strict", tags=tags)  # raises on a key or value Dagster's strict rules refuse


def test_many_no_go_partitions_are_counted_not_cut() -> None:
    tags: dict[str, str] = {}
    hours = [f"2024-08-09-{h:02d}:00" for h in range(12)]
    for hour in hours:
        tags |= verdict_tags(tags, hour, "ETHUSDT", Verdict([_outcome("net_bps", -1.0)]))
    dg.AssetSpec("tags_are_strict", tags=tags)
    shown = [label for label in tags[NO_GO_TAG].split("_") if label.startswith("2024")]
    assert shown == [partition_label(h, "ETHUSDT") for h in hours[: len(shown)]]
    assert tags[NO_GO_TAG].endswith(f"and-{len(hours) - len(shown)}-more") and len(shown) < len(hours)


def test_people_read_rounded_kpis_while_the_data_keeps_full_precision(runs: tuple[dg.DagsterInstance, Runs]) -> None:
    _, results = runs
    result, snapshot, report = results[GO_SYMBOL]
    metadata = result.asset_materializations_for_node("shadow_report")[0].metadata
    for name, value in snapshot["kpis"].items():
        kpi = BY_NAME[name]
        shown = metadata[name].value
        if value is None:
            assert math.isnan(float(str(shown))) and "| n/a |" in report
            continue
        assert shown == kpi.rounded(value), name
        assert f"| {name} | {kpi.text(value)} |" in report, name
        if kpi.integer:
            assert isinstance(metadata[name], dg.IntMetadataValue)
    # the snapshot (data) is not rounded: some KPI carries more decimals than people read
    assert any(v is not None and v != BY_NAME[k].rounded(v) for k, v in snapshot["kpis"].items())
    gates = result.get_asset_check_evaluations()
    thresholds = next(e for e in gates if e.check_name == checks.KPI_THRESHOLDS)
    for gate in snapshot["gates"][1:]:
        shortfall = thresholds.metadata[f"{gate['kpi']}_shortfall"].value
        expected = BY_NAME[gate["kpi"]].rounded(gate["shortfall"])
        assert shortfall == expected or (expected is None and math.isnan(float(str(shortfall))))


def test_each_gated_kpi_shows_inline_as_a_line_with_its_gate(runs: tuple[dg.DagsterInstance, Runs]) -> None:
    _, results = runs
    result, snapshot, _ = results[NO_GO_SYMBOL]
    metadata = result.asset_materializations_for_node("shadow_report")[0].metadata
    for gate in snapshot["gates"][1:]:
        line = metadata[f"{gate['kpi']}_line"]
        assert isinstance(line, dg.MarkdownMetadataValue)
        assert line.value.startswith(f"![{gate['kpi']}](data:image/png;base64,")
        assert len(line.value) < INLINE_MARKDOWN_CHARS  # else the UI hides it behind [Show Markdown]
    assert len(str(metadata["kpi_plot"].value)) >= INLINE_MARKDOWN_CHARS  # why the lines exist


@pytest.fixture(scope="module")
def iterations() -> pd.DataFrame:
    return synthetic_iterations()


def _kpi_keys(client: redis.Redis) -> tuple[object, ...]:
    """What the export may write for BTCUSDT, to show a refused batch wrote nothing."""
    return (
        client.hgetall(KPI_ALL_HASH),
        client.hgetall(kpi_symbol_hash("BTCUSDT")),
        client.xlen(kpi_stream("BTCUSDT")),
    )


@pytest.mark.parametrize(
    ("verdict", "reasons", "error"),
    [
        ("MAYBE", "[]", "verdict"),
        (math.nan, "[]", "verdict"),
        ("GO", '["net_bps -1 < 0"]', "reasons"),  # a Go has no reasons
        ("NO-GO", "[]", "reasons"),  # a No-Go says why
        ("NO-GO", '[""]', "reasons"),
        ("NO-GO", '{"net_bps": "low"}', "not a list of texts"),
        ("NO-GO", "[1, 2]", "not a list of texts"),
        ("NO-GO", "[1e999]", "not a list of texts"),
        ("PENDING", "[]", "reasons"),  # only a live window is pending, and it has no reasons
    ],
)
def test_a_report_with_a_bad_verdict_exports_nothing(
    redis_client: redis.Redis, iterations: pd.DataFrame, verdict: object, reasons: str, error: str
) -> None:
    report = {**synthetic_report(iterations), "verdict": verdict, "reasons": reasons}
    before = _kpi_keys(redis_client)
    with pytest.raises(KpiRecordError, match=error):
        export_partition(redis_client, iterations, report, "both", per_symbol=True)
    assert _kpi_keys(redis_client) == before


def test_records_and_rows_without_the_verdict_still_read(redis_client: redis.Redis, iterations: pd.DataFrame) -> None:
    notes = run_notes(iterations)
    stream = kpi_stream(notes.symbol)
    redis_client.delete(stream)
    old = iteration_records(iterations, notes)[:3]  # written before the verdict was exported
    for record in old:
        redis_client.xadd(stream, to_fields(record))  # type: ignore[arg-type]
    back = read_stream_records(redis_client, notes.symbol, partition=notes.partition)  # what the dry-run reads
    assert back == old and all("verdict" not in r for r in back)
    redis_client.delete(stream)
    # a shadow_report row of an older version: reasons as '; '-joined text, kept whole (a reason may hold '; ')
    row = {**synthetic_report(iterations), "reasons": "valid_windows unknown: no fills; needs valid_windows >= 48"}
    assert report_record(row)["reasons"] == [row["reasons"]]


@pytest.mark.parametrize(
    ("kpi", "value", "text"),
    [
        ("net_bps", -2.51349, "-2.51"),  # bps: 2 decimals
        ("spread_capture_bps", -0.001, "0.00"),  # no negative zero
        ("p95_latency_ms", 43.849, "43.8"),  # ms: 1
        ("risk_ratio", 0.56125, "0.561"),  # shares and ratios: 3
        ("traded_notional", 13898.4712, "13,898.47"),  # quote amounts: 2, thousands separated
        ("total_fills", 1234.0, "1,234"),  # counts: integers
        ("total_fills", 9.5, "9.5"),  # a median of counts between two counts
        ("net_bps", None, "n/a"),
        ("net_bps", math.nan, "n/a"),
        ("p95_latency_ms", math.inf, "n/a"),
        ("net_bps", -1e300, f"{-1e300:,.2f}"),
    ],
)
def test_each_kpi_reads_in_its_units_decimals(kpi: str, value: float | None, text: str) -> None:
    assert BY_NAME[kpi].text(value) == text
