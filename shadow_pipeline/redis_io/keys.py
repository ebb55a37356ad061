"""Every Redis key the project reads or writes, named once (docs/redis.md lists them for operators).

Every per-symbol key takes the instrument's key (``domain.market.instruments``: the bare symbol on the default
venue, ``BTCUSDT.bybit-linear`` elsewhere), the partitions' ``symbol``, so that one symbol on two venues never
shares a sequence space, a KPI hash or stream, or a fills stream, while single-venue keys stay as they were.

The sequence guard's keys embed the stream's name in braces (a Redis Cluster hash tag), so that one Lua call over
a symbol's guard keys stays in one slot; a shard stream's name carries its own tag, which they keep
(``domain.market.shards.slot_tagged``).
"""

from __future__ import annotations

from shadow_pipeline.domain.market.shards import slot_tagged

TICK_STREAM = "lob:ticks"  # the feed handler's top-of-book stream
CONSUMER_GROUP = "shadow"  # Shadow Mode's consumer group on the tick stream
ALERT_STREAM = "shadow:alerts"  # one entry per failed asset-check evaluation
KPI_ALL_HASH = "shadow:kpi:all"  # the latest partition record per instrument (field = instrument key)


def dead_letter_stream(stream: str) -> str:
    """Entries of ``stream`` that are not ticks, with the reason (XACKed together with their write)."""
    return f"{stream}:dlq"


def append_index(stream: str) -> str:
    """The hash of record keys already appended to ``stream`` (key -> entry id): appends happen once."""
    return f"{stream}:ids"


def guard_keys(stream: str, group: str, symbol: str) -> list[str]:
    """The sequence guard's keys of one symbol: its state hash, its holes (a sorted set of the ranges of seqs not
    arrived yet), the seen-bitmap of the guard's first version, which the guard frees on first use, and its
    waiting batches (checked before an earlier batch of another consumer was)."""
    prefix = f"shadow:guard:{slot_tagged(stream)}:{group}:{symbol}"
    return [f"{prefix}:state", f"{prefix}:holes", f"{prefix}:seen", f"{prefix}:waiting"]


def guard_group_keys(stream: str, group: str) -> list[str]:
    """The sequence guard's keys of a whole group: the entry-id ranges of the batches checked and not yet acked,
    the symbols that have batches waiting, the claimed or recovered entries checked and not yet acked, and the
    frontier: the entry id before which everything is checked or acked."""
    prefix = f"shadow:guard:{slot_tagged(stream)}:{group}"
    return [f"{prefix}:checked", f"{prefix}:waiting-symbols", f"{prefix}:checked-entries", f"{prefix}:frontier"]


def kpi_symbol_hash(symbol: str) -> str:
    """The latest partition record of ``symbol``, one hash field per KPI."""
    return f"shadow:kpi:{symbol}"


def kpi_stream(symbol: str) -> str:
    """One entry per exported window of ``symbol``: the shadow's predictions that the dry-run reads back."""
    return f"shadow:kpi:stream:{symbol}"


def fills_stream(symbol: str) -> str:
    """Fills a real dry-run bot reports for ``symbol`` (the `fills` reality source)."""
    return f"dryrun:fills:{symbol}"


def failed_attempts_hash(stream: str, group: str) -> str:
    """Entry id -> how often processing that entry failed, for ``group`` on ``stream`` (``ingest.attempts``)."""
    return f"{stream}:attempts:{group}"


def order_stream(symbol: str) -> str:
    """The order intents a bot publishes for ``symbol`` (the ``external`` strategy; docs/reconciliation.md)."""
    return f"bot:orders:{symbol}"


def depth_stream(symbol: str) -> str:
    """The L2 book of ``symbol`` (snapshots and deltas, ``schemas/depth_record.schema.json``) beside the ticks: the
    dry-run's hftbacktest reality runs on it when it is there (docs/hftbacktest-reality.md, "Full depth")."""
    return f"lob:depth:{symbol}"


def live_kpi_hash(symbol: str) -> str:
    """The live shadow's latest closed window of ``symbol``, one hash field per KPI (as :func:`kpi_symbol_hash`):
    what a dashboard shows within a second of the window's close. Not the record of truth: the hourly partition
    is (docs/live-shadow.md)."""
    return f"shadow:live:kpi:{symbol}"


def live_kpi_stream(symbol: str) -> str:
    """One entry per window the live shadow closed for ``symbol`` (``source`` live), appended once per window."""
    return f"shadow:live:kpi:stream:{symbol}"


def live_position_hash(stream: str) -> str:
    """Where the live shadow of ``stream`` resumes after a restart, per configuration (profile and window): the
    first entry of the oldest hour it has not finished (with none open, the last entry read), and the last finished
    hour of each instrument."""
    return f"shadow:live:position:{stream}"


def feed_seq_key(stream: str, instrument: str) -> str:
    """The last ``seq`` the live feed gave ``instrument`` in ``stream``: kept in Redis and advanced by the same Lua
    call that XADDs the ticks, so that ``seq`` keeps increasing across reconnects and restarts and a crash can
    neither reuse nor skip one. The stream's name is its hash tag, so counter and stream share a cluster slot."""
    return f"feed:seq:{slot_tagged(stream)}:{instrument}"
