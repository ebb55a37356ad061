"""Rollups and profiles side by side through Dagster: a minute and a half of the synthetic BTCUSDT market across two
hours of one day, shadowed with ``moderate`` on both hours and ``conservative`` on the second, then rolled up per
day and compared (in Dagster and by the `compare` command)."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import redis
from click.testing import CliRunner

from shadow_pipeline.cli_compare import compare_command
from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import PARTITIONED_CHECKS, day_partitions, partition_key
from shadow_pipeline.defs.rollup.assets import RollupConfig, profile_comparison, shadow_rollup
from shadow_pipeline.defs.rollup.checks import ROLLUP_KPI_THRESHOLDS, ROLLUP_NO_GO_HOURS
from shadow_pipeline.defs.shadow.assets import shadow_iterations, shadow_report
from shadow_pipeline.defs.shadow.tags import PROFILE_TAG
from shadow_pipeline.domain.kpis.gates import GO, NO_GO
from shadow_pipeline.domain.kpis.rollup import Standing, profile_key, rank
from shadow_pipeline.domain.market.synthetic import generate
from shadow_pipeline.feed.replay import ReplayOptions, replay
from shadow_pipeline.reporting.rollup import (
    COMPARISON_JSON_FILE,
    COMPARISON_PLOT_FILE,
    KEPT_SNAPSHOT_FILE,
    ROLLUP_REPORT_FILE,
    ROLLUP_SNAPSHOT_FILE,
    WINDOWS_FILE,
    RollupError,
    roll_up,
)
from shadow_pipeline.reporting.snapshot import SNAPSHOT_FILE, find_snapshots
from shadow_pipeline.resources import ArtifactsResource
from shadow_pipeline_tests.ingest_helpers import pipeline_resources
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.shadow_helpers import shadow_run_config, synthetic_iterations

SYMBOL = "BTCUSDT"
START = pd.Timestamp("2024-08-09 00:59", tz="UTC")
SECONDS = 90  # a minute in the first hour (24 windows of 2.5 s), 30 s in the second (12: short of 20)
WINDOW_S = 2.5
DAY = "2024-08-09"
HOURS = ("2024-08-09-00:00", "2024-08-09-01:00")
EMPTY_DAY = "2024-08-10"
PROFILES = ("moderate", "conservative")
LOOSE = {  # every gate but the windows' out of the way: the second hour alone is a No-Go, the day is not
    "min_maker_share": 0.0,
    "min_net_bps": -10_000.0,
    "max_p95_latency_ms": 3_600_000.0,
    "max_risk_ratio": 100.0,
    "min_windows": 20,
    "min_ticks_per_window": 1,
}
INGEST = [landing_zone, raw_ticks, normalized_ticks]
ALL = [*INGEST, shadow_iterations, shadow_report, shadow_rollup, profile_comparison]


@dataclass
class Shadowed:
    folder: Path
    resources: dict[str, Any]
    instance: dg.DagsterInstance
    runs: dict[tuple[str, str], dg.ExecuteInProcessResult]

    @property
    def artifacts(self) -> ArtifactsResource:
        return ArtifactsResource(base_path=str(self.folder / "artifacts"))

    def kept(self, hour: str, profile: str) -> dict[str, Any]:
        snapshot: dict[str, Any] = json.loads(
            (self.artifacts.profile_folder(hour, SYMBOL, profile) / KEPT_SNAPSHOT_FILE).read_text()
        )
        return snapshot

    def day(
        self, asset: dg.AssetsDefinition, day: str = DAY, profile: str | None = None, artifacts: Path | None = None
    ) -> dg.ExecuteInProcessResult:
        """``artifacts``: another artifacts folder than the one the shadow runs wrote."""
        chosen = {**self.resources, "artifacts": ArtifactsResource(base_path=str(artifacts))} if artifacts else None
        config = dg.RunConfig(ops={"shadow_rollup": RollupConfig(profile=profile)})
        return dg.materialize(
            ALL,
            selection=[asset],
            partition_key=dg.MultiPartitionKey({"day": day, "symbol": SYMBOL}),
            resources=chosen or self.resources,
            run_config=config if asset is shadow_rollup else None,
            instance=self.instance,
            raise_on_error=False,
        )


def _profiles_file(folder: Path) -> str:
    data = json.loads(resources.files("shadow_pipeline.profiles").joinpath("shadow_profiles.json").read_text())
    for name in PROFILES:
        data["profiles"][name]["thresholds"] = LOOSE
    data.pop("$schema", None)
    path = folder / "loose_profiles.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.fixture(scope="module")
def shadowed(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shadowed]:
    """moderate on both hours, then conservative on the second: its stored partition is conservative's now."""
    folder = tmp_path_factory.mktemp("rollup")
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stream = f"test:{uuid.uuid4().hex[:12]}:rollup"
    replay(
        client,
        generate([SYMBOL], SECONDS, seed=7, start=START),
        ReplayOptions(stream=stream, maxlen=None, progress=False),
    )
    profiles_file = _profiles_file(folder)
    with dagster_instance() as instance:
        shadowed = Shadowed(folder, pipeline_resources(redis_url, stream, folder, "rollup"), instance, {})
        plan = [(hour, "moderate", [*INGEST, shadow_iterations, shadow_report]) for hour in HOURS]
        plan.append((HOURS[1], "conservative", [shadow_iterations, shadow_report]))
        for hour, profile, selection in plan:
            result = dg.materialize(
                ALL,
                selection=selection,
                partition_key=partition_key(hour, SYMBOL),
                resources=shadowed.resources,
                run_config=shadow_run_config(profile=profile, window_seconds=WINDOW_S, profiles_file=profiles_file),
                instance=instance,
                raise_on_error=False,
            )
            assert result.success, (hour, profile)
            shadowed.runs[(hour, profile)] = result
        yield shadowed
    for name in client.scan_iter(match=f"{stream}*"):
        client.delete(name)
    client.close()


