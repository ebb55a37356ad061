"""How many partitions an asset has under each layout, and which instrument group an instrument belongs to.

Dagster's guidance is at most 100,000 partitions per asset (a multi-partition counts the product of its
dimensions), and its asset pages slow down long before that (users report 90 s at 33k). The arithmetic is kept
here, without Dagster, so that the counts in docs/partitions.md and the bench's are one computation, unit-tested.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

DAGSTER_MAX_PARTITIONS = 100_000
HOURS_PER_DAY = 24
DAYS_PER_WEEK = 7
GROUPS_PER_VENUE_WIDTH = 2  # g07: enough for 99 groups of one venue
Grain = Literal["hour", "day", "week"]
Unit = Literal["instrument", "group"]


@dataclass(frozen=True)
class Layout:
    """A time grain x a second dimension; ``name`` as the docs' table writes it."""

    name: str
    grain: Grain
    unit: Unit


HOUR_X_INSTRUMENT = Layout("hour x instrument", "hour", "instrument")
DAY_X_INSTRUMENT = Layout("day x instrument", "day", "instrument")
WEEK_X_INSTRUMENT = Layout("week x instrument", "week", "instrument")
DAY_X_GROUP = Layout("day x group", "day", "group")
LAYOUTS = (HOUR_X_INSTRUMENT, DAY_X_INSTRUMENT, WEEK_X_INSTRUMENT, DAY_X_GROUP)


def time_partitions(grain: Grain, days: int) -> int:
    """Time partitions in ``days`` whole UTC days: a week partition exists only once the week is complete."""
    if days < 0:
        raise ValueError(f"days must be >= 0, not {days}")
    if grain == "hour":
        return days * HOURS_PER_DAY
    return days if grain == "day" else days // DAYS_PER_WEEK


def groups_per_venue(instruments: int, per_group: int) -> int:
    """Groups of at most ``per_group`` instruments that one venue's ``instruments`` need."""
    if per_group < 1 or instruments < 0:
        raise ValueError(f"need per_group >= 1 and instruments >= 0, not {per_group}, {instruments}")
    return math.ceil(instruments / per_group)


def group_count(instruments_by_venue: Mapping[str, int], per_group: int) -> int:
    """Groups never span venues (a group shares its venue's feed and fees; stream shards are picked per
    instrument), so each venue rounds up on its own."""
    return sum(groups_per_venue(count, per_group) for count in instruments_by_venue.values())


def partition_count(layout: Layout, days: int, instruments: int, groups: int) -> int:
    """Partitions per asset of ``layout`` over ``days`` days."""
    return time_partitions(layout.grain, days) * (instruments if layout.unit == "instrument" else groups)


def group_key(venue: str, index: int) -> str:
    """``binance-usdm.g07``: the venue first, so a group's key says where its instruments trade."""
    return f"{venue}.g{index:0{GROUPS_PER_VENUE_WIDTH}d}"


def assign_groups(instrument_keys: Iterable[tuple[str, str]], per_group: int) -> dict[str, str]:
    """Instrument key -> group key, for (instrument key, venue) pairs: each venue's instruments in sorted order,
    dealt round-robin over the fewest groups of at most ``per_group``, so the groups of a venue differ in size by
    at most one."""
    by_venue: dict[str, list[str]] = {}
    for key, venue in instrument_keys:
        by_venue.setdefault(venue, []).append(key)
    groups: dict[str, str] = {}
    for venue, keys in sorted(by_venue.items()):
        unique = sorted(set(keys))
        count = groups_per_venue(len(unique), per_group)
        for position, key in enumerate(unique):
            groups[key] = group_key(venue, position % count)
    return groups
