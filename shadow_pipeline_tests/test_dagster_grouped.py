"""The day x group layout (docs/partitions.md) through Dagster: a (day, group) run computes every hour of every
instrument of the group exactly as the hour x instrument runs of those units do, joins their checks, and withholds
only the units a blocking check failed. The layout is read when the code loads, so the day x group run happens in
a child interpreter (grouped_run.py) and this session's own runs are the hourly ones it is compared with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import redis

from shadow_pipeline import settings
from shadow_pipeline.defs import partitions
from shadow_pipeline.defs.export.assets import exported_kpis
from shadow_pipeline.defs.run_queue import shadow_tags
from shadow_pipeline.io_managers import UNITS_INDEX, ParquetIOManager
from shadow_pipeline.parquet import read_frame
from shadow_pipeline_tests.ingest_helpers import pipeline_resources, replay_synthetic
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.shadow_helpers import SHADOW_ASSETS, loose_profiles, shadow_run_config

pytestmark = pytest.mark.skipif(partitions.GROUPED, reason="compares with hourly runs: this session runs day x group")
ROOT = Path(__file__).resolve().parents[1]
DAY = "2024-08-09"
HOURS = ("2024-08-09-22:00", "2024-08-09-23:00")  # the replay's four minutes from 22:58
SYMBOLS = ("BTCUSDT", "ETHUSDT")
NEXT_DAY_START = "2024-08-10T00:05:00Z"  # past the day's end by more than the watermark
UNITS = [(hour, symbol) for hour in HOURS for symbol in SYMBOLS]
STREAM = "test:grouped:ticks"
GROUP = "binance-usdm.g00"  # both default-venue instruments, in one group of at most 16


@pytest.fixture(scope="module")
def stream(redis_url: str) -> Any:
    client = redis.Redis.from_url(redis_url)
    key = STREAM
    client.delete(key)
    replay_synthetic(client, key, seconds=240, symbols=SYMBOLS, start="2024-08-09T22:58:00Z")
    replay_synthetic(client, key, seconds=5, symbols=SYMBOLS, start=NEXT_DAY_START)  # closes the day
    yield key
    for name in client.scan_iter(match=f"{key}*"):
        client.delete(name)


@pytest.fixture(scope="module")
def grouped(redis_url: str, stream: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("grouped")
    env = {
        **os.environ,
        settings.PARTITION_LAYOUT_ENV: "day_x_group",
        settings.ARTIFACTS_DIR_ENV: str(folder / "artifacts"),
        settings.REDIS_URL_ENV: redis_url,
        "PYTHONPATH": str(ROOT),
    }
    args = [redis_url, stream, str(folder), "grouped", loose_profiles(folder), DAY]
    child = subprocess.run(
        [sys.executable, "-m", "shadow_pipeline_tests.grouped_run", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert child.returncode == 0, (child.stdout + child.stderr)[-4000:]
    return folder, json.loads(child.stdout.strip().splitlines()[-1])


def _unit_file(folder: Path, asset: str, hour: str, symbol: str) -> Path:
    found = list((folder / "assets" / asset).glob(f"**/{hour}/{symbol}.parquet"))
    assert len(found) == 1, f"{asset} {hour} {symbol}: {found}"
    return found[0]


def test_the_group_is_kept_and_its_partition_holds_every_hour_of_its_instruments(
    grouped: tuple[Path, dict[str, Any]],
) -> None:
    folder, out = grouped
    assert out["assignment"] == {symbol: GROUP for symbol in SYMBOLS}
    assert json.loads((folder / "artifacts" / "instrument_groups.json").read_text()) == out["assignment"]
    assert out["partition"] == f"{DAY}|{GROUP}"
    assert len(out["units"]) == 24 * len(SYMBOLS)  # every hour of the day; those without ticks are no units


def test_the_sensor_requests_a_closed_day_of_a_group_and_adds_the_group_first(
    grouped: tuple[Path, dict[str, Any]],
) -> None:
    sensed = grouped[1]["sensed"]
    assert sensed["added"] == [[GROUP]]
    assert [(key, partition) for key, partition, _ in sensed["runs"]] == [(f"pipeline:{DAY}:{GROUP}", f"{DAY}|{GROUP}")]
    assert sensed["runs"][0][2] == shadow_tags(STREAM)  # the group's one shard: one drain of it at a time
    assert sensed["open"] == [["2024-08-10-00:00", symbol] for symbol in SYMBOLS]  # the next day is still open


def test_a_day_of_a_group_computes_each_unit_as_its_hourly_partition_does(
    redis_url: str, stream: str, grouped: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    folder, out = grouped
    shadow = out["shadow"]
    assert shadow["success"]
    for asset in ("raw_ticks", "normalized_ticks", "shadow_iterations", "shadow_report", "exported_kpis"):
        assert shadow["materialized"][asset]["units"] == len(UNITS), asset
    for name, check in shadow["checks"].items():
        if not name.startswith("landing_zone:"):  # the drain is one, unpartitioned, in either layout
            assert check["units_checked"] == len(UNITS), name
    assert shadow["checks"]["raw_ticks:non_empty_partition"] == {
        "passed": True,
        "severity": "ERROR",
        "units_checked": 4,
        "units_failed": 0,
    }
    assert shadow["tags"]["shadow/verdict"] == "GO"  # loose gates: every unit a Go
    resources = pipeline_resources(redis_url, stream, tmp_path, "hourly")
    with dagster_instance() as instance:
        for hour, symbol in UNITS:
            result = dg.materialize(
                [*SHADOW_ASSETS, exported_kpis],
                partition_key=partitions.partition_key(hour, symbol),
                resources=resources,
                run_config=shadow_run_config(profiles_file=loose_profiles(tmp_path)),
                instance=instance,
            )
            assert result.success
    for hour, symbol in UNITS:
        for asset in ("normalized_ticks", "shadow_iterations", "fill_sensitivity", "shadow_report"):
            hourly = read_frame(str(tmp_path / "assets" / asset / hour / f"{symbol}.parquet"))
            daily = read_frame(str(_unit_file(folder, asset, hour, symbol)))
            assert len(daily) and len(hourly), (asset, hour, symbol)
            columns = [c for c in hourly.columns if c not in {"judged_at", "generated_at"}]
            pd.testing.assert_frame_equal(daily[columns], hourly[columns], check_like=True, obj=f"{asset} {hour}")


def test_a_failed_unit_is_left_out_and_a_blocking_check_failed_by_some_units_withholds_only_them(
    grouped: tuple[Path, dict[str, Any]],
) -> None:
    probe = grouped[1]["probe"]
    assert probe["success"]  # one unit failed, one was withheld: the others go on
    assert probe["checks"]["probe:even"] == {
        "passed": False,
        "severity": "WARN",  # some units pass: the rest go on downstream
        "units_checked": 3,
        "units_failed": 1,
    }
    assert probe["materialized"]["probe"]["units"] == 2
    assert probe["materialized"]["probe"]["withheld_units"] == f"{HOURS[1]}|ETHUSDT"
    assert f"{HOURS[0]}|ETHUSDT: ETHUSDT {HOURS[0]} cannot be probed" in probe["materialized"]["probe"]["failed_units"]
    assert probe["after"] == [f"{hour}|BTCUSDT" for hour in HOURS]


def test_blocking_checks_that_withhold_every_unit_stop_the_partition(grouped: tuple[Path, dict[str, Any]]) -> None:
    stopped = grouped[1]["stopped"]
    assert not stopped["success"]
    for name in ("probe_all:not_odd", "probe_all:not_even"):  # each fails half the units, together all of them
        assert stopped["checks"][name] == {"passed": False, "severity": "ERROR", "units_checked": 4, "units_failed": 2}
    assert "after_probe_all" not in stopped["materialized"]
    assert any("blocking asset check" in failure for failure in stopped["failures"])


def test_a_day_of_no_go_units_succeeds_without_a_live_ready_profile(grouped: tuple[Path, dict[str, Any]]) -> None:
    strict = grouped[1]["strict"]
    assert strict["success"], strict["failures"]
    assert strict["tags"]["shadow/verdict"] == "NO-GO"
    assert strict["materialized"]["shadow_report"]["units"] == len(UNITS)
    assert "live_ready_profile" not in strict["materialized"]


def test_the_tuner_refuses_hours_outside_the_partitions_day(grouped: tuple[Path, dict[str, Any]]) -> None:
    outside = grouped[1]["outside"]
    assert not outside["success"]
    assert any(
        f"hours 2024-08-08-23:00 are not in the partition's day {DAY}: tune that day's partition" in failure
        for failure in outside["failures"]
    ), outside["failures"]


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (["shadow", "--hour", HOURS[0], "--symbols", "BTCUSDT"], f"BTCUSDT {HOURS[0]} is in the partition {DAY}|"),
        (["report"], "the stored partitions are days of instrument groups"),
    ],
)
def test_the_per_hour_commands_refuse_under_day_x_group_naming_what_to_run(
    redis_url: str, tmp_path: Path, command: list[str], said: str
) -> None:
    env = {
        **os.environ,
        settings.PARTITION_LAYOUT_ENV: "day_x_group",
        settings.ARTIFACTS_DIR_ENV: str(tmp_path),
        settings.REDIS_URL_ENV: redis_url,
        "DAGSTER_HOME": str(tmp_path),
    }
    run = subprocess.run(
        [sys.executable, "-m", "shadow_pipeline.cli", *command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert run.returncode == 2 and len(errors) == 1, run.stderr[-2000:]
    assert said in errors[0] and "$SHADOW_PARTITION_LAYOUT=day_x_group" in errors[0]
    assert "Traceback" not in run.stderr


def test_the_day_stages_run_per_instrument_of_the_group(grouped: tuple[Path, dict[str, Any]]) -> None:
    """Rollups, the profile comparison and the tuner: one unit per instrument of the group over the day's hours."""
    folder, out = grouped
    later = out["later"]
    assert later["success"]
    for asset in ("shadow_rollup", "profile_comparison", "tuned_profile"):
        assert later["materialized"][asset]["units"] == len(SYMBOLS), asset
    assert later["checks"]["shadow_rollup:rollup_kpi_thresholds"]["units_checked"] == len(SYMBOLS)
    assert later["checks"]["tuned_profile:out_of_sample_gates"]["units_checked"] == len(SYMBOLS)
    for symbol in SYMBOLS:  # each rolled up over its two hours, the tuner judged on the newer one
        rollup = json.loads((folder / "artifacts" / "rollup" / DAY / symbol / "ROLLUP_SNAPSHOT.json").read_text())
        assert rollup["hours"] == list(HOURS)
        assert (folder / "artifacts" / "tune" / HOURS[-1] / symbol).is_dir()
    live = out["shadow"]["checks"]["shadow_iterations:live_windows_match_batch"]
    assert live == {"passed": True, "severity": "ERROR", "units_checked": len(UNITS), "units_failed": 0}