def _failure(result: dg.ExecuteInProcessResult) -> str:
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    return str(failure.event_specific_data.error.message)  # type: ignore[union-attr]


def _checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_a_second_profile_on_the_hour_leaves_the_first_visible(shadowed: Shadowed) -> None:
    hour = HOURS[1]
    kept = {profile: shadowed.kept(hour, profile) for profile in PROFILES}
    assert {profile: snapshot["profile"] for profile, snapshot in kept.items()} == {p: p for p in PROFILES}
    assert kept["moderate"]["params_digest"] != kept["conservative"]["params_digest"]
    for profile in PROFILES:
        assert (shadowed.artifacts.profile_folder(hour, SYMBOL, profile) / WINDOWS_FILE).exists()
        run = shadowed.instance.get_run_by_id(shadowed.runs[(hour, profile)].run_id)
        assert run is not None and run.tags[PROFILE_TAG] == profile
    latest = json.loads((shadowed.artifacts.shadow_folder(hour, SYMBOL) / SNAPSHOT_FILE).read_text())
    assert latest["profile"] == "conservative"  # the newest run stays the partition's report
    audited = find_snapshots([shadowed.folder / "artifacts"])  # what `audit` judges: each partition's newest
    assert audited == [shadowed.artifacts.shadow_folder(h, SYMBOL) / SNAPSHOT_FILE for h in HOURS]


def _ranked_by_rule(snapshots: list[dict[str, Any]]) -> list[str]:
    """The rule spelled out on the snapshots' own numbers (not through the code under test)."""

    def key(s: dict[str, Any]) -> tuple[bool, float, int]:
        failed = sum(not g["passed"] for g in s["gates"])
        net = s["kpis"]["net_bps"]
        return (s["verdict"] != GO, -net if net is not None else float("inf"), failed)

    return [s["profile"] for s in sorted(snapshots, key=key)]


def test_the_day_comparison_lists_and_ranks_both_profiles(shadowed: Shadowed) -> None:
    result = shadowed.day(profile_comparison)
    assert result.success
    table = result.output_for_node("profile_comparison")
    assert set(table["profile"]) == set(PROFILES)
    # moderate ran on both hours (36 windows: Go), conservative on the short hour only (12 < 20: No-Go)
    rows = table.set_index("profile")
    assert rows.loc["moderate", "verdict"] == GO and rows.loc["moderate", "hours"] == 2
    assert rows.loc["conservative", "verdict"] == NO_GO and rows.loc["conservative", "hours"] == 1
    assert list(table["profile"]) == ["moderate", "conservative"]
    folder = shadowed.artifacts.rollup_folder(DAY, SYMBOL)
    document = json.loads((folder / COMPARISON_JSON_FILE).read_text())
    assert [row["profile"] for row in document["profiles"]] == list(table["profile"])
    assert (folder / COMPARISON_PLOT_FILE).stat().st_size > 1000


