"""Partition layouts: the counts docs/partitions.md quotes, the instrument groups, and the Dagster definitions that
must have exactly those counts; then the bench's whole path (history, webserver, sensor) at a tiny size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from shadow_pipeline.defs import layouts, partitions
from shadow_pipeline.domain.market import partition_layouts as counts
from shadow_pipeline_tests.bench_partitions import VENUES, instrument_venues
from shadow_pipeline_tests.instance_helpers import dagster_instance

ROOT = Path(__file__).resolve().parents[1]
DESK = {venue: 100 for venue in VENUES}  # 500 instruments on 5 venues


@pytest.mark.parametrize(
    ("layout", "groups", "expected"),
    [
        (counts.HOUR_X_INSTRUMENT, 35, 8_760_000),
        (counts.DAY_X_INSTRUMENT, 35, 365_000),
        (counts.WEEK_X_INSTRUMENT, 35, 52_000),
        (counts.DAY_X_GROUP, 35, 25_550),
        (counts.DAY_X_GROUP, 32, 23_360),  # groups allowed to span venues: 500 / 16, rounded up once
    ],
)
def test_partitions_per_asset_for_500_instruments_over_two_years(
    layout: counts.Layout, groups: int, expected: int
) -> None:
    assert counts.partition_count(layout, 730, 500, groups) == expected


def test_only_the_group_layout_stays_within_dagsters_guidance_at_desk_scale() -> None:
    groups = counts.group_count(DESK, 16)
    within = [
        layout.name
        for layout in counts.LAYOUTS
        if counts.partition_count(layout, 730, 500, groups) <= counts.DAGSTER_MAX_PARTITIONS
    ]
    assert within == ["week x instrument", "day x group"]


@pytest.mark.parametrize(
    ("grain", "days", "expected"), [("hour", 1, 24), ("day", 730, 730), ("week", 13, 1), ("week", 6, 0)]
)
def test_time_partitions_count_whole_periods(grain: counts.Grain, days: int, expected: int) -> None:
    assert counts.time_partitions(grain, days) == expected


@pytest.mark.parametrize(("instruments", "per_group"), [(-1, 16), (10, 0)])
def test_impossible_group_sizes_are_refused(instruments: int, per_group: int) -> None:
    with pytest.raises(ValueError, match="per_group"):
        counts.groups_per_venue(instruments, per_group)


def test_a_venue_rounds_up_on_its_own() -> None:
    assert counts.group_count(DESK, 16) == 35  # 7 groups of 14-15 per venue, not 500 / 16 = 32
    assert counts.group_count({"binance-usdm": 16, "bybit-linear": 1}, 16) == 2
    assert counts.group_count({"binance-usdm": 0}, 16) == 0


def test_groups_hold_one_venue_each_and_at_most_per_group() -> None:
    instruments = instrument_venues(500)
    group_of = counts.assign_groups(instruments, 16)
    assert set(group_of) == {key for key, _ in instruments}
    members: dict[str, list[str]] = {}
    for key, group in group_of.items():
        members.setdefault(group, []).append(key)
    assert len(members) == 35
    assert max(len(keys) for keys in members.values()) <= 16
    assert min(len(keys) for keys in members.values()) >= 14  # round-robin: sizes differ by at most one
    venue_of = dict(instruments)
    assert all({venue_of[key] for key in keys} == {group.split(".g")[0]} for group, keys in members.items())
    assert counts.assign_groups(list(reversed(instruments)), 16) == group_of  # the order given does not matter


def test_desk_layout_has_retention_days_times_the_groups_that_exist() -> None:
    with dagster_instance() as instance:
        layouts.add_groups(instance, ["binance-usdm.g00", "bybit-linear.g00", "bybit-linear.g01"])
        layout = layouts.desk_scale(30, datetime(2026, 12, 6, 13, 45, tzinfo=UTC))
        keys = layout.get_partition_keys(dynamic_partitions_store=instance)
        assert len(keys) == counts.partition_count(counts.DAY_X_GROUP, 30, 0, 3) == 90
        days = sorted({key.keys_by_dimension["day"] for key in keys})
        assert (days[0], days[-1]) == ("2026-11-06", "2026-12-05")  # the last 30 finished UTC days
        assert (
            layouts.desk_scale(30, datetime(2026, 12, 7))
            .get_partition_keys(dynamic_partitions_store=instance)[0]
            .keys_by_dimension["day"]
            == "2026-11-07"
        )  # a day later, the start moved by a day


def test_desk_layout_refuses_an_empty_retention() -> None:
    with pytest.raises(ValueError, match="retention_days"):
        layouts.desk_scale(0)


def test_hour_layout_is_the_stages_layout_at_another_size() -> None:
    layout = layouts.hour_x_instrument(["ethusdt", "BTCUSDT.bybit-linear"], "2026-12-01-00:00", datetime(2026, 12, 3))
    assert layout.get_num_partitions() == counts.partition_count(counts.HOUR_X_INSTRUMENT, 2, 2, 0) == 96
    assert isinstance(layout, dg.MultiPartitionsDefinition)
    assert [d.name for d in layout.partitions_defs] == [d.name for d in partitions.tick_partitions.partitions_defs]
    assert layout.partitions_defs[1].partitions_def.get_partition_keys() == ["BTCUSDT.bybit-linear", "ETHUSDT"]


def test_the_bench_path_runs_and_its_counts_are_the_arithmetics(tmp_path: Path) -> None:
    """History, webserver and sensor at 10 instruments x 3 days: the webserver lays out and reports materialized
    exactly the partitions the arithmetic says, every check's latest execution passed, and the sensor asks for a
    run per instrument and closed hour."""
    out = tmp_path / "table.json"
    args = ["--instruments", "10", "--days", "3", "--contrast-instruments", "1", "--contrast-days", "1"]
    run = subprocess.run(
        [sys.executable, "-m", "shadow_pipeline_tests.bench_partitions", *args, "--repeats", "1", "--out", str(out)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    report = json.loads(out.read_text())
    groups = counts.group_count({venue: 2 for venue in VENUES}, 16)
    desk = counts.partition_count(counts.DAY_X_GROUP, 3, 10, groups)
    assert (report["groups"], desk) == (5, 15)
    assert report["desk"]["partitions_per_asset"] == desk
    assert report["desk"]["webserver_partition_stats"] == {
        "partitions": desk,
        "materialized": desk,
        "latest_check_statuses": "SUCCEEDED",
    }
    assert report["desk"]["history"]["runs"] == desk
    hour = counts.partition_count(counts.HOUR_X_INSTRUMENT, 1, 1, 0)
    assert report["hour_x_symbol"]["webserver_partition_stats"]["materialized"] == hour == 24
    assert report["sensor"]["runs_requested"] == 10 * 2
    assert set(report["desk"]["queries"]) >= {"shadow_report: partition_health", "asset catalog"}
