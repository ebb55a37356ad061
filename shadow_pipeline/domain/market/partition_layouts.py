"""How many partitions an asset has under each layout, and which instrument group an instrument belongs to.

Dagster's guidance is at most 100,000 partitions per asset (a multi-partition counts the product of its
dimensions), and its asset pages slow down long before that (users report 90 s at 33k). The arithmetic is kept
here, without Dagster, so that the counts in docs/partitions.md and the bench's are one computation, unit-tested.

An instrument's group is part of what a materialized (day, group) partition means, so it is given once and kept:
the assignment is data (``$SHADOW_ARTIFACTS_DIR/instrument_groups.json``), extended by :func:`assign_groups`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from shadow_pipeline import user_json
from shadow_pipeline.domain.market.instruments import InstrumentError, InstrumentId
from shadow_pipeline.domain.market.shards import MAX_SHARDS, check_shards, shard_of
from shadow_pipeline.settings import HOUR_FORMAT

DAGSTER_MAX_PARTITIONS = 100_000
HOURS_PER_DAY = 24
DAYS_PER_WEEK = 7
GROUPS_PER_VENUE_WIDTH = 2  # g07: g00-g99, 100 groups of one venue
MAX_GROUPS_PER_VENUE = 10**GROUPS_PER_VENUE_WIDTH
MAX_PER_GROUP = 16  # docs/partitions.md: a partition re-runs a day of at most 16 instruments
GROUPS_FILE = "instrument_groups.json"  # under $SHADOW_ARTIFACTS_DIR
_GROUP_KEY = re.compile(rf"(.+)\.g([0-9]{{{GROUPS_PER_VENUE_WIDTH}}})")
_SHARD_CLUSTER = re.compile(r"s(0|[1-9][0-9]*)of([1-9][0-9]{0,3})")  # after the venue: a shard of a count
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


def last_midnight(now: datetime) -> datetime:
    """The end (exclusive) of the last finished UTC day before ``now`` (a naive ``now`` is UTC)."""
    moment = now if now.tzinfo else now.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def moving_first_hour(first_hour: str, retention_days: int | None, now: datetime) -> str:
    """The first hourly partition when only the last ``retention_days`` finished UTC days (and today's hours) are
    kept: the later of ``first_hour`` and that many midnights back. Why a moving start: a fixed one grows every
    asset by 24 x instruments partitions a day, for ever, past Dagster's guidance; with one, the count stays
    (``retention_days`` x 24 + today's hours) x instruments. ``None`` keeps every hour from ``first_hour``."""
    if retention_days is None:
        return first_hour
    if retention_days < 1:
        raise ValueError(f"retention_days must be >= 1, not {retention_days}")
    start = (last_midnight(now) - timedelta(days=retention_days)).strftime(HOUR_FORMAT)  # keys sort as the hours do
    return max(first_hour, start)


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
    """Groups never span venues (a group shares its venue's feed and fees), so each venue rounds up on its own.
    With several stream shards a group also holds one shard: count per venue's shard, or bound it by
    ``groups_per_venue(n) + shards - 1`` per venue."""
    return sum(groups_per_venue(count, per_group) for count in instruments_by_venue.values())


def partition_count(layout: Layout, days: int, instruments: int, groups: int) -> int:
    """Partitions per asset of ``layout`` over ``days`` days."""
    return time_partitions(layout.grain, days) * (instruments if layout.unit == "instrument" else groups)


def group_key(venue: str, index: int) -> str:
    """``binance-usdm.g07``: the venue first, so a group's key says where its instruments trade."""
    return f"{venue}.g{index:0{GROUPS_PER_VENUE_WIDTH}d}"


def _instrument_venue(key: str, source: str) -> str:
    """The venue of ``key``, which must be written as partitions write it: ``btcusdt`` and
    ``BTCUSDT.binance-usdm`` would otherwise be a second entry for BTCUSDT."""
    try:
        instrument = InstrumentId.parse(key)
    except InstrumentError as exc:
        raise ValueError(f"{source}: {exc}") from None
    if instrument.key != key:
        raise ValueError(f"{source}: {key!r} is not an instrument key as partitions write it ({instrument.key!r})")
    return instrument.venue


def cluster_of(key: str, venue: str, shards: int) -> str:
    """What a group's instruments share: their venue (feed and fees) and, with several stream shards, their shard
    of that count (``binance-usdm.s3of8``), so that a (day, group) run drains one shard and runs of other shards go
    on beside it; the count is in the name, so groups opened before a re-sharding are never joined after it."""
    return venue if shards == 1 else f"{venue}.s{shard_of(key, shards)}of{shards}"


def _is_cluster_of(cluster: str, key: str, venue: str) -> bool:
    """Whether ``cluster`` is one :func:`cluster_of` gives ``key`` for some shard count."""
    match = _SHARD_CLUSTER.fullmatch(cluster.removeprefix(f"{venue}."))
    if cluster == venue:
        return True
    if match is None or not cluster.startswith(f"{venue}."):
        return False
    shard, shards = match.group(1), match.group(2)
    return 1 < int(shards) <= MAX_SHARDS and cluster == cluster_of(key, venue, int(shards)) and int(shard) < int(shards)


def _kept_members(previous: Mapping[str, str], current: Mapping[str, str], per_group: int) -> dict[str, dict[int, int]]:
    """Cluster (a venue, or a venue's stream shard: ``venue.sN``) -> group number -> members that still exist,
    after checking the whole saved assignment: a group of another venue or over ``per_group`` means the file is
    not what this function saved. A group keeps the cluster its key names, also after a re-sharding."""
    sizes: dict[str, int] = {}
    kept: dict[str, dict[int, int]] = {}
    for key, group in sorted(previous.items()):
        venue = _instrument_venue(key, "previous assignment")
        match = _GROUP_KEY.fullmatch(group)
        if match is None or not _is_cluster_of(match.group(1), key, venue):
            raise ValueError(
                f"previous assignment: {key} (a {venue} instrument) is in {group!r}, not a group {venue}.gNN "
                f"or {venue}.s<its shard>of<shards>.gNN"
            )
        sizes[group] = sizes.get(group, 0) + 1
        if key in current:
            numbers = kept.setdefault(match.group(1), {})
            number = int(match.group(2))
            numbers[number] = numbers.get(number, 0) + 1
    for group, size in sorted(sizes.items()):
        if size > per_group:
            raise ValueError(f"previous assignment: group {group} has {size} instruments, more than {per_group}")
    return kept


def assign_groups(
    previous: Mapping[str, str], instruments: Iterable[str], per_group: int = MAX_PER_GROUP, shards: int = 1
) -> dict[str, str]:
    """Instrument key -> group key for the ``instruments`` that exist now, extending the ``previous`` assignment
    (as saved; empty for a fresh desk).

    An instrument keeps the group it was given, so a (day, group) partition never changes meaning for it. A
    delisted instrument leaves its group, which shrinks and keeps its number (a number whose group emptied is free
    again). A venue's new instruments, in sorted order, each join its group with the fewest members (the lowest
    number on a tie) that has room; only when the room left cannot hold them all are the groups they need opened
    first, at the lowest free numbers. On a fresh desk that opens the fewest groups and deals the sorted
    instruments round-robin over them, as the assignment did before it was kept.

    With several stream ``shards``, "venue" above is a venue's shard (``shards.shard_of``), and the keys name it
    (``binance-usdm.s3of8.g00``). A group opened before a re-sharding keeps its members and is not joined after it."""
    if per_group < 1:
        raise ValueError(f"per_group must be >= 1, not {per_group}")
    current: dict[str, str] = {}
    for key in instruments:
        venue = _instrument_venue(key, "instruments")
        if key in current:
            raise ValueError(f"instruments: {key} is given twice")
        current[key] = cluster_of(key, venue, check_shards(shards))
    kept = _kept_members(previous, current, per_group)
    assigned = {key: previous[key] for key in current if key in previous}
    new: dict[str, list[str]] = {}
    for key, venue in current.items():
        if key not in assigned:
            new.setdefault(venue, []).append(key)
    for venue, keys in sorted(new.items()):
        sizes = kept.setdefault(venue, {})
        room = sum(per_group - size for size in sizes.values())
        free = (number for number in range(MAX_GROUPS_PER_VENUE) if number not in sizes)
        for _ in range(groups_per_venue(max(0, len(keys) - room), per_group)):
            number = next(free, None)
            if number is None:
                raise ValueError(
                    f"instruments: {venue} would need more than {MAX_GROUPS_PER_VENUE} groups of {per_group}"
                )
            sizes[number] = 0
        for key in sorted(keys):
            _, number = min((size, n) for n, size in sizes.items() if size < per_group)
            sizes[number] += 1
            assigned[key] = group_key(venue, number)
    return dict(sorted(assigned.items()))


def load_groups(path: Path) -> dict[str, str]:
    """The assignment saved at ``path``; none yet (a fresh desk) when the file does not exist. Its contents are
    checked by :func:`assign_groups`, its shape here, so that a damaged file is one error naming it."""
    if not path.exists():
        return {}
    saved = user_json.load(path)
    if not isinstance(saved, dict) or not all(isinstance(group, str) for group in saved.values()):
        raise ValueError(f"{path}: not an instrument group assignment (a JSON object of instrument -> group key)")
    return saved


def save_groups(path: Path, assignment: Mapping[str, str]) -> None:
    """Written to a temporary file and renamed over ``path``, so that a reader or a crash never leaves half an
    assignment, which would give the missing instruments new groups."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(dict(sorted(assignment.items())), indent=2) + "\n")
    os.replace(temporary, path)