def _store(folder: Path, instance: dg.DagsterInstance) -> Any:
    context = dg.build_init_resource_context(instance=instance)
    return ParquetIOManager(base_path=str(folder)).create_io_manager(context)


def _contexts(key: str, instance: dg.DagsterInstance) -> tuple[dg.OutputContext, dg.InputContext]:
    asset = dg.AssetKey("normalized_ticks")
    output = dg.build_output_context(asset_key=asset, partition_key=key, instance=instance)
    return output, dg.build_input_context(asset_key=asset, partition_key=key, upstream_output=output, instance=instance)


def test_a_partition_of_units_is_stored_per_unit_and_loads_only_its_latest_units(tmp_path: Path) -> None:
    with dg.instance_for_test() as instance:
        store = _store(tmp_path, instance)

        def stored(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
            output, loading = _contexts(f"{DAY}|{GROUP}", instance)  # a context per output: it holds metadata
            store.handle_output(output, frames)
            return store.load_input(loading)

        frames = {f"{hour}|BTCUSDT": pd.DataFrame({"hour": [hour]}) for hour in HOURS}
        loaded = stored(frames)
        assert sorted(loaded) == sorted(frames) and loaded[f"{HOURS[0]}|BTCUSDT"]["hour"].tolist() == [HOURS[0]]
        newer = f"{HOURS[1]}|BTCUSDT"
        assert list(stored({newer: frames[newer]})) == [newer]  # a re-run with fewer units loads only them
        assert dict(stored({})) == {}


@pytest.mark.parametrize(
    ("index", "said"),
    [
        (b"{not json", "a damaged index of the partition's units"),
        (b"\xff\xfe", "a damaged index of the partition's units"),
        (b'{"a": 1}', "not a list of <hour>|<instrument> keys"),
        (b'["2024-08-09-22:00"]', "not a list of <hour>|<instrument> keys"),
        (b"[1, 2]", "not a list of <hour>|<instrument> keys"),
        (b'["2024-08-09-22:00|NOPE"]', "unit 2024-08-09-22:00|NOPE of the partition is missing"),
        (b"[" * 100_000 + b"]" * 100_000, "a damaged index of the partition's units"),
        (b"", "a damaged index of the partition's units"),
        (b"NaN", "not a list of <hour>|<instrument> keys"),
    ],
    ids=["not-json", "not-utf8", "object", "no-instrument", "numbers", "missing-unit", "deep", "empty", "nan"],
)
def test_a_damaged_index_of_units_is_one_error_naming_it(tmp_path: Path, index: bytes, said: str) -> None:
    with dg.instance_for_test() as instance:
        store = _store(tmp_path, instance)
        output, loading = _contexts(f"{DAY}|{GROUP}", instance)
        store.handle_output(output, {f"{HOURS[0]}|BTCUSDT": pd.DataFrame({"x": [1]})})
        (written,) = tmp_path.rglob(UNITS_INDEX)
        written.write_bytes(index)
        with pytest.raises(ValueError) as refused:
            store.load_input(loading)
        message = str(refused.value)
        del refused  # its traceback holds the contexts, which must go before the instance closes
    assert said in message and "materialize normalized_ticks again" in message
    assert "\n" not in message