def test_compare_ranks_the_profiles_of_an_hour_by_the_rule(shadowed: Shadowed) -> None:
    hour = HOURS[1]
    base = str(shadowed.folder / "artifacts")
    ran = CliRunner().invoke(
        compare_command, ["--symbol", "btcusdt", "--hour", hour, "--artifacts-dir", base, "--json"]
    )
    document = json.loads(ran.output)
    listed = [row["profile"] for row in document["profiles"]]
    assert sorted(listed) == sorted(PROFILES)
    assert listed == _ranked_by_rule([shadowed.kept(hour, profile) for profile in PROFILES])
    assert ran.exit_code == (0 if document["profiles"][0]["verdict"] == GO else 1)
    table = CliRunner().invoke(compare_command, ["--symbol", SYMBOL, "--hour", hour, "--artifacts-dir", base])
    assert all(f"| {profile} " in table.output for profile in PROFILES)


def test_the_daily_rollup_pools_the_hours_and_names_the_no_go_hour(shadowed: Shadowed) -> None:
    result = shadowed.day(shadow_rollup, profile="moderate")
    assert result.success
    hourly = [shadowed.kept(hour, "moderate") for hour in HOURS]
    snapshot = json.loads((shadowed.artifacts.rollup_folder(DAY, SYMBOL) / ROLLUP_SNAPSHOT_FILE).read_text())
    assert snapshot["hours"] == list(HOURS) and snapshot["profile"] == "moderate"
    for name in ("valid_windows", "total_fills", "maker_count"):  # counts roll up as sums
        assert snapshot["kpis"][name] == sum(h["kpis"][name] for h in hourly), name
    assert [h["verdict"] for h in hourly] == [GO, NO_GO]
    assert snapshot["verdict"] == GO
    checks = _checks(result)
    assert checks[ROLLUP_KPI_THRESHOLDS].passed
    no_go = checks[ROLLUP_NO_GO_HOURS]
    assert not no_go.passed and no_go.severity == dg.AssetCheckSeverity.WARN
    assert no_go.description is not None and HOURS[1] in no_go.description and HOURS[0] not in no_go.description
    assert hourly[1]["reasons"][0] in no_go.description  # the hour's own reason: its valid windows short of 20
    day_partition = str(dg.MultiPartitionKey({"day": DAY, "symbol": SYMBOL}))
    for evaluation in checks.values():  # plain checks ($SHADOW_PARTITIONED_CHECKS=false) carry none of their own
        assert evaluation.partition == (day_partition if PARTITIONED_CHECKS else None)
    report = (shadowed.artifacts.rollup_folder(DAY, SYMBOL) / ROLLUP_REPORT_FILE).read_text()
    assert f"| {HOURS[1]} | {NO_GO} |" in report


def test_an_hour_without_a_kept_result_rolls_up_from_its_stored_windows(shadowed: Shadowed, tmp_path: Path) -> None:
    """An hour shadowed before results were kept: its stored partition (moderate's) stands in, judged anew."""
    base = tmp_path / "artifacts"
    shutil.copytree(shadowed.folder / "artifacts", base)
    shutil.rmtree(ArtifactsResource(base_path=str(base)).profile_folder(HOURS[0], SYMBOL, "moderate"))
    assert shadowed.day(shadow_rollup, profile="moderate", artifacts=base).success
    snapshot = json.loads((base / "rollup" / DAY / SYMBOL / ROLLUP_SNAPSHOT_FILE).read_text())
    assert [row["from"] for row in snapshot["hourly"]] == ["stored windows", "hourly report"]
    kept = shadowed.kept(HOURS[0], "moderate")
    assert snapshot["hourly"][0]["verdict"] == kept["verdict"]
    assert snapshot["hourly"][0]["valid_windows"] == kept["kpis"]["valid_windows"]


def test_the_rollup_takes_the_newest_hours_profile_by_default(shadowed: Shadowed) -> None:
    result = shadowed.day(shadow_rollup)
    assert result.success
    snapshot = json.loads((shadowed.artifacts.rollup_folder(DAY, SYMBOL) / ROLLUP_SNAPSHOT_FILE).read_text())
    assert snapshot["profile"] == "conservative" and snapshot["hours"] == [HOURS[1]]
    hour = shadowed.kept(HOURS[1], "conservative")
    assert snapshot["kpis"] == hour["kpis"] and snapshot["verdict"] == hour["verdict"] == NO_GO
    assert not _checks(result)[ROLLUP_KPI_THRESHOLDS].passed


