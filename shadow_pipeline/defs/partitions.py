"""Partitions of ticks: exchange-time hour x instrument, or UTC day x instrument group.

``$SHADOW_PARTITION_LAYOUT`` chooses (docs/partitions.md). Either way the stages compute per *unit*, an
(hour, instrument): a partition of the default layout is one unit, a (day, group) partition every finished hour of
the day for each instrument of the group (``defs/units.py`` runs an asset body over them).

The second dimension is called ``symbol`` and holds instrument keys (``domain.market.instruments``): a bare symbol
on the default venue, so partitions made before venues existed keep their keys, ``BTCUSDT.bybit-linear`` elsewhere.
Both dimensions are configuration, not code: the instruments come from ``$SHADOW_SYMBOLS`` and the first hour
from ``$SHADOW_FIRST_HOUR`` (settings.py has the defaults), moved forward at each load of the code location to
keep only ``$SHADOW_RETENTION_DAYS`` finished days when that is set. Changing either is an environment change and
a reload of the code location; asset keys and run history stay as they are.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from shadow_pipeline import settings
from shadow_pipeline.domain.market.instruments import InstrumentError, InstrumentId
from shadow_pipeline.domain.market.partition_layouts import (
    GROUPS_FILE,
    HOURS_PER_DAY,
    assign_groups,
    load_groups,
    moving_first_hour,
    save_groups,
)


class PartitionOutOfRange(ValueError):
    """An hour or symbol that the partitions do not cover; the message says how to widen them."""


def instrument_keys(texts: Iterable[str]) -> list[str]:
    """Instrument ids as a user writes them (any case, bare or with a venue) as partition keys, sorted, unique."""
    return sorted({InstrumentId.parse(text).key for text in texts})


def _configured() -> list[str]:
    try:
        return instrument_keys(settings.symbols())
    except InstrumentError as exc:
        raise settings.SettingsError(f"${settings.SYMBOLS_ENV}: {exc}") from None


RETENTION_DAYS = settings.retention_days()
PARTITIONED_CHECKS = settings.partitioned_checks()
GROUPED = settings.partition_layout() == "day_x_group"
FIRST_HOUR = moving_first_hour(settings.first_hour(), RETENTION_DAYS, datetime.now(UTC))
GROUPS_NAME = "instrument_groups"
hourly = dg.HourlyPartitionsDefinition(start_date=FIRST_HOUR, timezone="UTC")
symbol_partitions = dg.StaticPartitionsDefinition(_configured())
# The group dimension holds only the groups that exist (partition_layouts.assign_groups, kept in GROUPS_FILE).
instrument_groups = dg.DynamicPartitionsDefinition(name=GROUPS_NAME)
hour_x_instrument = dg.MultiPartitionsDefinition({"hour": hourly, "symbol": symbol_partitions})
# Rollups: a UTC day of the hours above, per instrument (docs/rollups.md); the first day holds the first hour.
daily = dg.DailyPartitionsDefinition(start_date=FIRST_HOUR[:10], timezone="UTC")
day_partitions = dg.MultiPartitionsDefinition({"day": daily, "symbol": symbol_partitions})
day_x_group = dg.MultiPartitionsDefinition({"day": daily, "group": instrument_groups})
tick_partitions = day_x_group if GROUPED else hour_x_instrument
# A rollup's partition: a day of one instrument, or under day x group the tick partition itself (docs/rollups.md).
rollup_partitions = day_x_group if GROUPED else day_partitions


def configured_symbols() -> list[str]:
    return list(symbol_partitions.get_partition_keys())


def has_hour(hour: str) -> bool:
    """True when ``hour`` is a partition now (the current, unfinished hour becomes one when it ends)."""
    return settings.is_hour_key(hour) and hourly.has_partition_key(hour)


def check_partition(hour: str, symbol: str) -> None:
    """Raise PartitionOutOfRange (one line: the range and the variable to change) unless (hour, symbol) exists."""
    if symbol not in configured_symbols():
        raise PartitionOutOfRange(
            f"symbol {symbol} has no partitions (symbols: {','.join(configured_symbols())}): "
            f"add it to ${settings.SYMBOLS_ENV}"
        )
    if has_hour(hour):
        return
    last = hourly.get_last_partition_key() or FIRST_HOUR
    if not settings.is_hour_key(hour):
        raise PartitionOutOfRange(f"hour {hour!r} is not an hourly partition key: use YYYY-MM-DD-HH:00 (UTC)")
    if hour < FIRST_HOUR:
        configured = settings.first_hour()
        fixes = []
        if hour < configured:
            fixes.append(f"set ${settings.FIRST_HOUR_ENV} (now {configured}) to {hour} or earlier")
        if configured < FIRST_HOUR:  # the moving start is in force
            fixes.append(
                f"raise ${settings.RETENTION_DAYS_ENV} (now {RETENTION_DAYS}: the last {RETENTION_DAYS} finished "
                "days are kept) or unset it"
            )
        raise PartitionOutOfRange(
            f"hour {hour} is before the hourly partitions {FIRST_HOUR} .. {last}: " + " and ".join(fixes)
        )
    raise PartitionOutOfRange(
        f"hour {hour} is not a partition yet (the partitions {FIRST_HOUR} .. {last} end at the last finished hour)"
    )


def hour_and_symbol(partition_key: str) -> tuple[str, str]:
    """(hour key, symbol) of an hour x instrument key, also when a CLI run hands over the plain ``hour|symbol``
    string; a unit's key (``defs/units.py``) has the same form in either layout."""
    keys = hour_x_instrument.get_partition_key_from_str(str(partition_key)).keys_by_dimension
    return keys["hour"], keys["symbol"]


