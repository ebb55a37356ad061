"""The verdict across the fill model's knob, on hand-built ticks whose fills at each bound are worked out by hand."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest

from shadow_pipeline.domain.kpis.gates import GO, NO_GO
from shadow_pipeline.domain.strategies.profiles import FILL_QUEUE, Thresholds
from shadow_pipeline.domain.validation.sensitivity import CHOSEN, LOWER, UPPER, fill_sensitivity, verdict_flips
from shadow_pipeline_tests.sim_helpers import make_ticks, params, tick

# Every gate open but the one a fill decides: a window is valid with 2 ticks and a fill, one valid window is a Go
# (one 5 s window holds every tick; the 1 s markout of a fill at 50 ms is known by the tick at 2 s).
OPEN = Thresholds(
    min_maker_share=0.0,
    min_net_bps=-1e9,
    max_p95_latency_ms=1e9,
    max_risk_ratio=1e9,
    min_windows=1,
    min_ticks_per_window=2,
)


def _cancelled_ahead() -> pd.DataFrame:
    """The bid at 100.0 goes live at 15 ms behind the 2.0 displayed at 0 ms; 4.0 join behind it, then 3.0 leave
    without a trade. At share 0 the queue ahead stays min(2, 3 shown) = 2 and the sell of 1.0 at 50 ms only
    advances it; at share 1 the 3.0 cancelled were all ahead, so that sell fills us (1.0)."""
    ticks = make_ticks(
        [
            tick(0, 100.0, 100.2),
            tick(15, 100.0, 100.2),
            tick(30, 100.0, 100.2),
            tick(50, 100.0, 100.2, "sell", 100.0, 1.0),
            tick(2000, 100.0, 100.2),
        ]
    )
    ticks["bid_qty"] = [2.0, 6.0, 3.0, 3.0, 3.0]
    return ticks


def test_a_verdict_that_hinges_on_the_queue_assumption_is_shown_to_flip() -> None:
    queue = params(fill_model=FILL_QUEUE, size_decrease_share=0.0, min_requote_ms=1000)
    table = fill_sensitivity(_cancelled_ahead(), queue, OPEN, 5.0)
    rows = {row["assumption"]: row for row in table.to_dict(orient="records")}
    assert [rows[a]["value"] for a in (LOWER, CHOSEN, UPPER)] == [0.0, 0.0, 1.0]
    assert {row["knob"] for row in rows.values()} == {"size_decrease_share"}
    assert [rows[a]["total_fills"] for a in (LOWER, CHOSEN, UPPER)] == [0, 0, 1]
    assert [rows[a]["verdict"] for a in (LOWER, CHOSEN, UPPER)] == [NO_GO, NO_GO, GO]
    assert rows[UPPER]["fill_model"] == "queue (size_decrease_share 1)"
    assert rows[CHOSEN]["reasons"].startswith("valid_windows 0 < 1")
    assert verdict_flips(table)


def test_a_verdict_that_holds_across_the_range_does_not_flip() -> None:
    # a sell through the price (99.9 < 100.0) fills the bid whatever the queue ahead: Go at both bounds
    ticks = make_ticks(
        [
            tick(0, 100.0, 100.2),
            tick(15, 100.0, 100.2),
            tick(50, 99.9, 100.2, "sell", 99.9, 1.0),
            tick(2000, 99.9, 100.1),
        ]
    )
    ticks["bid_qty"] = 5.0
    table = fill_sensitivity(ticks, params(fill_model=FILL_QUEUE, min_requote_ms=1000), OPEN, 5.0)
    assert table["verdict"].tolist() == [GO, GO, GO] and not verdict_flips(table)


def test_the_dwell_model_is_varied_over_its_dwell() -> None:
    # dwell 100 ms (sim_helpers): the quote lives at 10 ms; a sell at 60 ms fills it only with a dwell <= 50 ms
    ticks = make_ticks([tick(0, 100.0, 100.2), tick(60, 100.0, 100.2, "sell", 100.0, 1.0), tick(2000, 100.0, 100.2)])
    table = fill_sensitivity(ticks, params(min_requote_ms=1000), OPEN, 5.0)
    assert table["knob"].tolist() == ["touch_dwell_ms"] * 3
    assert table["value"].tolist() == [0.0, 100.0, 10_000.0]
    assert table["total_fills"].tolist() == [1, 0, 0]
    assert table["fill_model"].tolist()[1] == "dwell (touch_dwell_ms 100)"


def test_the_chosen_row_is_the_shadow_itself() -> None:
    queue = replace(params(fill_model=FILL_QUEUE, min_requote_ms=1000), size_decrease_share=0.5)
    table = fill_sensitivity(_cancelled_ahead(), queue, OPEN, 5.0)
    assert table.loc[table["assumption"] == CHOSEN, "value"].item() == pytest.approx(0.5)
