"""An asset body written for one unit, an (hour, instrument), run over every unit of the partition.

Under the default layout a partition is one unit and the body's outputs and check results pass through as they
are. Under ``day_x_group`` (docs/partitions.md) the body runs once per unit and this module joins the results, so
the body stays the hourly computation it was:

- each output becomes a mapping ``{"<hour>|<instrument>": value}`` (the io_manager stores a file per unit), and
  its metadata a table of the units with their numbers; a unit's DataFrame is spilled to a temporary Parquet file
  as soon as its body yields it, so a day of a group is never in memory at once (the inputs are read a unit at a
  time too: ``parquet.UnitFrames``);
- each check becomes one result over the units: it passes when every unit passes; when only some fail, it fails as
  a warning, the failing units' values are withheld from a blocking check's asset (nothing downstream runs on
  them, as a failed blocking check stops an hourly partition) and the rest go on; when every unit fails, it fails
  with the unit's own severity;
- a unit whose body raises ``dg.Failure`` is left out, logged and listed; the step fails when every unit failed, or
  when a required output has no unit at all (no input units, or none with data);
- when the blocking checks withhold every unit of an asset, their failures keep the units' own severity, so that
  they stop downstream as they would an hourly partition.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from shadow_pipeline.defs import partitions
from shadow_pipeline.parquet import UnitFrames, write_frame

UnitBody = Callable[[str, str, dict[str, Any]], Iterable[Any]]
# An input of a tick-partitioned asset: a DataFrame, or under day_x_group a dict of them by unit. Any, because
# Dagster type-checks an annotated input with isinstance and refuses a Union.
PartitionValue = Any
MAX_TABLE_ROWS = 100
MAX_TABLE_COLUMNS = 8
_SCALARS = (dg.IntMetadataValue, dg.FloatMetadataValue, dg.BoolMetadataValue, dg.TextMetadataValue)


def unit_key(hour: str, symbol: str) -> str:
    """``2024-08-09-00:00|BTCUSDT``: the hour x instrument partition key of the unit, in either layout."""
    return f"{hour}|{symbol}"


@dataclass
class _Joined:
    asset: dg.AssetKey | None  # of a check result that names none: the step's only asset
    check_keys: list[dg.AssetCheckKey]  # of the step, for a check result that names no check (its asset's only)
    spill: Path  # where the units' frames wait for the io_manager
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # output -> unit -> value
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # output -> per-unit scalar metadata
    checks: dict[dg.AssetCheckKey, list[tuple[str, dg.AssetCheckResult]]] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # unit -> why
    valueless: set[str] = field(default_factory=set)  # outputs given as MaterializeResult: nothing to store

    def add(self, unit: str, result: Any) -> None:
        if isinstance(result, dg.Output):
            self._output(unit, result.output_name, result.value, result.metadata)
        elif isinstance(result, dg.MaterializeResult):
            self._output(unit, "result", None, result.metadata or {})
            self.valueless.add("result")
            for check in result.check_results or []:
                self.add(unit, check)
        elif isinstance(result, dg.AssetCheckResult):
            asset = result.asset_key or self.asset
            if asset is None:
                raise TypeError(f"check {result.check_name} of a multi-asset names no asset")
            asset_key = dg.AssetKey.from_coercible(asset)
            names = [key.name for key in self.check_keys if key.asset_key == asset_key]
            name = result.check_name or (names[0] if len(names) == 1 else None)
            if name is None:
                raise TypeError(f"a check result of {asset_key.to_user_string()} names no check of the {len(names)}")
            key = dg.AssetCheckKey(asset_key, name)
            self.checks.setdefault(key, []).append((unit, result))
        else:
            raise TypeError(f"a unit's body yielded {type(result).__name__}, not an Output or a check result")

    def _output(self, unit: str, name: str, value: Any, metadata: Mapping[str, Any]) -> None:
        if isinstance(value, pd.DataFrame):
            path = self.spill / f"{sum(map(len, self.values.values()))}.parquet"
            write_frame(value, str(path))
            value = path
        self.values.setdefault(name, {})[unit] = value
        self.rows.setdefault(name, []).append({"unit": unit, **_scalars(metadata)})


def _scalars(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The metadata a table cell can show: numbers, flags and short texts."""
    shown: dict[str, Any] = {}
    for name, value in metadata.items():
        raw = value.value if isinstance(value, _SCALARS) else value
        if isinstance(raw, bool | int | float) or (isinstance(raw, str) and len(raw) <= 60 and "\n" not in raw):
            shown[name] = raw
    return shown


