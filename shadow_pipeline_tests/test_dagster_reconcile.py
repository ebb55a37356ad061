"""order_reconciliation through Dagster: the bot's real fills from Redis against the shadow's orders, hand-built
(the reports, the metadata and the three gates) and, end to end, from the bot's order stream through the order
engine."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import redis

from shadow_pipeline.defs.partitions import partition_key, tick_partitions
from shadow_pipeline.defs.reconcile import checks
from shadow_pipeline.defs.reconcile.assets import order_reconciliation, reconciliation_asset
from shadow_pipeline.domain.kpis.run_notes import RunNotes, with_notes
from shadow_pipeline.domain.strategies.profiles import StrategyParams
from shadow_pipeline.redis_io.keys import dead_letter_stream, fills_stream, order_stream
from shadow_pipeline.redis_io.order_stream import publish_intents
from shadow_pipeline.reporting.reconciliation import PLOT_FILES, REPORT_JSON, REPORT_MD
from shadow_pipeline.resources import ArtifactsResource, RedisResource
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.order_helpers import PARAMS, TICKS, Fill, orders_table, shadow_fill_table
from shadow_pipeline_tests.sim_helpers import MS, T0, gates

HOUR, SYMBOL = "2024-08-08-23:00", "BTCUSDT"  # the hour of T0
SIDES = {"a": 1, "b": 1, "c": -1, "d": -1}
SHADOW: list[Fill] = [("a", 2000, 100.0, 1.0, -0.01), ("b", 3000, 100.0, 0.5, -0.005)]


@dg.asset(name="normalized_ticks", partitions_def=tick_partitions)
def hand_built_ticks() -> pd.DataFrame:
    return TICKS


@dg.asset(name="shadow_iterations", partitions_def=tick_partitions)
def hand_built_windows() -> pd.DataFrame:
    """One window carrying the run notes, which is all the reconciliation reads of the shadow's windows."""
    notes = RunNotes(
        hour=HOUR,
        symbol=SYMBOL,
        profile=PARAMS.profile,
        window_seconds=10.0,
        commit="test",
        source="hand-built ticks",
        params=PARAMS,
        thresholds=gates(min_windows=1),
        ingest="",
        latency_notes="",
        feed_offset_ms=0.0,
    )
    return with_notes(pd.DataFrame({"window_end": [T0 + 10_000 * MS]}), notes)


