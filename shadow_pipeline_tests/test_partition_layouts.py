"""Partition layouts: the counts docs/partitions.md quotes, the instrument groups, and the Dagster definitions that
must have exactly those counts; then the bench's whole path (history, webserver, sensor) at a tiny size."""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import pytest

from shadow_pipeline import settings
from shadow_pipeline.defs import layouts, partitions
from shadow_pipeline.domain.market import partition_layouts as counts
from shadow_pipeline.domain.market.instruments import InstrumentId, instrument_key
from shadow_pipeline.domain.market.shards import shard_of
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


def members_of(group_of: Mapping[str, str]) -> dict[str, list[str]]:
    members: dict[str, list[str]] = {}
    for key, group in sorted(group_of.items()):
        members.setdefault(group, []).append(key)
    return members


def one_venue(count: int, venue: str = "bybit-linear", first: int = 1) -> list[str]:
    """``count`` instruments of ``venue`` from S<first>: S000 sorts before all of them."""
    return [instrument_key(f"S{number:03d}", venue) for number in range(first, first + count)]


def test_groups_hold_one_venue_each_and_at_most_per_group() -> None:
    instruments = instrument_venues(500)
    group_of = counts.assign_groups({}, [key for key, _ in instruments])
    assert set(group_of) == {key for key, _ in instruments}
    members = members_of(group_of)
    assert len(members) == 35
    assert max(len(keys) for keys in members.values()) <= 16
    assert min(len(keys) for keys in members.values()) >= 14  # a fresh desk: sizes differ by at most one
    venue_of = dict(instruments)
    assert all({venue_of[key] for key in keys} == {group.split(".g")[0]} for group, keys in members.items())


@pytest.mark.parametrize("per_venue", [1, 15, 16, 17, 30, 32, 100, 1600])
def test_a_fresh_desk_gets_the_round_robin_it_got_before_groups_were_kept(per_venue: int) -> None:
    """Each venue's sorted instruments dealt round-robin over its fewest groups, the rule before the assignment
    was kept: a desk starting now gets the groups the bench measured."""
    venues = ("binance-usdm", "bybit-linear")
    instruments = [key for venue in venues for key in one_venue(per_venue, venue)]
    dealt = {}
    for venue in venues:
        keys = sorted(one_venue(per_venue, venue))
        for position, key in enumerate(keys):
            dealt[key] = counts.group_key(venue, position % counts.groups_per_venue(len(keys), 16))
    assert counts.assign_groups({}, instruments) == dealt


@pytest.mark.parametrize(
    ("listed", "groups_after", "group_of_new"),
    [
        (0, 1, "g00"),
        (1, 1, "g00"),
        (15, 1, "g00"),
        (16, 2, "g01"),  # the venue is full: a new group
        (17, 2, "g01"),  # 9 + 8: the smaller one
        (30, 2, "g00"),  # 15 + 15: the lower number on a tie
        (31, 2, "g01"),
        (32, 3, "g02"),
        (100, 7, "g02"),  # 15, 15, 14, ...: the first of the smallest
    ],
)
def test_listing_an_instrument_that_sorts_first_moves_none(listed: int, groups_after: int, group_of_new: str) -> None:
    before = counts.assign_groups({}, one_venue(listed))
    after = counts.assign_groups(before, ["S000.bybit-linear", *one_venue(listed)])
    assert {key: after[key] for key in before} == before
    assert after["S000.bybit-linear"] == f"bybit-linear.{group_of_new}"
    assert len(set(after.values())) == groups_after
    assert max(len(keys) for keys in members_of(after).values()) <= 16


@pytest.mark.parametrize(
    ("listed", "delisted", "groups_after"),
    [
        (30, ["S001"], 2),  # the first: g00 shrinks to 14, no renumbering
        (30, ["S030"], 2),
        (31, [f"S{n:03d}" for n in range(1, 32, 2)], 1),  # all of g00: g01 keeps its number
        (100, [f"S{n:03d}" for n in range(1, 101, 3)], 7),
        (16, [f"S{n:03d}" for n in range(1, 17)], 0),
    ],
)
def test_delisting_moves_none(listed: int, delisted: list[str], groups_after: int) -> None:
    before = counts.assign_groups({}, one_venue(listed))
    gone = {instrument_key(symbol, "bybit-linear") for symbol in delisted}
    after = counts.assign_groups(before, [key for key in one_venue(listed) if key not in gone])
    assert after == {key: group for key, group in before.items() if key not in gone}
    assert len(set(after.values())) == groups_after


