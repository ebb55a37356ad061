"""Partitions definitions of a layout, built from typed parameters rather than from the environment.

The stages take theirs from defs/partitions.py, where ``$SHADOW_PARTITION_LAYOUT`` chooses hour x instrument or
day x instrument group. The bench builds both here at sizes the environment does not describe (500 instruments x
2 years), which is why the parameters are arguments: ``hour_x_instrument`` for other instruments and first hours,
``desk_scale`` for the last ``retention_days`` UTC days x the instrument groups that exist (the dynamic dimension
the stages use).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import dagster as dg

from shadow_pipeline import settings
from shadow_pipeline.defs import partitions
from shadow_pipeline.domain.market.partition_layouts import last_midnight

DAY_DIMENSION = "day"
GROUP_DIMENSION = "group"


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
    return dg.MultiPartitionsDefinition({DAY_DIMENSION: daily, GROUP_DIMENSION: partitions.instrument_groups})


def add_groups(instance: dg.DagsterInstance, groups: Iterable[str]) -> None:
    """Make ``groups`` partitions of the group dimension (a sensor would return
    ``instrument_groups.build_add_request`` instead)."""
    instance.add_dynamic_partitions(partitions.GROUPS_NAME, sorted(set(groups)))
