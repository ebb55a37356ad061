"""A day x group run, in the process it needs: ``$SHADOW_PARTITION_LAYOUT=day_x_group`` is read when the code
loads, so test_dagster_grouped.py runs this module in a child interpreter with it set and reads back the JSON it
prints (the materializations, check evaluations and run tags of the run).

    python -m shadow_pipeline_tests.grouped_run REDIS_URL STREAM FOLDER GROUP PROFILES DAY
"""

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from shadow_pipeline.defs import partitions
from shadow_pipeline.defs.export.assets import exported_kpis
from shadow_pipeline.defs.live.checks import live_windows_match_batch
from shadow_pipeline.defs.pipeline.sensors import closed_window_sensor
from shadow_pipeline.defs.rollup.assets import profile_comparison, shadow_rollup
from shadow_pipeline.defs.tune.assets import TuneConfig, tuned_profile
from shadow_pipeline.defs.units import PartitionValue, run_units
from shadow_pipeline.resources import RedisResource, TickStreamResource
from shadow_pipeline_tests.ingest_helpers import pipeline_resources
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.shadow_helpers import SHADOW_ASSETS, shadow_run_config

ODD_SYMBOL = "ETHUSDT"  # the unit the probe's blocking check fails


@dg.asset(
    partitions_def=partitions.tick_partitions,
    check_specs=[dg.AssetCheckSpec("even", asset="probe", blocking=True)],
)
def probe(context: dg.AssetExecutionContext, raw_ticks: PartitionValue) -> Iterator[Any]:
    """The driver's rules on a unit that fails (left out) and a blocking check that fails for some units (their
    values withheld downstream)."""

    def unit(hour: str, symbol: str, given: dict[str, Any]) -> Iterator[Any]:
        if symbol == ODD_SYMBOL and hour.endswith("22:00"):
            raise dg.Failure(f"{symbol} {hour} cannot be probed")
        yield dg.Output(pd.DataFrame({"ticks": [len(given["raw_ticks"])]}), metadata={"ticks": len(given["raw_ticks"])})
        yield dg.AssetCheckResult(passed=symbol != ODD_SYMBOL, description=f"{symbol} is odd")

    yield from run_units(context, unit, {"raw_ticks": raw_ticks})


@dg.asset(partitions_def=partitions.tick_partitions)
def after_probe(probe: PartitionValue) -> pd.DataFrame:
    return pd.DataFrame({"unit": sorted(probe)})


@dg.asset(
    partitions_def=partitions.tick_partitions,
    check_specs=[dg.AssetCheckSpec(name, asset="probe_all", blocking=True) for name in ("not_odd", "not_even")],
)
def probe_all(context: dg.AssetExecutionContext, raw_ticks: PartitionValue) -> Iterator[Any]:
    """Two blocking checks that between them fail every unit: the partition stops, as an hourly one would."""

    def unit(hour: str, symbol: str, given: dict[str, Any]) -> Iterator[Any]:
        yield dg.Output(pd.DataFrame({"ticks": [len(given["raw_ticks"])]}))
        yield dg.AssetCheckResult(check_name="not_odd", passed=symbol != ODD_SYMBOL)
        yield dg.AssetCheckResult(check_name="not_even", passed=symbol == ODD_SYMBOL)

    yield from run_units(context, unit, {"raw_ticks": raw_ticks})


@dg.asset(partitions_def=partitions.tick_partitions)
def after_probe_all(probe_all: PartitionValue) -> pd.DataFrame:
    return pd.DataFrame({"unit": sorted(probe_all)})


def _failures(result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        e.step_failure_data.error.message for e in result.all_events if e.is_step_failure and e.step_failure_data.error
    ]