def test_a_full_venue_opens_a_group_at_the_lowest_free_number_and_only_as_many_as_needed() -> None:
    full = counts.assign_groups({}, one_venue(48))  # g00, g01, g02 of 16
    assert counts.assign_groups(full, one_venue(49))["S049.bybit-linear"] == "bybit-linear.g03"
    emptied = {key: group for key, group in full.items() if group != "bybit-linear.g01"}
    assert counts.assign_groups(emptied, [*emptied, "S049.bybit-linear"])["S049.bybit-linear"] == "bybit-linear.g01"
    one_short = dict(list(full.items())[1:])  # g00 has room for one
    grown = counts.assign_groups(one_short, [*one_short, *one_venue(17, first=49)])
    assert sorted(len(keys) for keys in members_of(grown).values()) == [16, 16, 16, 16]  # 17 new: one new group
    other_venue = counts.assign_groups(full, [*full, "S000"])
    assert other_venue["S000"] == "binance-usdm.g00"  # another venue's full groups are not its business


@pytest.mark.parametrize("seed", range(8))
def test_listings_and_delistings_keep_every_instrument_in_its_group(seed: int) -> None:
    """A seeded walk of listings and delistings over three venues; after every step: no instrument moved, every
    group holds at most 16 instruments of one venue, a venue opens a group only when its room was too small for
    its new instruments, and the order of the inputs does not matter."""
    chance = random.Random(seed)
    universe = [key for venue in ("binance-usdm", "bybit-linear", "okx-swap") for key in one_venue(150, venue)]
    group_of: dict[str, str] = {}
    for _ in range(30):
        listed = [key for key in universe if (key in group_of) != (chance.random() < 0.15)]
        shuffled = chance.sample(listed, len(listed))
        previous = dict(chance.sample(list(group_of.items()), len(group_of)))
        after = counts.assign_groups(previous, shuffled)
        assert after == counts.assign_groups(group_of, sorted(listed))
        assert all(after[key] == group for key, group in group_of.items() if key in after)
        assert set(after) == set(listed)
        for group, keys in members_of(after).items():
            assert len(keys) <= 16
            assert {InstrumentId.parse(key).venue for key in keys} == {group.split(".g")[0]}
        for venue in ("binance-usdm", "bybit-linear", "okx-swap"):
            kept = members_of({k: g for k, g in group_of.items() if k in after and g.startswith(venue + ".")})
            new = [k for k in listed if k not in group_of and InstrumentId.parse(k).venue == venue]
            groups = {g for g in after.values() if g.startswith(venue + ".")}
            if len(new) <= sum(16 - len(keys) for keys in kept.values()):
                assert groups == set(kept)
        group_of = after


