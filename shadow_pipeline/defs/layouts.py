"""Partitions definitions of a layout, built from typed parameters rather than from the environment.

``hour_x_instrument`` is what the stages run on today (defs/partitions.py, from $SHADOW_SYMBOLS and
$SHADOW_FIRST_HOUR); ``desk_scale`` is the layout docs/partitions.md chooses for 500 instruments x 2 years: UTC
days over a moving window of ``retention_days`` x the instrument groups that exist (a dynamic dimension), the
hourly windows and per-instrument verdicts living inside a day's partition. The bench builds both at sizes the
environment does not describe, which is why the parameters are arguments here.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import dagster as dg

from shadow_pipeline import settings
from shadow_pipeline.defs import partitions
from shadow_pipeline.domain.market.partition_layouts import last_midnight

GROUPS_NAME = "instrument_groups"
DAY_DIMENSION = "day"
GROUP_DIMENSION = "group"
instrument_groups = dg.DynamicPartitionsDefinition(name=GROUPS_NAME)


def hour_x_instrument(
    instruments: Iterable[str], first_hour: str, end: datetime | None = None
) -> dg.PartitionsDefinition:
    """The current layout (the dimension names and instrument keys of defs/partitions.py) for other instruments and
    a given first hour; ``end`` (exclusive) stops it, else it grows with the clock."""
    hourly = dg.HourlyPartitionsDefinition(
        start_date=first_hour, end_date=end.strftime(settings.HOUR_FORMAT) if end else None, timezone="UTC"
    )
    symbols = dg.StaticPartitionsDefinition(partitions.instrument_keys(instruments))
    return dg.MultiPartitionsDefinition({"hour": hourly, "symbol": symbols})


def desk_scale(retention_days: int, end: datetime | None = None) -> dg.MultiPartitionsDefinition:
    """Day x instrument group: the ``retention_days`` UTC days before the midnight at or before ``end`` (default:
    now; a naive ``end`` is UTC), so the
    start moves with the code location's reloads and the count stays ``retention_days`` x groups. Older days keep
    their run history but leave the partition picker."""
    if retention_days < 1:
        raise ValueError(f"retention_days must be >= 1, not {retention_days}")
    stop = last_midnight(end or datetime.now(UTC))
    start = stop - timedelta(days=retention_days)
    daily = dg.DailyPartitionsDefinition(
        start_date=start.strftime("%Y-%m-%d"), end_date=stop.strftime("%Y-%m-%d"), timezone="UTC"
    )
    return dg.MultiPartitionsDefinition({DAY_DIMENSION: daily, GROUP_DIMENSION: instrument_groups})


def add_groups(instance: dg.DagsterInstance, groups: Iterable[str]) -> None:
    """Make ``groups`` partitions of the group dimension (a sensor would return
    ``instrument_groups.build_add_request`` instead)."""
    instance.add_dynamic_partitions(GROUPS_NAME, sorted(set(groups)))