def _table(rows: list[dict[str, Any]]) -> dg.MetadataValue:
    columns = list(dict.fromkeys(name for row in rows for name in row))[: MAX_TABLE_COLUMNS + 1]
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join(
        "| " + " | ".join(_cell(row.get(name, "")) for name in columns) + " |\n" for row in rows[:MAX_TABLE_ROWS]
    )
    more = f"\n_and {len(rows) - MAX_TABLE_ROWS} more units_" if len(rows) > MAX_TABLE_ROWS else ""
    return dg.MetadataValue.md(head + body + more if rows else "_no units_")


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "\\|")


def _output_metadata(rows: list[dict[str, Any]], failed: Mapping[str, str], withheld: list[str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "units": dg.MetadataValue.int(len(rows) - len(withheld)),
        "units_table": _table(rows),
    }
    counts = [row["dagster/row_count"] for row in rows if isinstance(row.get("dagster/row_count"), int)]
    if counts:
        metadata["dagster/row_count"] = dg.MetadataValue.int(sum(counts))
    if failed:
        metadata["failed_units"] = dg.MetadataValue.md("\n".join(f"- {unit}: {why}" for unit, why in failed.items()))
    if withheld:
        metadata["withheld_units"] = dg.MetadataValue.text(", ".join(withheld))
    return metadata


def joined_check(
    key: dg.AssetCheckKey, results: list[tuple[str, dg.AssetCheckResult]], every_unit_stops: bool = False
) -> dg.AssetCheckResult:
    """One result for the units' ``results`` of check ``key`` (the module's rules)."""
    failing = [(unit, result) for unit, result in results if not result.passed]
    judged = failing or results
    errors = any(result.severity == dg.AssetCheckSeverity.ERROR for _, result in judged)
    severity = dg.AssetCheckSeverity.ERROR if errors else dg.AssetCheckSeverity.WARN
    if failing and len(failing) < len(results) and not every_unit_stops:
        severity = dg.AssetCheckSeverity.WARN  # the passing units go on; the failing ones are listed (and withheld)
    listed = "\n".join(f"- {unit}: {result.description or 'failed'}" for unit, result in failing[:MAX_TABLE_ROWS])
    return dg.AssetCheckResult(
        asset_key=key.asset_key,
        check_name=key.name,
        passed=not failing,
        severity=severity,
        description=f"{len(failing)} of {len(results)} units failed" if failing else f"all {len(results)} units pass",
        metadata={
            "units_checked": dg.MetadataValue.int(len(results)),
            "units_failed": dg.MetadataValue.int(len(failing)),
            **({"failed": dg.MetadataValue.md(listed)} if failing else {}),
        },
    )


def units_in(partition_key: str, value: PartitionValue) -> Iterator[tuple[tuple[str, str], Any]]:
    """((hour, symbol), value of the unit) of a loaded partition, a unit read at a time, for code that is no asset
    body (a check)."""
    if not partitions.GROUPED:
        yield partitions.hour_and_symbol(partition_key), value
        return
    for unit in sorted(value):
        yield partitions.hour_and_symbol(unit), value[unit]


def _blocks(context: dg.AssetExecutionContext, key: dg.AssetCheckKey, result: dg.AssetCheckResult) -> bool:
    """Whether ``result`` would stop downstream steps of an hourly partition: a blocking check failed as ERROR."""
    return not result.passed and result.severity == dg.AssetCheckSeverity.ERROR and _blocking(context, key)


def _required(context: dg.AssetExecutionContext, name: str) -> bool:
    return context.op_def.output_def_named(name).is_required


def _blocking(context: dg.AssetExecutionContext, key: dg.AssetCheckKey) -> bool:
    specs = context.assets_def.check_specs_by_output_name.values()
    return any(spec.key == key and spec.blocking for spec in specs)


def run_units(
    context: dg.AssetExecutionContext, body: UnitBody, inputs: Mapping[str, Any] | None = None
) -> Iterator[Any]:
    """``body(hour, symbol, inputs of the unit)`` over the partition's units: the units of the inputs (each a
    dict by unit under ``day_x_group``) when there are inputs, else the partition's (``partitions.units_of``)."""
    given = dict(inputs or {})
    if not partitions.GROUPED:
        hour, symbol = partitions.hour_and_symbol(str(context.partition_key))
        yield from body(hour, symbol, given)
        return
    if given:
        units = sorted(set.intersection(*(set(value) for value in given.values())))
        pairs = [partitions.hour_and_symbol(unit) for unit in units]
    else:
        pairs = partitions.units_of(str(context.partition_key))

    def call(hour: str, symbol: str) -> Iterable[Any]:  # the unit's inputs read when it runs, not before
        return body(hour, symbol, {name: value[unit_key(hour, symbol)] for name, value in given.items()})

    yield from run_each(context, [(unit_key(hour, symbol), partial(call, hour, symbol)) for hour, symbol in pairs])


def run_each(
    context: dg.AssetExecutionContext, calls: Sequence[tuple[str, Callable[[], Iterable[Any]]]]
) -> Iterator[Any]:
    """Each ``(key, call)``'s results joined by the module's rules, ``key`` naming the unit (``<time>|<symbol>``):
    for a body whose units are not the partition's hours (a day of an instrument, a tuning period)."""
    with tempfile.TemporaryDirectory(prefix="shadow-units-") as spill:
        joined = _Joined(
            context.asset_key if len(context.assets_def.keys) == 1 else None,
            list(context.selected_asset_check_keys),
            Path(spill),
        )
        yield from _run(context, joined, calls)


def _run(
    context: dg.AssetExecutionContext, joined: _Joined, calls: Sequence[tuple[str, Callable[[], Iterable[Any]]]]
) -> Iterator[Any]:
    for number, (unit, call) in enumerate(calls, 1):
        try:
            results = list(call())
        except dg.Failure as exc:
            joined.failed[unit] = str(exc.description)
            context.log.error(f"{unit}: {exc.description} (left out of the partition's other units)")
            continue
        for result in results:
            joined.add(unit, result)
        if number % 24 == 0:
            context.log.info(f"{number}/{len(calls)} units done")
    yield from _results(context, joined, len(calls))


def _results(context: dg.AssetExecutionContext, joined: _Joined, planned: int) -> Iterator[Any]:
    if joined.failed and len(joined.failed) == planned:
        first = next(iter(joined.failed.items()))
        raise dg.Failure(f"every unit of the partition failed ({planned}), the first {first[0]}: {first[1]}")
    assets = context.assets_def.keys_by_output_name  # the check results have outputs of their own
    selected = sorted(context.selected_output_names & set(assets))
    if not joined.values and not joined.failed and any(_required(context, name) for name in selected):
        raise dg.Failure(
            f"no unit of the partition gave {', '.join(a.to_user_string() for a in map(assets.get, selected) if a)} "
            + (
                f"(none of its {planned} units has data: an hour without ticks is no unit)"
                if planned
                else "(no input units)"
            )
        )
    withheld: dict[dg.AssetKey, set[str]] = {}
    for key, results in joined.checks.items():
        withheld.setdefault(key.asset_key, set()).update(u for u, result in results if _blocks(context, key, result))
    stopped = {  # every unit withheld: the checks then stop downstream themselves, with the units' severity
        asset
        for name, asset in assets.items()
        if withheld.get(asset) and withheld[asset] >= set(joined.values.get(name, {}))
    }
    for name in selected:
        if name not in joined.values and not _required(context, name):
            continue
        asset = assets[name]
        held = [] if asset in stopped else sorted(withheld.get(asset, set()))
        values = {unit: value for unit, value in joined.values.get(name, {}).items() if unit not in held}
        metadata = _output_metadata(joined.rows.get(name, []), joined.failed, held)
        if name in joined.valueless:
            yield dg.MaterializeResult(asset_key=asset, metadata=metadata)
        elif all(isinstance(value, Path) for value in values.values()):
            yield dg.Output(UnitFrames(values), output_name=name, metadata=metadata)  # stored before this returns
        else:
            yield dg.Output(values, output_name=name, metadata=metadata)
    for key in sorted(context.selected_asset_check_keys, key=str):
        results = joined.checks.get(key, [])
        if results:
            yield joined_check(key, results, every_unit_stops=key.asset_key in stopped)
        else:
            yield dg.AssetCheckResult(
                asset_key=key.asset_key,
                check_name=key.name,
                passed=False,
                description=f"no unit of the partition was checked ({planned} planned)",
            )