def day_and_group(partition_key: str) -> tuple[str, str]:
    """(day key, group key) of a day x group partition key."""
    keys = day_x_group.get_partition_key_from_str(str(partition_key)).keys_by_dimension
    return keys["day"], keys["group"]


def groups_file() -> Path:
    return settings.artifacts_dir() / GROUPS_FILE


def instrument_group_assignment(shards: int = 1) -> dict[str, str]:
    """Instrument key -> group key for the configured instruments, extending (and saving) the kept assignment: an
    instrument never changes group, so a (day, group) partition keeps its meaning (partition_layouts). With several
    stream ``shards`` a group's instruments share one, so that its run drains that shard alone."""
    path = groups_file()
    previous = load_groups(path)
    assignment = assign_groups(previous, configured_symbols(), shards=shards)
    if assignment != previous:
        save_groups(path, assignment)
    return assignment


def group_members(group: str) -> list[str]:
    """The configured instruments of ``group``, as the kept assignment says (none for an unknown group)."""
    return sorted(
        key for key, given in load_groups(groups_file()).items() if given == group and key in configured_symbols()
    )


def units_of(partition_key: str) -> list[tuple[str, str]]:
    """The (hour, instrument) units a tick partition holds: itself, or each hour of the day (from the first
    hour on) for each instrument of the group."""
    if not GROUPED:
        return [hour_and_symbol(partition_key)]
    day, group = day_and_group(partition_key)
    hours = [f"{day}-{hour:02d}:00" for hour in range(HOURS_PER_DAY)]
    return [(hour, symbol) for hour in hours if hour >= FIRST_HOUR for symbol in group_members(group)]


def day_and_symbol(partition_key: str) -> tuple[str, str]:
    """(day key, symbol) of a rollup partition key, as :func:`hour_and_symbol` for the hourly ones."""
    keys = day_partitions.get_partition_key_from_str(str(partition_key)).keys_by_dimension
    return keys["day"], keys["symbol"]


def partition_key(hour: str, symbol: str) -> dg.MultiPartitionKey:
    """The key of (hour, instrument); raises PartitionOutOfRange for a key the partitions do not have."""
    try:
        symbol = InstrumentId.parse(symbol).key
    except InstrumentError as exc:
        raise PartitionOutOfRange(str(exc)) from None
    check_partition(hour, symbol)
    if GROUPED:
        group = load_groups(groups_file()).get(symbol, "its group")
        refuse_grouped(f"{symbol} {hour} is in the partition {hour[:10]}|{group}")
    return dg.MultiPartitionKey({"hour": hour, "symbol": symbol})


def refuse_grouped(what: str = "the stored partitions are days of instrument groups") -> None:
    """Raise PartitionOutOfRange under day x group: the commands run and report hours of one instrument, while a
    (day, group) run is the sensor's or the UI's."""
    if GROUPED:
        raise PartitionOutOfRange(
            f"{what}: ${settings.PARTITION_LAYOUT_ENV}=day_x_group partitions by day and instrument group, which "
            "this command does not run; launch pipeline_job on the (day, group) partition (the UI, `dagster job "
            "launch`, or the closed-window sensor), or unset the variable"
        )


def check_spec(
    name: str,
    *,
    asset: str,
    partitions_def: dg.PartitionsDefinition | None = None,
    partitioned: bool | None = None,
    **spec: Any,
) -> dg.AssetCheckSpec:
    """An inline check of a partitioned asset, by default itself partitioned like it: each evaluation then
    belongs to its (hour, symbol), so the checks view and the partition picker say which partition failed, and
    no chart joins two symbols' evaluations. Partitioned checks are a preview in Dagster 1.13, whose warning
    would otherwise open every command's output (the specs are built once, at import). ``partitions_def``: the
    asset's, when it is not tick-partitioned (the daily rollup).

    Plain with ``$SHADOW_PARTITIONED_CHECKS=false`` (``partitioned`` overrides the setting): Dagster 1.13
    computes a partitioned check's status over every partition on each visit of the checks tab, about 2 minutes
    per check at 96,000 partitions, while a plain check's evaluation belongs to its partition's materialization
    and the tab takes milliseconds (docs/partitions.md)."""
    if not (PARTITIONED_CHECKS if partitioned is None else partitioned):
        return dg.AssetCheckSpec(name, asset=asset, **spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(name, asset=asset, partitions_def=partitions_def or tick_partitions, **spec)


def partitioned_check(**spec: Any) -> Callable[[Callable[..., dg.AssetCheckResult]], dg.AssetChecksDefinition]:
    """``dg.asset_check`` on a tick-partitioned asset, partitioned like it (see ``check_spec``) whatever
    ``$SHADOW_PARTITIONED_CHECKS`` says: a check that runs on its own loads its asset's input by its own partition,
    and a plain one would load every partition."""

    def build(check: Callable[..., dg.AssetCheckResult]) -> dg.AssetChecksDefinition:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", dg.PreviewWarning)
            return dg.asset_check(partitions_def=tick_partitions, **spec)(check)

    return build
