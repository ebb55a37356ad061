"""Which stream of a sharded tick stream an instrument's ticks go to, and the shard streams' names.

An instrument lives in exactly one shard, so each (hour, symbol) partition is fed by one consumer group and stays
exact whatever the other shards do. The shard is a stable hash of the instrument key's UTF-8 bytes (CRC-32, the
same in every process, language and release; Python's ``hash()`` is salted per process) modulo the shard count.

With one shard the stream keeps its plain name (``lob:ticks``), as before sharding. With more, shard ``i`` of
``lob:ticks`` is ``lob:ticks:{s<i>}``: the braces are a Redis Cluster hash tag, and every key derived from a shard
stream (dead letters, failed attempts, guard state, feed sequence counters: ``redis_io.keys``) keeps that tag, so
one shard's keys share a slot and the Lua calls and MULTIs over them work on a cluster.
"""

from __future__ import annotations

import zlib

MAX_SHARDS = 1024  # beyond this a value is a typo: each shard is a stream, a group and a consumer at least


def check_shards(shards: int) -> int:
    """``shards`` if it is a usable count (1 to MAX_SHARDS), else ValueError naming the range."""
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"the shard count must be an integer from 1 to {MAX_SHARDS}, got {shards!r}")
    return shards


def shard_of(instrument_key: str, shards: int) -> int:
    """The shard of ``instrument_key`` (``BTCUSDT``, ``BTCUSDT.bybit-linear``) among ``shards``."""
    return zlib.crc32(instrument_key.encode("utf-8")) % check_shards(shards)


def shard_stream(base: str, shard: int, shards: int) -> str:
    """The stream of shard ``shard`` of ``base``: ``base`` itself when there is one shard."""
    if not 0 <= shard < check_shards(shards):
        raise ValueError(f"shard {shard} is not one of 0..{shards - 1}")
    return base if shards == 1 else f"{base}:{{s{shard}}}"


def shard_streams(base: str, shards: int) -> list[str]:
    """Every shard stream of ``base``, shard 0 first."""
    return [shard_stream(base, shard, shards) for shard in range(check_shards(shards))]


def instrument_stream(base: str, instrument_key: str, shards: int) -> str:
    """The stream ``instrument_key``'s ticks are written to."""
    return shard_stream(base, shard_of(instrument_key, shards), shards)


def has_hash_tag(key: str) -> bool:
    """True when ``key`` carries a Redis Cluster hash tag: a ``{`` followed later by a ``}`` with something between."""
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    return end > start + 1


def slot_tagged(stream: str) -> str:
    """``stream`` as the part of a derived key that puts the key in ``stream``'s slot: the stream's own hash tag
    when it has one (a shard stream), else the whole name in braces (``{lob:ticks}``, the names before sharding).
    Wrapping a tagged name in braces would not do: the tag would become ``lob:ticks:{s2``, another slot."""
    return stream if has_hash_tag(stream) else f"{{{stream}}}"