def hand_built_orders(
    context: dg.AssetExecutionContext,
    hour: str,
    symbol: str,
    ticks: pd.DataFrame,
    params: StrategyParams,
    client: redis.Redis,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The order engine's outcome of the bot's four orders: a and b filled (b half), c and d not."""
    return orders_table(SIDES, SHADOW), shadow_fill_table(SIDES, SHADOW)


@pytest.fixture
def bot_fills(redis_client: redis.Redis) -> Iterator[Any]:
    """Writes the bot's fills to dryrun:fills:BTCUSDT as a bot would; the stream is deleted afterwards."""
    stream = fills_stream(SYMBOL)
    redis_client.delete(stream)

    def write(fills: Sequence[tuple[str, float, str, float, float, float]]) -> None:
        for order_id, ms, side, price, qty, fee in fills:
            entry: dict[Any, Any] = {
                "ts": T0 + int(ms * MS),
                "side": side,
                "price": price,
                "qty": qty,
                "is_maker": 1,
                "fee": fee,
            }
            if order_id:  # an entry without one is as a bot wrote it before order ids
                entry["order_id"] = order_id
            redis_client.xadd(stream, entry)

    yield write
    redis_client.delete(stream)


def _materialize(
    redis_url: str, folder: Path, reconciliation: dg.AssetsDefinition | None = None
) -> dg.ExecuteInProcessResult:
    """The reconciliation of the hand-built partition; by default with the hand-built shadow orders."""
    with dagster_instance() as instance:
        return dg.materialize(
            [hand_built_ticks, hand_built_windows, reconciliation or reconciliation_asset(hand_built_orders)],
            partition_key=partition_key(HOUR, SYMBOL),
            resources={"redis": RedisResource(url=redis_url), "artifacts": ArtifactsResource(base_path=str(folder))},
            instance=instance,
            raise_on_error=False,
        )


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_bot_that_fills_what_the_shadow_fills_passes_every_gate(
    redis_url: str, bot_fills: Any, tmp_path: Path
) -> None:
    # a and b really fill as the shadow said (b partially, in two fills); the bot also reports a fill of an
    # order it never placed and an old entry without an order id: counted, not matched.
    bot_fills(
        [
            ("a", 2000, "buy", 100.0, 1.0, -0.01),
            ("b", 3000, "buy", 100.0, 0.25, -0.0025),
            ("b", 3000, "buy", 100.0, 0.25, -0.0025),
            ("ghost", 4000, "sell", 100.3, 1.0, 0.0),
            ("", 4000, "sell", 100.3, 1.0, 0.0),
        ]
    )
    result = _materialize(redis_url, tmp_path)
    assert result.success
    gates_ = _checks(result)
    assert set(gates_) == {checks.FILL_PRECISION, checks.FILL_RECALL, checks.NET_BPS_GAP_CHECK}
    assert all(e.passed and e.severity == dg.AssetCheckSeverity.ERROR for e in gates_.values())
    [event] = result.asset_materializations_for_node(checks.ASSET)
    metadata = event.metadata
    assert (metadata["precision"].value, metadata["recall"].value) == (1.0, 1.0)
    assert metadata["net_bps_gap"].value == pytest.approx(0.0, abs=1e-9)
    assert (metadata["unplaced_fills"].value, metadata["unattributed_fills"].value) == (1, 1)
    assert str(metadata["waterfall_plot"].value).startswith("![waterfall](data:image/png;base64,")
    orders = result.output_for_node(checks.ASSET)
    assert orders.set_index("order_id")["group"].to_dict() == {"a": "both", "b": "both", "c": "neither", "d": "neither"}
    folder = tmp_path / "dryrun" / HOUR / SYMBOL
    report = json.loads((folder / REPORT_JSON).read_text())
    assert report["status"] == "PASS" and report["reality"] == f"5 fills from {fills_stream(SYMBOL)}"
    assert report["summary"]["orders_both"] == 2 and report["summary"]["fill_time_median_ms"] == 0.0
    assert [row["step"] for row in report["waterfall"]] == [
        "fees",
        "timing",
        "price and quantity",
        "missed fills added",
        "invented removed",
    ]
    markdown = (folder / REPORT_MD).read_text()
    assert "**Status: PASS**" in markdown
    assert set(report["plots"]) == set(PLOT_FILES) - {"models"}  # no bot plan given: no other models to calibrate
    for name in report["plots"].values():
        assert (folder / name).read_bytes().startswith(b"\x89PNG") and f"]({name})" in markdown


def test_a_shadow_that_invents_and_misses_fills_fails_its_gates(redis_url: str, bot_fills: Any, tmp_path: Path) -> None:
    # a fills in both (1 s later, at a 5 bp fee); b, which the shadow filled, does not; c, which it did not, does.
    bot_fills([("a", 3000, "buy", 100.0, 1.0, 0.05), ("c", 4000, "sell", 100.6, 1.0, 0.0)])
    result = _materialize(redis_url, tmp_path)
    assert result.success  # a verdict, not a crash
    gates_ = _checks(result)
    assert not gates_[checks.FILL_PRECISION].passed and not gates_[checks.FILL_RECALL].passed
    assert "precision >= min_fill_precision 0.85 fails: precision 0.5" in str(gates_[checks.FILL_PRECISION].description)
    assert gates_[checks.FILL_PRECISION].metadata["precision"].value == 0.5
    assert not gates_[checks.NET_BPS_GAP_CHECK].passed
    report = json.loads((tmp_path / "dryrun" / HOUR / SYMBOL / REPORT_JSON).read_text())
    assert report["status"] == "FAIL"
    components = sum(row["component_bps"] for row in report["waterfall"])
    assert components == pytest.approx(report["summary"]["net_bps_gap"], abs=1e-9)
    assert report["summary"]["fill_time_median_ms"] == 1000.0


def test_a_malformed_bot_fill_fails_the_step_naming_its_entry(
    redis_url: str, redis_client: redis.Redis, bot_fills: Any, tmp_path: Path
) -> None:
    bot_fills([("a", 2000, "buy", 100.0, 1.0, -0.01)])
    bad: dict[Any, Any] = {"ts": T0 + 3000 * MS, "side": "buy", "price": 100.0, "qty": 1.0, "is_maker": 1, "fee": 0.0}
    bad_id = redis_client.xadd(fills_stream(SYMBOL), {**bad, "order_id": "ордер"})
    result = _materialize(redis_url, tmp_path)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error
    assert error is not None and str(bad_id) in error.message and "is not 1-64 characters of" in error.message


@pytest.fixture
def bot_orders(redis_client: redis.Redis) -> Iterator[None]:
    """The bot's order stream for BTCUSDT: a market buy (m1, live at 2 s, filled at the 100.4 ask), a sell at
    100.6 (l1, which the shadow fills when the bid reaches it at 6 s) and a buy at 100.0 (l2, which it never
    fills: the market rises away from it)."""
    stream = order_stream(SYMBOL)
    redis_client.delete(stream, dead_letter_stream(stream))
    place = {"action": "place", "qty": "1.0"}
    publish_intents(
        redis_client,
        SYMBOL,
        [
            {**place, "order_id": "m1", "ts_decision": str(T0 + 1500 * MS), "side": "buy", "type": "market"},
            {**place, "order_id": "l1", "ts_decision": str(T0 + 1600 * MS), "side": "sell", "price": "100.6"},
            {**place, "order_id": "l2", "ts_decision": str(T0 + 1700 * MS), "side": "buy", "price": "100.0"},
        ],
    )
    yield
    redis_client.delete(stream, dead_letter_stream(stream))


def test_the_bots_order_stream_through_the_order_engine_end_to_end(
    redis_url: str, bot_orders: None, bot_fills: Any, tmp_path: Path
) -> None:
    # Really: m1 as the shadow has it, l1 never, l2 at 3 s. m1 in both, l1 invented, l2 missed.
    bot_fills([("m1", 2000, "buy", 100.4, 1.0, 0.0502), ("l2", 3000, "buy", 100.0, 1.0, -0.01)])
    result = _materialize(redis_url, tmp_path, order_reconciliation)
    assert result.success
    orders = result.output_for_node(checks.ASSET).set_index("order_id")
    assert orders["group"].to_dict() == {"m1": "both", "l1": "shadow only", "l2": "real only"}
    assert orders.loc["m1", "fill_time_error_ms"] == 0.0 and orders.loc["l1", "status"] == "filled"
    gates_ = _checks(result)
    assert gates_[checks.FILL_PRECISION].metadata["precision"].value == 0.5
    assert gates_[checks.FILL_RECALL].metadata["recall"].value == 0.5
    assert not any(e.passed for e in gates_.values())


def test_without_orders_in_the_hour_there_is_nothing_to_reconcile(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    redis_client.delete(order_stream(SYMBOL))
    result = _materialize(redis_url, tmp_path, order_reconciliation)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error
    assert error is not None and "has no valid order in the hour: nothing to reconcile" in error.message