def _events(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    materialized = {
        event.asset_key.to_user_string(): {
            name: value.value for name, value in event.metadata.items() if isinstance(value.value, int | str | float)
        }
        for event in (e.materialization for e in result.get_asset_materialization_events())
    }
    checks = {
        f"{e.asset_key.to_user_string()}:{e.check_name}": {
            "passed": e.passed,
            "severity": e.severity.value,
            "units_checked": e.metadata["units_checked"].value if "units_checked" in e.metadata else None,
            "units_failed": e.metadata["units_failed"].value if "units_failed" in e.metadata else None,
        }
        for e in result.get_asset_check_evaluations()
    }
    return {"success": result.success, "materialized": materialized, "checks": checks}


def _sensed(redis_url: str, stream: str) -> dict[str, Any]:
    """One tick of the closed-window sensor on a fresh instance, which knows no group yet."""
    with dagster_instance() as instance:
        context = dg.build_sensor_context(
            instance=instance,
            resources={"redis": RedisResource(url=redis_url), "tick_stream": TickStreamResource(stream=stream)},
        )
        result = closed_window_sensor(context)
        assert isinstance(result, dg.SensorResult)
        return {
            "runs": [(r.run_key, str(r.partition_key), r.tags) for r in result.run_requests or []],
            "added": [list(r.partition_keys) for r in result.dynamic_partitions_requests or []],
            "open": json.loads(result.cursor or "{}")["open"],
        }


def main(redis_url: str, stream: str, folder: str, group: str, profiles: str, day: str) -> dict[str, Any]:
    assert partitions.GROUPED, "run with $SHADOW_PARTITION_LAYOUT=day_x_group"
    sensed = _sensed(redis_url, stream)
    resources = pipeline_resources(redis_url, stream, Path(folder), group)
    with dagster_instance() as instance:
        assignment = partitions.instrument_group_assignment()
        groups = sorted(set(assignment.values()))
        instance.add_dynamic_partitions(partitions.GROUPS_NAME, groups)
        key = dg.MultiPartitionKey({"day": day, "group": groups[0]})
        shadow = dg.materialize(
            [*SHADOW_ASSETS, exported_kpis, live_windows_match_batch],
            partition_key=str(key),
            resources=resources,
            run_config=shadow_run_config(profiles_file=profiles),
            instance=instance,
            raise_on_error=False,
        )
        run = instance.get_run_by_id(shadow.run_id)
        tags = {k: v for k, v in (run.tags if run else {}).items() if k.startswith("shadow/")}
        probed = dg.materialize(
            [*SHADOW_ASSETS[:3], probe, after_probe],
            selection=[probe, after_probe],
            partition_key=str(key),
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
        after = probed.output_for_node("after_probe") if probed.success else None
        later = dg.materialize(
            [*SHADOW_ASSETS, shadow_rollup, profile_comparison, tuned_profile],
            selection=[shadow_rollup, profile_comparison, tuned_profile],
            partition_key=str(key),
            resources=resources,
            run_config=dg.RunConfig(
                ops={
                    "tuned_profile": TuneConfig(
                        profiles_file=profiles, window_seconds=60, train_hours=1, max_sets=2, workers=1
                    )
                }
            ),
            instance=instance,
            raise_on_error=False,
        )
        stopped = dg.materialize(
            [*SHADOW_ASSETS[:3], probe_all, after_probe_all],
            selection=[probe_all, after_probe_all],
            partition_key=str(key),
            resources=resources,
            instance=instance,
            raise_on_error=False,
        )
        outside = dg.materialize(  # hours of the day before: refused before any tuning
            [*SHADOW_ASSETS, tuned_profile],
            selection=[tuned_profile],
            partition_key=str(key),
            resources=resources,
            run_config=dg.RunConfig(
                ops={"tuned_profile": TuneConfig(profiles_file=profiles, hours=["2024-08-08-23:00", f"{day}-00:00"])}
            ),
            instance=instance,
            raise_on_error=False,
        )
        strict_resources = pipeline_resources(redis_url, stream, Path(folder) / "strict", f"{group}-strict")
        strict = dg.materialize(  # the packaged gates: every unit a No-Go, so no live-ready profile at all
            SHADOW_ASSETS,
            partition_key=str(key),
            resources=strict_resources,
            run_config=shadow_run_config(),
            instance=instance,
            raise_on_error=False,
        )
        run = instance.get_run_by_id(strict.run_id)
        strict_tags = {k: v for k, v in (run.tags if run else {}).items() if k.startswith("shadow/")}
    return {
        "stopped": {**_events(stopped), "failures": _failures(stopped)},
        "outside": {**_events(outside), "failures": _failures(outside)},
        "strict": {**_events(strict), "tags": strict_tags, "failures": _failures(strict)},
        "sensed": sensed,
        "assignment": assignment,
        "partition": str(key),
        "units": [list(unit) for unit in partitions.units_of(str(key))],
        "shadow": {**_events(shadow), "tags": tags},
        "probe": {**_events(probed), "after": None if after is None else after["unit"].tolist()},
        "later": _events(later),
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:7])))
