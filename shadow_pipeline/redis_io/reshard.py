"""Re-sharding's one Redis step: the live feed's seq counters carried to the streams their instruments move to.

A counter's key embeds its shard stream (``keys.feed_seq_key``: counter and stream share a cluster slot), so an
instrument that another shard count puts on another stream would find no counter there and number from 1 again;
``normalize`` keeps one tick per seq, so an hour holding old and new seqs would lose ticks. The step runs between
the drain with the old count and the producers' restart with the new one (docs/ingest.md, "Shards").

It refuses unless every old shard is drained for the group: entries still in a shard are read by nobody once the
consumers follow the new count. A new counter is only ever raised (to the highest the instrument has on any old
shard), never lowered, so running the step twice, or after a partial run, changes nothing more. Old counters are
left as they are: a re-shard back takes the highest again. An instrument that comes back to a stream it was on
before finds the group's sequence guard there at its old highest seq; the guard is advanced to the carried one, or
it would count the seqs the instrument had on the other stream as a gap. Every key is written alone, so the step
works on a cluster, where the old and the new counter of an instrument live in different slots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import redis

from shadow_pipeline.domain.market.shards import check_shards, instrument_stream, shard_streams
from shadow_pipeline.ingest.claims import consistent_lag
from shadow_pipeline.ingest.guard import advance
from shadow_pipeline.redis_io.keys import feed_seq_key, guard_group_keys

# KEYS: the new counter. ARGV: the carried seq (a canonical decimal). Sets it unless the counter is already at
# least that, and returns {1 when it set it, the counter}; compares decimals by length, then text, as Lua's
# doubles are exact only up to 2^53.
_RAISE = """
local cur = redis.call('GET', KEYS[1])
if cur then
  if not (cur == '0' or string.match(cur, '^[1-9]%d*$')) then
    return redis.error_reply('ERR ' .. KEYS[1] .. ' holds no seq counter')
  end
  if #cur > #ARGV[1] or (#cur == #ARGV[1] and cur >= ARGV[1]) then return {0, cur} end