@pytest.mark.parametrize(
    ("previous", "instruments", "per_group", "message"),
    [
        ({}, ["BTCUSDT", "ETHUSDT", "BTCUSDT"], 16, "instruments: BTCUSDT is given twice"),
        ({}, ["BTC-USDT"], 16, "instruments: 'BTC-USDT' is not an instrument id"),
        ({}, [""], 16, "is not an instrument id"),
        ({}, ["BTCUSDT.binance"], 16, "is not an instrument id"),  # a venue names exchange and market
        ({}, ["btcusdt"], 16, "'btcusdt' is not an instrument key as partitions write it ('BTCUSDT')"),
        ({}, ["BTCUSDT.binance-usdm"], 16, "as partitions write it ('BTCUSDT')"),
        ({}, ["BTCUSDT"], 0, "per_group must be >= 1, not 0"),
        ({}, one_venue(1601), 16, "bybit-linear would need more than 100 groups of 16"),
        ({"BTC USDT": "binance-usdm.g00"}, ["ETHUSDT"], 16, "previous assignment: 'BTC USDT' is not an instrument"),
        (
            {"BTCUSDT.bybit-linear": "binance-usdm.g00"},
            ["BTCUSDT.bybit-linear"],
            16,
            "previous assignment: BTCUSDT.bybit-linear (a bybit-linear instrument) is in 'binance-usdm.g00', "
            "not a group bybit-linear.gNN",
        ),
        ({"BTCUSDT": "binance-usdm.g7"}, ["BTCUSDT"], 16, "is in 'binance-usdm.g7'"),
        ({"BTCUSDT": "binance-usdm.g100"}, ["BTCUSDT"], 16, "is in 'binance-usdm.g100'"),
        ({"BTCUSDT": "g00"}, [], 16, "is in 'g00'"),
        (
            {key: "bybit-linear.g00" for key in one_venue(17)},
            one_venue(17),
            16,
            "previous assignment: group bybit-linear.g00 has 17 instruments, more than 16",
        ),
        (counts.assign_groups({}, one_venue(16)), [], 8, "group bybit-linear.g00 has 16 instruments, more than 8"),
    ],
)
def test_hostile_inputs_are_refused_with_what_is_wrong(
    previous: dict[str, str], instruments: list[str], per_group: int, message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        counts.assign_groups(previous, instruments, per_group)


def test_with_several_shards_a_group_holds_one_shard_of_one_venue() -> None:
    """So that a (day, group) run drains one shard, and the run queue's one-drain-per-shard limit lets the runs
    of other shards go on beside it (docs/partitions.md)."""
    instruments = [key for key, _ in instrument_venues(100)]
    group_of = counts.assign_groups({}, instruments, shards=8)
    members: dict[str, list[str]] = {}
    for key, group in group_of.items():
        members.setdefault(group, []).append(key)
    clusters: dict[str, int] = {}
    for group, keys in members.items():
        (venue,) = {InstrumentId.parse(key).venue for key in keys}
        (shard,) = {shard_of(key, 8) for key in keys}
        assert group.startswith(f"{venue}.s{shard}of8.g") and len(keys) <= counts.MAX_PER_GROUP, group
        clusters[f"{venue}.s{shard}"] = clusters.get(f"{venue}.s{shard}", 0) + len(keys)
    assert len(members) == sum(counts.groups_per_venue(n, counts.MAX_PER_GROUP) for n in clusters.values())
    assert len(members) <= 5 * (
        counts.groups_per_venue(100, counts.MAX_PER_GROUP) + 8 - 1
    )  # the bound test_deploy uses


def test_a_resharding_keeps_every_group_and_never_joins_one_opened_before_it() -> None:
    before = counts.assign_groups({}, one_venue(40), shards=4)
    after = counts.assign_groups(before, one_venue(60), shards=8)
    assert {key: after[key] for key in before} == before
    new_groups = {after[key] for key in one_venue(20, first=41)}
    assert not new_groups & set(before.values())  # a group of 4 shards holds two of 8: it takes no one new
    for key in one_venue(20, first=41):
        assert after[key].startswith(f"bybit-linear.s{shard_of(key, 8)}of8.g")
    assert counts.assign_groups(before, one_venue(40)) == before  # one shard again: the groups stay as they were


BTC_SHARD_OF_8 = shard_of("BTCUSDT", 8)


@pytest.mark.parametrize(
    ("group", "accepted"),
    [
        (f"binance-usdm.s{BTC_SHARD_OF_8}of8.g00", True),
        (f"binance-usdm.s{shard_of('BTCUSDT', 4)}of4.g00", True),  # a group from before a re-sharding
        ("binance-usdm.g00", True),
        (f"binance-usdm.s{(BTC_SHARD_OF_8 + 1) % 8}of8.g00", False),  # not BTCUSDT's shard
        (f"binance-usdm.s{BTC_SHARD_OF_8}.g00", False),
        (f"binance-usdm.s0{BTC_SHARD_OF_8}of8.g00", False),
        ("binance-usdm.sxof8.g00", False),
        ("binance-usdm.s0of1.g00", False),
        ("binance-usdm.s0of2000.g00", False),
        ("binance-usdm.s-1of8.g00", False),
        (f"binance-usdm.s{BTC_SHARD_OF_8}of08.g00", False),
        ("binance-usdm.s\u0663of8.g00", False),
        (f"bybit-linear.s{BTC_SHARD_OF_8}of8.g00", False),
    ],
)
def test_a_saved_shard_group_must_be_one_the_instrument_could_be_given(group: str, accepted: bool) -> None:
    if accepted:
        assert counts.assign_groups({"BTCUSDT": group}, ["BTCUSDT"], shards=8) == {"BTCUSDT": group}
        return
    with pytest.raises(ValueError, match=re.escape(f"is in {group!r}, not a group binance-usdm.gNN or")):
        counts.assign_groups({"BTCUSDT": group}, ["BTCUSDT"], shards=8)


def test_an_assignment_is_saved_and_loaded_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "artifacts" / counts.GROUPS_FILE
    assert counts.load_groups(path) == {}  # nothing saved yet: a fresh desk
    group_of = counts.assign_groups({}, [key for key, _ in instrument_venues(40)])
    counts.save_groups(path, group_of)
    assert counts.load_groups(path) == group_of
    assert list(json.loads(path.read_text())) == sorted(group_of)  # sorted, so that a change reads as a diff
    assert [p.name for p in path.parent.iterdir()] == [counts.GROUPS_FILE]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"{", "not JSON"),
        (b"", "not JSON"),
        (b"[]", "not an instrument group assignment"),
        (b"null", "not an instrument group assignment"),
        (b'{"BTCUSDT": 0}', "not an instrument group assignment"),
        (b'{"BTCUSDT": ["binance-usdm.g00"]}', "not an instrument group assignment"),
        (b'{"BTCUSDT": NaN}', "NaN is not a number"),
        (b'{"BTCUSDT": ' + b"9" * 400 + b"}", "out of range"),
        (b"[" * 5000 + b"]" * 5000, "nested 5000 deep"),
        (b"\xff\xfe\x00garbage", "not UTF-8"),
    ],
)
def test_a_damaged_assignment_file_is_one_error_naming_it(tmp_path: Path, text: bytes, message: str) -> None:
    path = tmp_path / counts.GROUPS_FILE
    path.write_bytes(text)
    with pytest.raises(ValueError, match=message) as caught:
        counts.load_groups(path)
    assert str(caught.value).startswith(str(path))


