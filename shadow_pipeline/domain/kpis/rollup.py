"""Rollups over a period of hours and profiles side by side: which hours a day holds, what names may key a
profile's kept results, and the one rule that ranks profiles (docs/rollups.md).

A profile's name becomes a folder under the artifacts, so it is held to the profiles schema's names
(lower-case letters, digits, underscores): nothing that could climb out of its folder (``..``, ``/``) or
collide on a case-insensitive disk.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shadow_pipeline.settings import HOUR_FORMAT

PROFILES_FOLDER = "profiles"  # in a partition's shadow folder: its results kept per profile
PROFILE_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
DAY_FORMAT = "%Y-%m-%d"
RANK_RULE = (
    "Go before No-Go; then the higher net_bps (the tuner's default objective; unknown last); "
    "then fewer failed gates; then the profile's name"
)


def profile_key(name: object) -> str:
    """``name`` as a folder name, or ValueError saying why it cannot be one."""
    if not isinstance(name, str) or PROFILE_NAME.fullmatch(name) is None:
        raise ValueError(
            f"profile name {str(name)[:80]!r} cannot key a folder: want 1 to 64 of a-z, 0-9, _ starting with a letter"
        )
    return name


def day_hours(day: str) -> list[str]:
    """The 24 hourly partition keys of a UTC day ``YYYY-MM-DD`` (ValueError for anything else)."""
    try:
        start = datetime.strptime(day, DAY_FORMAT)
    except (TypeError, ValueError):
        raise ValueError(f"day {str(day)[:80]!r} is not a day: use YYYY-MM-DD (UTC)") from None
    if start.strftime(DAY_FORMAT) != day:
        raise ValueError(f"day {day!r} is not a day: use YYYY-MM-DD (UTC)")
    return [(start + timedelta(hours=h)).strftime(HOUR_FORMAT) for h in range(24)]


@dataclass(frozen=True)
class Standing:
    """A profile's result over a period, as much as the ranking reads."""

    profile: str
    go: bool
    net_bps: float | None
    failed_gates: int

    def key(self) -> tuple[bool, float, int, str]:
        net = self.net_bps
        return (
            not self.go,
            -net if net is not None and math.isfinite(net) else math.inf,
            self.failed_gates,
            self.profile,
        )


def rank(standings: Iterable[Standing]) -> list[Standing]:
    """Best first, by :data:`RANK_RULE`."""
    return sorted(standings, key=Standing.key)