end
redis.call('SET', KEYS[1], ARGV[1])
return {1, ARGV[1]}
"""
_SEQ = re.compile(r"0|[1-9][0-9]{0,18}")
_MAX_SEQ = 2**63 - 1  # what INCRBY can reach


class NotDrained(ValueError):
    """An old shard still holds entries its group has not landed and acknowledged."""


@dataclass(frozen=True)
class Carried:
    instrument: str
    source: str  # the old shard stream whose counter was the highest
    target: str  # the stream the instrument's ticks go to with the new count
    seq: int  # the target counter now: the next tick gets seq + 1
    raised: bool  # False when the target already held as much (the same stream, or a run before this one)
    guard_advanced: bool  # the target's guard had state below seq (the instrument was there before): raised to it


@dataclass(frozen=True)
class ReshardResult:
    stream: str
    old: int
    new: int
    group: str
    carried: list[Carried]

    def as_dict(self) -> dict[str, object]:
        return {
            "stream": self.stream,
            "from": self.old,
            "to": self.new,
            "group": self.group,
            "instruments": len(self.carried),
            "moved": sum(c.source != c.target for c in self.carried),
            "raised": sum(c.raised for c in self.carried),
            "guards_advanced": sum(c.guard_advanced for c in self.carried),
            "seqs": {c.instrument: c.seq for c in self.carried},
        }


def check_counts(old: int, new: int) -> None:
    """ValueError unless ``old`` and ``new`` are two different usable shard counts."""
    check_shards(old)
    check_shards(new)
    if old == new:
        raise ValueError(f"--from and --to are both {old}: there is nothing to re-shard")


def reshard_counters(client: redis.Redis, stream: str, old: int, new: int, group: str) -> ReshardResult:
    """Raise each instrument's counter on its stream under ``new`` shards of ``stream`` to its highest on the
    ``old`` shards. NotDrained when an old shard is not drained for ``group``; ValueError for a shard count, a
    stream with neither shards nor counters (a mistyped name), or a producer still numbering on the old count."""
    check_counts(old, new)
    sources = shard_streams(stream, old)
    problems = [problem for source in sources if (problem := _undrained(client, source, group))]
    if problems:
        raise NotDrained(
            f"not drained: {'; '.join(problems)}. Stop the producers and run shadow-pipeline ingest --drain with "
            f"SHADOW_STREAM_SHARDS={old} until it exits 0, then re-shard"
        )
    counters = _highest_counters(client, sources)
    if not counters and not any(client.exists(source) for source in sources):
        raise ValueError(
            f"{stream} has no shard stream and no feed counter with --from {old}: check --stream and --from"
        )
    # Each stream with the shard count under which a drain reads it: the old shards, and the streams moved to.
    read_under = {instrument_stream(stream, instrument, new): new for instrument in counters} | dict.fromkeys(
        sources, old
    )
    uncounted = sorted(s for s in read_under if client.exists(guard_group_keys(s, group)[1]))
    if uncounted:  # advancing a guard past a waiting batch would count its seqs as late when it is applied
        drains = "; ".join(
            f"SHADOW_STREAM_SHARDS={read_under[s]} shadow-pipeline ingest --drain for {s}" for s in uncounted
        )
        raise NotDrained(
            f"the sequence guard of {', '.join(uncounted)} holds checked batches not yet counted (a drain cut short "
            f"between its last acknowledgement and the guard's confirm): drain again ({drains}), then re-shard"
        )
    carried = []
    for instrument, (source, seq) in sorted(counters.items()):
        target = instrument_stream(stream, instrument, new)
        raised, now = client.eval(_RAISE, 1, feed_seq_key(target, instrument), str(seq))
        advanced = target != source and advance(client, target, group, instrument, int(_text(now)))
        carried.append(Carried(instrument, source, target, int(_text(now)), bool(raised), advanced))
    moved_on = [i for i, (source, seq) in sorted(counters.items()) if _seq(client, feed_seq_key(source, i)) != seq]
    if moved_on:
        raise ValueError(
            f"the feed counters of {', '.join(moved_on)} rose while re-sharding: a producer still runs with "
            f"{old} shards. Stop it, drain, and run the re-shard again (it never lowers a counter)"
        )
    return ReshardResult(stream, old, new, group, carried)


def _undrained(client: redis.Redis, stream: str, group: str) -> str | None:
    """Why ``stream`` is not drained for ``group`` (entries not delivered, or delivered and not acknowledged),
    else None. A stream that does not exist, or an empty one that no group reads, has nothing to drain."""
    if not client.exists(stream):
        return None
    groups = {_text(info["name"]) for info in client.xinfo_groups(stream)}
    if group not in groups:
        length = int(client.xlen(stream))
        return f"{stream} holds {length} entries and no group {group} reads it" if length else None
    pending = int(client.xpending(stream, group)["pending"])
    lag = consistent_lag(client, stream, group) or 0
    reasons = [f"{pending} entries pending (delivered, not acknowledged)"] * bool(pending)
    reasons += [f"{lag} entries not delivered to group {group}"] * bool(lag)
    return f"{stream}: {' and '.join(reasons)}" if reasons else None


def _highest_counters(client: redis.Redis, sources: list[str]) -> dict[str, tuple[str, int]]:
    """Instrument -> (old shard stream, seq) of its highest counter on any of ``sources``. One SCAN of the
    counters, not one per shard: an instrument key holds no ``:``, so a key's prefix names its stream."""
    by_prefix = {feed_seq_key(source, ""): source for source in sources}
    highest: dict[str, tuple[str, int]] = {}
    for raw in client.scan_iter(match="feed:seq:*", count=1000):
        key = _text(raw)
        prefix, _, instrument = key.rpartition(":")
        source = by_prefix.get(f"{prefix}:")
        if source is None or not instrument:
            continue
        seq = _seq(client, key)
        if seq is not None and (instrument not in highest or seq > highest[instrument][1]):
            highest[instrument] = (source, seq)
    return highest


def _seq(client: redis.Redis, key: str) -> int | None:
    """The counter at ``key``; None when it is gone, ValueError when it holds anything but a seq."""
    value = client.get(key)
    if value is None:
        return None
    text = _text(value)
    if not _SEQ.fullmatch(text) or int(text) > _MAX_SEQ:
        raise ValueError(f"{key} holds no seq counter (an integer from 0 to 2^63-1): {text[:40]!r}")
    return int(text)


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
