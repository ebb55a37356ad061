"""What the consumer group knows about its consumers, and claiming through the raw-bytes read path.

The facts used to tell a dead consumer from a slow one are the group's own (docs/ingest.md, "Claiming and
completeness"): ``XINFO CONSUMERS`` ``idle`` is the time since the consumer last read or claimed (a serving
consumer does so at least every ``block_ms``), ``XPENDING`` gives each entry's owner, idle time and delivery
count. Claim replies themselves are read as raw RESP bytes and parsed by ``ingest.deliveries``
(``from_claim_reply`` for XAUTOCLAIM, ``from_range_reply`` for XCLAIM's entries), so undecodable bytes never
raise and claimed entries take the same typed path as read ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from shadow_pipeline.ingest.deliveries import Delivery, from_entries
from shadow_pipeline.redis_io.raw_reply import error_of

__all__ = [
    "ConsumerFacts",
    "PendingEntry",
    "consistent_lag",
    "consumers",
    "error_of",
    "forget_consumer",
    "id_key",
    "pending_entries",
    "trimmed",
]

# XGROUP DELCONSUMER destroys the consumer's pending entries; deleting only one that owns nothing, atomically,
# keeps a consumer that read something since XINFO CONSUMERS was asked from losing it.
_FORGET = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return -1 end
return redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
"""


@dataclass(frozen=True)
class ConsumerFacts:
    name: str
    pending: int
    idle_ms: int  # since its last read or claim (XINFO CONSUMERS idle)


@dataclass(frozen=True)
class PendingEntry:
    id: str
    consumer: str
    idle_ms: int
    deliveries: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def consumers(client: redis.Redis, stream: str, group: str) -> list[ConsumerFacts]:
    facts = []
    for info in client.xinfo_consumers(stream, group):
        facts.append(ConsumerFacts(_text(info["name"]), int(info["pending"]), int(info["idle"])))
    return facts


def pending_entries(
    client: redis.Redis,
    stream: str,
    group: str,
    count: int,
    consumer: str | None = None,
    min_idle_ms: int | None = None,
    start: str = "-",
    end: str = "+",
) -> list[PendingEntry]:
    """XPENDING's extended form: up to ``count`` entries from ``start`` to ``end`` (inclusive, or ``(id``)."""
    rows = client.xpending_range(stream, group, start, end, count, consumername=consumer, idle=min_idle_ms)
    return [
        PendingEntry(
            _text(r["message_id"]), _text(r["consumer"]), int(r["time_since_delivered"]), int(r["times_delivered"])
        )
        for r in rows
    ]


def forget_consumer(client: redis.Redis, stream: str, group: str, consumer: str) -> bool:
    """Delete ``consumer`` from the group if (checked atomically) it owns no pending entry."""
    return int(client.eval(_FORGET, 1, stream, group, consumer)) >= 0


def trimmed(ids: list[str]) -> Delivery:
    """Entries deleted from the stream while pending: rejects with the TRIMMED reason (dead letters)."""
    return from_entries([(i, None) for i in ids])


def consistent_lag(client: redis.Redis, stream: str, group: str, exact_up_to: int = 1_000) -> int | None:
    """The group's lag (entries not yet delivered to it), checked against the stream itself.

    ``XINFO GROUPS`` lag is ``entries-added - entries-read``; ``entries-read`` can be wrong (after an AOF reload,
    an ``XGROUP SETID`` without ``ENTRIESREAD``, deletions), and Redis then reports that lag forever. The rule:
    0 when the group has delivered the newest id of the stream (``last-delivered-id`` >= ``last-generated-id``);
    else the entries after ``last-delivered-id`` are counted (one XRANGE of at most ``exact_up_to``), which is
    exact below that; at or above it Redis's lag is taken when it is possible (``exact_up_to <= lag <=
    length``), else the stream's length bounds it.
    """
    info = next((g for g in client.xinfo_groups(stream) if _text(g.get("name")) == group), None)
    if info is None:
        return None
    # Undecoded: the first and last entries come along, and their fields may be any bytes.
    raw = client.execute_command("XINFO STREAM", stream, NEVER_DECODE=True)
    pairs = raw.items() if isinstance(raw, dict) else zip(raw[0::2], raw[1::2], strict=True)
    stream_info = {_text(k): v for k, v in pairs}
    last_delivered = _text(info["last-delivered-id"])
    last_generated = _text(stream_info.get("last-generated-id", b"0-0"))
    length = int(stream_info["length"])
    if id_key(last_delivered) >= id_key(last_generated):
        return 0
    after = client.execute_command("XRANGE", stream, f"({last_delivered}", "+", "COUNT", exact_up_to, NEVER_DECODE=True)
    if len(after or []) < exact_up_to:
        return len(after or [])
    reported = info.get("lag")
    if reported is not None and exact_up_to <= int(reported) <= length:
        return int(reported)
    return length
