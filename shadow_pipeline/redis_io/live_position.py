"""Where the live shadow resumes after a restart, kept in Redis (``keys.live_position_hash``), per configuration.

It re-reads the oldest hour it has not finished from that hour's first entry (recomputing its windows and
republishing none: records are appended once), or, with no hour open, goes on after the last entry it read. The
last finished hour of each instrument is kept beside it, so that ticks of a finished hour read again are not
taken for a new hour.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import redis

from shadow_pipeline.redis_io.keys import live_position_hash


@dataclass(frozen=True)
class Position:
    resume: str | None = None  # the first entry of the oldest open hour: read from it, itself included
    after: str | None = None  # with no hour open: the last entry read
    finished: dict[str, str] = field(default_factory=dict)  # instrument -> its last finished hour

    def read_after(self) -> str:
        """The id XREAD starts after."""
        if self.resume is not None:
            return just_before(self.resume)
        return self.after or "0-0"


def id_key(entry_id: str) -> tuple[int, int]:
    """An entry id as a sortable pair."""
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


def just_before(entry_id: str) -> str:
    """The id XREAD starts after so that ``entry_id`` itself is read."""
    ms, seq = id_key(entry_id)
    return f"{ms}-{seq - 1}" if seq else (f"{ms - 1}-18446744073709551615" if ms else "0-0")


def load(client: redis.Redis, stream: str, configuration: str) -> Position | None:
    stored = client.hget(live_position_hash(stream), configuration)
    if not stored:
        return None
    state = json.loads(stored)
    return Position(state.get("resume"), state.get("after"), dict(state.get("finished", {})))


def save(client: redis.Redis, stream: str, configuration: str, position: Position) -> None:
    state = {"resume": position.resume, "after": position.after, "finished": position.finished}
    client.hset(live_position_hash(stream), configuration, json.dumps(state))