@pytest.mark.parametrize(("make", "message"), [(os.mkfifo, "not a regular file"), (os.mkdir, "a folder")])
def test_an_assignment_path_that_is_no_file_is_one_error_naming_it(
    tmp_path: Path, make: Callable[[Path], None], message: str
) -> None:
    path = tmp_path / counts.GROUPS_FILE
    make(path)  # a FIFO would block a plain open and read for ever
    with pytest.raises(ValueError, match=message) as caught:
        counts.load_groups(path)
    assert str(caught.value).startswith(str(path))


NOW = datetime(2026, 12, 6, 13, 45, tzinfo=UTC)


@pytest.mark.parametrize(
    ("first_hour", "retention_days", "now", "expected"),
    [
        ("2024-01-01-00:00", None, NOW, "2024-01-01-00:00"),  # unset: every hour from the first
        ("2024-01-01-00:00", 3, NOW, "2026-12-03-00:00"),  # three finished days back from today's midnight
        ("2026-12-05-07:00", 3, NOW, "2026-12-05-07:00"),  # the first hour, when it is the later
        ("2020-01-01-00:00", 1, datetime(2027, 1, 1), "2026-12-31-00:00"),  # naive is UTC; at midnight, a year back
        # 05:00 at UTC+8 is 21:00 UTC the day before: that day's midnight counts, not the local one
        ("2020-01-01-00:00", 2, datetime(2027, 3, 1, 5, tzinfo=timezone(timedelta(hours=8))), "2027-02-26-00:00"),
    ],
)
def test_the_moving_start_is_the_later_of_the_first_hour_and_the_days_kept(
    first_hour: str, retention_days: int | None, now: datetime, expected: str
) -> None:
    assert counts.moving_first_hour(first_hour, retention_days, now) == expected