def test_a_day_without_a_shadowed_hour_fails_with_the_reason(shadowed: Shadowed) -> None:
    assert day_partitions.has_partition_key(str(dg.MultiPartitionKey({"day": EMPTY_DAY, "symbol": SYMBOL})))
    message = _failure(shadowed.day(shadow_rollup, EMPTY_DAY))
    assert f"{SYMBOL} {EMPTY_DAY}: no shadowed hour stored for the day" in message
    assert "no result kept under any profile" in _failure(shadowed.day(profile_comparison, EMPTY_DAY))


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        ("../moderate", "cannot key a folder"),  # the rest of the names that are no folder: the table below
        ("aggressive", "no hour of the day shadowed with profile 'aggressive'"),
    ],
)
def test_a_rollup_profile_that_cannot_be_rolled_up_fails_with_the_reason(
    shadowed: Shadowed, profile: str, reason: str
) -> None:
    assert reason in _failure(shadowed.day(shadow_rollup, profile=profile))


@pytest.mark.parametrize(
    "name", ["..", ".", "../x", "a/b", "a\\b", "", " moderate", "moderate\x00", "MODERATE", "x" * 65, 3, None]
)
def test_a_profile_name_that_is_no_folder_name_is_refused(name: Any) -> None:
    with pytest.raises(ValueError, match="cannot key a folder"):
        profile_key(name)


def test_the_rank_rule_orders_go_then_net_bps_then_failed_gates() -> None:
    standings = [
        Standing("c", go=False, net_bps=9.0, failed_gates=1),
        Standing("b", go=True, net_bps=None, failed_gates=0),
        Standing("a", go=True, net_bps=1.0, failed_gates=0),
        Standing("e", go=False, net_bps=2.0, failed_gates=3),
        Standing("d", go=False, net_bps=2.0, failed_gates=1),
    ]
    assert [s.profile for s in rank(standings)] == ["a", "b", "c", "d", "e"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--symbol", SYMBOL], "exactly one of --day"),
        (["--symbol", SYMBOL, "--day", DAY, "--hour", HOURS[0]], "exactly one of --day"),
        (["--symbol", SYMBOL, "--day", "2024-13-01"], "is not a day"),
        (["--symbol", SYMBOL, "--day", "NaN"], "is not a day"),
        (["--symbol", SYMBOL, "--day", "2024-8-9"], "is not a day"),
        (["--symbol", SYMBOL, "--hour", "2024-08-09-01:30"], "is not an hour"),
        (["--symbol", SYMBOL, "--hour", "9" * 400], "is not an hour"),
        (["--symbol", "../etc", "--day", DAY], "etc"),
        (["--symbol", SYMBOL, "--day", EMPTY_DAY], "no result kept under any profile"),
        (["--symbol", SYMBOL, "--day", DAY, "--artifacts-dir", "/nonexistent/artifacts"], "does not exist"),
    ],
)
def test_compare_refuses_bad_input_with_one_error_line(
    shadowed: Shadowed, args: list[str], says: str, tmp_path: Path
) -> None:
    base = ["--artifacts-dir", str(shadowed.folder / "artifacts")] if "--artifacts-dir" not in args else []
    ran = CliRunner().invoke(compare_command, [*args, *base])
    assert ran.exit_code == 2, ran.output
    lines = ran.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], ran.output


@pytest.mark.parametrize("damage", [b"", b"not parquet", b"PAR1" * 10])
def test_compare_names_a_damaged_kept_result(shadowed: Shadowed, tmp_path: Path, damage: bytes) -> None:
    base = tmp_path / "artifacts"
    shutil.copytree(shadowed.folder / "artifacts", base)
    windows = ArtifactsResource(base_path=str(base)).profile_folder(HOURS[0], SYMBOL, "moderate") / WINDOWS_FILE
    windows.write_bytes(damage)
    ran = CliRunner().invoke(compare_command, ["--symbol", SYMBOL, "--day", DAY, "--artifacts-dir", str(base)])
    assert ran.exit_code == 2 and ran.output.startswith("error: ") and "damaged kept result" in ran.output


def test_hours_with_windows_of_different_lengths_are_not_pooled() -> None:
    hours = {HOURS[0]: synthetic_iterations(seconds=30, window_s=5), HOURS[1]: synthetic_iterations(seconds=30)}
    with pytest.raises(RollupError, match="windows of 5 and 10 s"):
        roll_up(DAY, hours, {}, "2024-08-10T00:00:00+00:00")
