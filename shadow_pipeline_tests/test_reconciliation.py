"""The per-order reconciliation on hand-built orders and fills (answers worked out in the comments), and the
fills stream's order ids against a real Redis."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis

from shadow_pipeline.domain.validation.reconciliation import (
    BOTH,
    FEES,
    INVENTED,
    LOG_LOSS_EPS,
    MISSED,
    NEITHER,
    NET_BPS_GAP,
    PRECISION,
    PRICE,
    REAL_ONLY,
    RECALL,
    SHADOW_ONLY,
    STEPS,
    TIMING,
    Reconciliation,
    reconcile,
    reconciliation_gates,
)
from shadow_pipeline.redis_io.dryrun_fills import BadFillEntry, read_fills
from shadow_pipeline.redis_io.keys import fills_stream
from shadow_pipeline.reporting.reconciliation import (
    PLOT_FILES,
    REPORT_MD,
    reconciliation_plots,
    write_reconciliation_reports,
)
from shadow_pipeline_tests.order_helpers import PARAMS, TICKS, Fill, orders_table, real_fill_table, shadow_fill_table
from shadow_pipeline_tests.sim_helpers import MS, T0, gates


def _reconcile(
    sides: dict[str, int], shadow: Sequence[Fill], real: Sequence[Fill], p_fill: dict[str, float] | None = None
) -> Reconciliation:
    return reconcile(
        orders_table(sides, shadow, p_fill),
        shadow_fill_table(sides, shadow),
        real_fill_table(sides, real),
        TICKS,
        PARAMS,
    )


def _cells(result: Reconciliation) -> dict[str, tuple[int, float, float, float]]:
    rows = result.confusion.to_dict(orient="records")
    return {r["group"]: (r["orders"], r["order_qty"], r["shadow_filled_qty"], r["real_filled_qty"]) for r in rows}


# --- the match ----------------------------------------------------------------------------------------------

FOUR = {"a": 1, "b": 1, "c": -1, "d": -1}


def test_each_confusion_cell() -> None:
    # a fills in both, b in the shadow only (invented), c really only (missed), d in neither.
    result = _reconcile(
        FOUR,
        [("a", 2000, 100.0, 1.0, 0.0), ("b", 3000, 100.0, 0.5, 0.0)],
        [("a", 2000, 100.0, 1.0, 0.0), ("c", 4000, 100.5, 0.25, 0.0)],
    )
    assert result.orders.set_index("order_id")["group"].to_dict() == {
        "a": BOTH,
        "b": SHADOW_ONLY,
        "c": REAL_ONLY,
        "d": NEITHER,
    }
    assert _cells(result) == {
        BOTH: (1, 1.0, 1.0, 1.0),
        SHADOW_ONLY: (1, 1.0, 0.5, 0.0),
        REAL_ONLY: (1, 1.0, 0.0, 0.25),
        NEITHER: (1, 1.0, 0.0, 0.0),
    }
    assert (result.precision, result.recall) == (0.5, 0.5)  # 1 of 2 the shadow filled; 1 of 2 that filled
    assert result.notes == ()


def test_precision_and_recall_arithmetic() -> None:
    # 3 in both, 1 invented, 2 missed: precision 3 / (3 + 1), recall 3 / (3 + 2).
    sides = {name: 1 for name in "abcdef"}
    shadow = [(name, 2000, 100.0, 1.0, 0.0) for name in "abcd"]
    real = [(name, 2000, 100.0, 1.0, 0.0) for name in "abcef"]
    result = _reconcile(sides, shadow, real)
    assert result.precision == pytest.approx(0.75)
    assert result.recall == pytest.approx(0.6)
    assert result.summary()["orders_both"] == 3


def test_precision_and_recall_are_undefined_without_fills_and_say_so() -> None:
    result = _reconcile({"a": 1}, [], [])
    assert math.isnan(result.precision) and math.isnan(result.recall)
    assert "precision undefined: the shadow filled none of the orders" in result.notes
    assert "recall undefined: none of the orders really filled" in result.notes
    assert math.isnan(result.net_bps_gap) and math.isnan(result.fill_time_median_ms)


def test_a_real_fill_5_ms_after_the_shadows_is_an_error_of_5_ms() -> None:
    result = _reconcile({"a": 1}, [("a", 2000, 100.0, 1.0, 0.0)], [("a", 2005, 100.0, 1.0, 0.0)])
    assert result.orders["fill_time_error_ms"].tolist() == [5.0]
    assert (result.fill_time_median_ms, result.fill_time_p90_ms, result.fill_time_mean_ms) == (5.0, 5.0, 5.0)
    assert result.fill_time["error_ms"].tolist() == [5.0] * 7


def test_partial_fills_are_summed_per_order() -> None:
    # The bot's order fills 0.3 at 100.0 (3 s) then 0.7 at 100.1 (2.5 s, reported later): one order, 1.0 at
    # VWAP 100.07, first fill at 2.5 s; the shadow filled 1.0 at 2 s: time error 500 ms, quantity equal.
    real = [("a", 3000, 100.0, 0.3, 0.0), ("a", 2500, 100.1, 0.7, 0.0)]
    result = _reconcile({"a": 1, "b": 1}, [("a", 2000, 100.0, 1.0, 0.0), ("b", 2000, 100.0, 1.0, 0.0)], real)
    row = result.orders.set_index("order_id").loc["a"]
    assert row["real_fills"] == 2
    assert row["real_filled_qty"] == pytest.approx(1.0)
    assert row["real_vwap"] == pytest.approx(100.07)
    assert row["real_first_fill_ts"] == T0 + 2500 * MS
    assert row["fill_time_error_ms"] == 500.0
    # b: shadow 1.0, really nothing: not in the quantity error of orders filled in both
    assert result.qty_equal_share == 1.0 and result.qty_error_abs_mean == pytest.approx(0.0)


def test_quantity_errors_of_orders_filled_in_both() -> None:
    # a: real 0.5 of the shadow's 1.0 (error -0.5); b: equal. abs mean 0.25, half equal.
    result = _reconcile(
        {"a": 1, "b": 1},
        [("a", 2000, 100.0, 1.0, 0.0), ("b", 2000, 100.0, 1.0, 0.0)],
        [("a", 2000, 100.0, 0.5, 0.0), ("b", 2000, 100.0, 1.0, 0.0)],
    )
    assert result.orders["qty_error"].tolist() == pytest.approx([-0.5, 0.0])
    assert (result.qty_error_abs_mean, result.qty_equal_share) == (pytest.approx(0.25), 0.5)


def test_fills_of_orders_never_placed_are_counted_not_dropped() -> None:
    real = [("a", 2000, 100.0, 1.0, 0.0), ("ghost-1", 2000, 100.0, 0.5, 0.0), ("ghost-2", 3000, 100.0, 0.25, 0.0)]
    real_fills: pd.DataFrame = pd.concat(
        [real_fill_table({"a": 1}, real), real_fill_table({}, [("", 4000, 100.0, 1.0, 0.0)])]
    )
    shadow = [("a", 2000, 100.0, 1.0, 0.0)]
    result = reconcile(orders_table({"a": 1}, shadow), shadow_fill_table({"a": 1}, shadow), real_fills, TICKS, PARAMS)
    assert (result.unplaced_fills, result.unplaced_qty, result.unattributed_fills) == (2, 0.75, 1)
    assert "2 real fills name order ids that are not among the orders: left out" in result.notes
    assert "1 real fills carry no order id: left out" in result.notes
    assert result.orders["order_id"].tolist() == ["a"]  # they match no order ...
    assert (result.precision, result.recall) == (1.0, 1.0)  # ... and count in neither side's figures
    assert result.summary()["unplaced_fills"] == 2


# --- markouts and the net_bps waterfall --------------------------------------------------------------------


def test_group_markouts_by_hand() -> None:
    # a (buy, both): shadow at 100.0 (2 s, marked at 3 s: 100.4) -> +40 bps; real at 100.1 (5 s, marked at
    # 6 s: 100.7) -> 0.6 / 100.1 = +59.94 bps. b (sell, shadow only) at 100.0 at 1 s, marked 100.3: -30 bps.
    result = _reconcile(
        {"a": 1, "b": -1}, [("a", 2000, 100.0, 1.0, 0.0), ("b", 1000, 100.0, 1.0, 0.0)], [("a", 5000, 100.1, 1.0, 0.0)]
    )
    rows = {(r["group"], r["fills_of"]): r for r in result.markouts.to_dict(orient="records")}
    assert rows[(BOTH, "shadow")]["markout_bps"] == pytest.approx(40.0)
    assert rows[(BOTH, "real")]["markout_bps"] == pytest.approx(0.6 / 100.1 * 1e4)
    assert rows[(SHADOW_ONLY, "shadow")]["markout_bps"] == pytest.approx(-30.0)
    assert math.isnan(rows[(REAL_ONLY, "real")]["markout_bps"])  # no fill in that group
    # shadow net_bps over both shadow fills: (40 - 30) / 2 = 5; real: 59.94; gap 54.94
    assert result.shadow_net_bps == pytest.approx(5.0)
    assert result.net_bps_gap == pytest.approx(0.6 / 100.1 * 1e4 - 5.0)


def _components(result: Reconciliation) -> dict[str, float]:
    return dict(zip(result.waterfall["step"], result.waterfall["component_bps"], strict=True))


SHADOW_A = ("a", 2000, 100.0, 1.0, -0.01)  # a buy at 100.0 with a 1 bp rebate
CAUSES = {
    # cause: (the real fills, the one step that moves); the shadow filled SHADOW_A (and b in "invented")
    "nothing": ([SHADOW_A], None),
    FEES: ([("a", 2000, 100.0, 1.0, 0.05)], FEES),  # a 5 bp fee instead of the rebate
    TIMING: ([("a", 4000, 100.0, 1.0, -0.01)], TIMING),  # the same price 2 s later: marked at 5 s
    PRICE: ([("a", 2000, 99.9, 1.0, -0.00999)], PRICE),  # a better price at the same time and fee rate
    MISSED: ([SHADOW_A, ("c", 3000, 100.0, 1.0, 0.0)], MISSED),
    INVENTED: ([SHADOW_A], INVENTED),
}


@pytest.mark.parametrize("cause", list(CAUSES))
def test_each_waterfall_component_moves_only_with_its_cause(cause: str) -> None:
    real, moving = CAUSES[cause]
    shadow = [SHADOW_A, ("b", 1000, 100.0, 1.0, 0.0)] if cause == INVENTED else [SHADOW_A]
    result = _reconcile({"a": 1, "b": 1, "c": 1}, shadow, real)
    components = _components(result)
    assert sum(components.values()) == pytest.approx(result.net_bps_gap, abs=1e-9)
    for step in STEPS:
        if step == moving:
            assert abs(components[step]) > 1.0, (step, components)
        else:
            assert components[step] == pytest.approx(0.0, abs=1e-9), (step, components)
    if moving is None:
        assert result.net_bps_gap == pytest.approx(0.0, abs=1e-12)
    assert result.waterfall["net_bps_after"].iloc[-1] == pytest.approx(result.real_net_bps, abs=1e-9)


def test_the_fee_step_by_hand() -> None:
    # Shadow: +40 bps markout (bought 100.0, marked 100.4), 1 bp rebate: 41 bps. Real: same fill, 5 bp fee: 35.
    result = _reconcile({"a": 1}, [SHADOW_A], CAUSES[FEES][0])
    assert result.shadow_net_bps == pytest.approx(41.0)
    assert result.real_net_bps == pytest.approx(35.0)
    assert _components(result)[FEES] == pytest.approx(-6.0)


def test_the_waterfall_of_everything_at_once_sums_to_the_gap() -> None:
    rng = np.random.default_rng(7)
    sides = {f"o{i}": int(rng.choice([-1, 1])) for i in range(60)}

    def fills(fee_rate: float) -> list[Fill]:
        chosen = [name for name in sides if rng.random() < 0.7]
        return [
            (
                name,
                float(rng.integers(1, 9000)),
                price := float(rng.choice([99.9, 100.0, 100.1, 100.2])),
                qty := float(rng.choice([0.25, 0.5, 1.0])),
                fee_rate * price * qty,
            )
            for name in chosen
        ]

    result = _reconcile(sides, fills(-0.0001), fills(0.0002))
    assert set(result.orders["group"]) == {BOTH, SHADOW_ONLY, REAL_ONLY, NEITHER}
    assert all(abs(c) > 1e-6 for c in _components(result).values())
    assert sum(_components(result).values()) == pytest.approx(result.net_bps_gap, abs=1e-9)
    assert result.waterfall["net_bps_after"].iloc[-1] == pytest.approx(result.real_net_bps, abs=1e-9)


def test_the_waterfall_is_defined_when_the_shadow_and_reality_share_no_fill() -> None:
    # Missed fills go in before invented ones come out: the set in between is never empty.
    result = _reconcile({"a": 1, "b": 1}, [("a", 2000, 100.0, 1.0, 0.0)], [("b", 3000, 100.0, 1.0, 0.0)])
    components = _components(result)
    assert not any(math.isnan(c) for c in components.values())
    assert sum(components.values()) == pytest.approx(result.net_bps_gap, abs=1e-9)


def test_fills_without_a_markout_stay_out_of_net_bps_and_are_noted() -> None:
    # The real fill at 9.5 s would be marked at 10.5 s, after the last tick.
    result = _reconcile({"a": 1}, [("a", 2000, 100.0, 1.0, 0.0)], [("a", 9500, 100.0, 1.0, 0.0)])
    assert math.isnan(result.real_net_bps)
    assert "1 fills within 1 s of the last tick have no markout: not in net_bps" in result.notes
    assert "net_bps gap undefined: a side has no fill with a known markout" in result.notes


# --- calibration -------------------------------------------------------------------------------------------


def test_calibration_bins_brier_and_log_loss_for_known_p() -> None:
    # p 0.05 (not filled), 0.15 (filled), 0.15 (not), 0.95 (filled), 1.0 (filled).
    # Brier = (0.05^2 + 0.85^2 + 0.15^2 + 0.05^2 + 0) / 5 = 0.75 / 5 = 0.15.
    p_fill = {"a": 0.05, "b": 0.15, "c": 0.15, "d": 0.95, "e": 1.0}
    real = [(name, 2000, 100.0, 1.0, 0.0) for name in "bde"]
    result = _reconcile(dict.fromkeys(p_fill, 1), [], real, p_fill)
    table = result.calibration
    assert len(table) == 10 and table["orders"].tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert table["low"].tolist() == pytest.approx([k / 10 for k in range(10)])
    assert table["fill_rate"].iloc[[0, 1, 9]].tolist() == [0.0, 0.5, 1.0]
    assert table["mean_predicted"].iloc[[0, 1, 9]].tolist() == pytest.approx([0.05, 0.15, 0.975])
    assert table["fill_rate"].iloc[2:9].isna().all()  # an empty bin has no rate, not 0
    assert result.brier == pytest.approx(0.15)
    expected = -(math.log(0.95) + math.log(0.15) + math.log(0.85) + math.log(0.95) + math.log(1 - LOG_LOSS_EPS)) / 5
    assert result.log_loss == pytest.approx(expected)


def test_calibration_of_a_risk_averse_shadow_whose_p_is_0_or_1() -> None:
    # a, b predicted filled (b did not), c, d predicted unfilled (d did): Brier 2/4; log loss 2 * 34.54 / 4
    shadow = [("a", 2000, 100.0, 1.0, 0.0), ("b", 2000, 100.0, 1.0, 0.0)]
    real = [("a", 2000, 100.0, 1.0, 0.0), ("d", 2000, 100.0, 1.0, 0.0)]
    result = _reconcile(dict.fromkeys("abcd", 1), shadow, real)
    assert result.calibration["orders"].tolist() == [2, 0, 0, 0, 0, 0, 0, 0, 0, 2]
    assert result.calibration["fill_rate"].iloc[[0, 9]].tolist() == [0.5, 0.5]
    assert result.brier == 0.5
    assert result.log_loss == pytest.approx(-2 * math.log(LOG_LOSS_EPS) / 4, rel=1e-4)  # 1 - eps rounds
    assert math.isfinite(result.log_loss)


# --- hostile inputs to the match ---------------------------------------------------------------------------


def _base() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    shadow = [("a", 2000, 100.0, 1.0, 0.0)]
    return orders_table({"a": 1}, shadow), shadow_fill_table({"a": 1}, shadow), real_fill_table({"a": 1}, shadow)


def _hostile(part: str, change: Any) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    frames = dict(zip(("orders", "shadow", "real"), _base(), strict=True))
    frames[part] = change(frames[part])
    return frames["orders"], frames["shadow"], frames["real"]


@pytest.mark.parametrize(
    ("part", "change", "said"),
    [
        ("orders", lambda f: f.drop(columns=["p_fill"]), "orders: missing columns p_fill"),
        ("orders", lambda f: pd.concat([f, f]), "order id 'a' appears more than once"),
        ("orders", lambda f: f.assign(p_fill=np.nan), r"p_fill must be a probability in \[0, 1\]"),
        ("orders", lambda f: f.assign(p_fill=1.5), r"p_fill must be a probability in \[0, 1\]"),
        ("orders", lambda f: f.assign(p_fill=-0.1), r"p_fill must be a probability in \[0, 1\]"),
        ("shadow", lambda f: f.drop(columns=["order_id"]), "shadow fills: missing columns order_id"),
        ("shadow", lambda f: f.assign(order_id="zz"), "shadow fills: order id 'zz' is not in orders"),
        ("real", lambda f: f.drop(columns=["order_id"]), "real fills: missing columns order_id"),
        ("real", lambda f: f.assign(side="sell"), "a fill of order 'a' is on the other side"),
        ("real", lambda f: f.assign(side="short"), "side must be 'buy' or 'sell'"),
        ("real", lambda f: f.assign(price=np.nan), "price must be numeric without NaN"),
        ("real", lambda f: f.assign(qty=-1.0), "qty must be positive"),
        ("real", lambda f: f.assign(ts=T0), "has no tick before it"),
    ],
)
def test_hostile_inputs_to_the_match_are_refused(part: str, change: Any, said: str) -> None:
    orders, shadow, real = _hostile(part, change)
    with pytest.raises(ValueError, match=said):
        reconcile(orders, shadow, real, TICKS, PARAMS)


# --- order ids in the fills stream (real Redis) ------------------------------------------------------------


@pytest.fixture
def symbol(redis_url: str) -> Iterator[str]:
    """A symbol of this test alone; its fills stream is deleted afterwards."""
    name = f"TEST{uuid.uuid4().hex[:8].upper()}"
    yield name
    redis.Redis.from_url(redis_url).delete(fills_stream(name))


FILL: dict[Any, Any] = {
    "ts": str(T0 + 2000 * MS),
    "side": "buy",
    "price": "100.0",
    "qty": "1.0",
    "is_maker": "1",
    "fee": "0.0",
}
WINDOW = (T0, T0 + 10_000 * MS)


@pytest.mark.parametrize(
    ("order_id", "read_as"),
    [
        (None, ""),  # written before order ids: still readable, matched with no order
        ("bot-1_2:3/4.5", "bot-1_2:3/4.5"),
        ("x" * 64, "x" * 64),
    ],
)
def test_order_ids_the_reader_takes(redis_url: str, symbol: str, order_id: str | None, read_as: str) -> None:
    client = redis.Redis.from_url(redis_url)
    entry: dict[Any, Any] = {**FILL, **({} if order_id is None else {"order_id": order_id})}
    client.xadd(fills_stream(symbol), entry)
    fills = read_fills(client, symbol, *WINDOW)
    assert fills["order_id"].tolist() == [read_as]
    assert list(fills.columns) == ["ts", "side", "price", "qty", "is_maker", "fee", "order_id"]


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"order_id": ""}, "order_id '' is not 1-64 characters of"),
        ({"order_id": "x" * 65}, "is not 1-64 characters of"),
        ({"order_id": "x" * 10_000}, "is not 1-64 characters of"),
        ({"order_id": "ордер-1"}, "is not 1-64 characters of"),
        ({"order_id": "a b"}, "is not 1-64 characters of"),
        ({"order_id": "a;b"}, "is not 1-64 characters of"),  # printable, but no venue's client id
        ({"order_id": "a\tb"}, "is not 1-64 characters of"),
        ({"order_id": "a\x00"}, "is not 1-64 characters of"),
        ({"order_id": "a\nb"}, "is not 1-64 characters of"),
        ({"order_id": b"\xff\xfe"}, "is not 1-64 characters of"),  # not UTF-8
        ({"price": "inf"}, "finite numbers"),
        ({"fee": "nan"}, "finite numbers"),
        ({"qty": "1e999"}, "finite numbers"),
    ],
)
def test_hostile_fill_entries_are_refused_naming_the_entry(
    redis_url: str, symbol: str, fields: dict[str, Any], said: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    entry: dict[Any, Any] = {**FILL, **fields}
    entry_id = client.xadd(fills_stream(symbol), entry)
    with pytest.raises(BadFillEntry, match=said) as raised:
        read_fills(client, symbol, *WINDOW)
    assert str(entry_id) in str(raised.value) and len(str(raised.value)) < 300


# --- the report --------------------------------------------------------------------------------------------


def test_a_report_of_nothing_defined_is_written_with_nulls(tmp_path: Path) -> None:
    """No fills on either side: every ratio undefined, the plots still drawn, the JSON strict (NaN is null)."""
    result = _reconcile({"a": 1}, [], [])
    verdicts = reconciliation_gates(result, gates(min_windows=1))
    assert [(g.metric, g.passed, g.note) for g in verdicts] == [
        (PRECISION, False, "undefined: the shadow filled no order"),
        (RECALL, False, "undefined: no order really filled"),
        (NET_BPS_GAP, False, "undefined: a side has no marked fill"),
    ]
    notes = {"hour": "2024-08-08-23:00", "symbol": "BTCUSDT", "profile": "test", "shadow": "s", "reality": "r"}
    path = write_reconciliation_reports(tmp_path, result, verdicts, notes, reconciliation_plots(result, "test"))
    report = json.loads(path.read_text())
    assert report["status"] == "FAIL"
    assert report["summary"]["precision"] is None and report["summary"]["net_bps_gap"] is None
    assert all(row["component_bps"] is None for row in report["waterfall"])
    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert written == sorted(v for k, v in PLOT_FILES.items() if k != "models")  # no other models: no bot plan
    assert "**Status: FAIL**" in (tmp_path / REPORT_MD).read_text()


def test_the_gates_compare_with_the_profiles_thresholds() -> None:
    # precision 0.5 and recall 1.0 against 0.5 and 0.85; b's invented fill at 1 s (+30 bps) puts the shadow at
    # (40 + 30) / 2 = 35 bps against the real 40: a gap of 5 bps against 0.3.
    shadow = [("a", 2000, 100.0, 1.0, 0.0), ("b", 1000, 100.0, 1.0, 0.0)]
    result = _reconcile({"a": 1, "b": 1}, shadow, [("a", 2000, 100.0, 1.0, 0.0)])
    loose = replace(gates(min_windows=1), min_fill_precision=0.5)
    verdicts = {g.metric: g for g in reconciliation_gates(result, loose)}
    assert verdicts[PRECISION].passed and verdicts[PRECISION].rule == "precision >= min_fill_precision 0.5"
    assert verdicts[RECALL].passed and verdicts[RECALL].value == 1.0
    assert not verdicts[NET_BPS_GAP].passed and verdicts[NET_BPS_GAP].value == pytest.approx(5.0)
    assert verdicts[NET_BPS_GAP].rule == "|net_bps_gap| <= max_net_bps_gap 0.3"