def test_a_moving_start_bounds_the_hourly_partitions_to_the_days_kept() -> None:
    """Today's finished hours beside the days kept, for each instrument; a day later the count is the same."""
    for now in (NOW - timedelta(days=1), NOW):  # both past: a time partition ends at the clock too
        first = counts.moving_first_hour("2024-01-01-00:00", 30, now)
        layout = layouts.hour_x_instrument(["BTCUSDT", "ETHUSDT"], first, now.replace(minute=0))
        assert layout.get_num_partitions() == (30 * 24 + 13) * 2 == 1466


def test_a_moving_start_refuses_an_empty_retention() -> None:
    with pytest.raises(ValueError, match="retention_days"):
        counts.moving_first_hour("2024-01-01-00:00", 0, NOW)


def test_the_code_location_keeps_the_days_of_its_variable() -> None:
    """Loaded as Dagster loads it (the definitions in a fresh interpreter), with $SHADOW_RETENTION_DAYS=2, every
    tick-partitioned asset starts two midnights back and the rollups a day of it; an hour before both the first
    hour and the moving start names both fixes."""
    code = (
        "import json, shadow_pipeline.definitions as d; from shadow_pipeline.defs import partitions as p; "
        "defs = d.defs(); hourly = defs.resolve_assets_def('raw_ticks').partitions_def; "
        "daily = defs.resolve_assets_def('shadow_rollup').partitions_def; "
        "first = lambda q: q.get_partition_keys()[0].keys_by_dimension; "
        "keys = hourly.get_partition_keys(); last = keys[-1].keys_by_dimension['hour']\n"
        "try: p.partition_key('2023-12-01-00:00', 'BTCUSDT')\n"
        "except p.PartitionOutOfRange as exc: said = str(exc)\n"
        "print(json.dumps([len(keys), first(hourly)['hour'], last, first(daily)['day'], said]))"
    )
    env = {
        **os.environ,
        "SHADOW_RETENTION_DAYS": "2",
        "SHADOW_FIRST_HOUR": "2024-01-01",
        "SHADOW_SYMBOLS": "BTCUSDT,ETHUSDT",
    }
    before = datetime.now(UTC)
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    after = datetime.now(UTC)
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    count, start, last, day, said = json.loads(loaded.stdout.strip().splitlines()[-1])
    assert start in {counts.moving_first_hour("2024-01-01-00:00", 2, now) for now in (before, after)}
    hours = (
        datetime.strptime(last, settings.HOUR_FORMAT) - datetime.strptime(start, settings.HOUR_FORMAT)
    ) // timedelta(hours=1) + 1
    assert count == hours * 2 and hours <= 2 * 24 + 24  # every hour from the start to the last finished one, twice
    assert day == start[:10]
    assert said == (
        f"hour 2023-12-01-00:00 is before the hourly partitions {start} .. {last}: set $SHADOW_FIRST_HOUR "
        "(now 2024-01-01-00:00) to 2023-12-01-00:00 or earlier and raise $SHADOW_RETENTION_DAYS (now 2: the last 2 "
        "finished days are kept) or unset it"
    )


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
    """History, webserver and sensor at 10 instruments x 3 days, with the checks partitioned and not: the webserver
    lays out and reports materialized exactly the partitions the arithmetic says, every check's latest execution
    passed, and the sensor (the project's, on day x group) asks for a run per group of the closed day."""
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
    for form in ("desk", "desk_unpartitioned_checks"):  # the checks partitioned like their assets, and not
        assert report[form]["partitions_per_asset"] == desk
        assert report[form]["webserver_partition_stats"] == {
            "partitions": desk,
            "materialized": desk,
            "latest_check_statuses": "SUCCEEDED",
        }
        assert report[form]["history"]["runs"] == desk
    hour = counts.partition_count(counts.HOUR_X_INSTRUMENT, 1, 1, 0)
    assert report["hour_x_symbol"]["webserver_partition_stats"]["materialized"] == hour == 24
    assert report["sensor"]["runs_requested"] == groups
    assert set(report["desk"]["queries"]) >= {"shadow_report: partition_health", "asset catalog"}
