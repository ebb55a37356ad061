"""Poison entries: 100,000 bad entries among good ticks, written byte for byte with redis-py, a share of them left
pending under a consumer that died. Nothing raises (consumer, sensor, assets, checks); every bad entry is in the
dead-letter stream exactly once with its reason and its original bytes; every good tick lands exactly once.

"seq going backwards" is no dead letter: docs/tick-schema.md has no rule on the order of seqs, the sequence guard
counts it (out of order), and the tick lands.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import redis

from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.pipeline.sensors import closed_window_sensor
from shadow_pipeline.domain.market.ticks import FIELDS, MAX_UINT, TS_SERVER_MIN, ts_server_max
from shadow_pipeline.domain.market.windows import hour_keys
from shadow_pipeline.ingest.consumer import IngestOptions, TickConsumer
from shadow_pipeline.ingest.dead_letters import original_fields
from shadow_pipeline.io_managers import ParquetIOManager
from shadow_pipeline.redis_io.raw_reply import read_raw
from shadow_pipeline.resources import LandingResource, RedisResource, TickStreamResource
from shadow_pipeline_tests.ingest_helpers import landed
from shadow_pipeline_tests.instance_helpers import dagster_instance

HOUR = "2024-08-09-00:00"
T0 = 1_723_161_600_000_000_000  # 2024-08-09 00:00 UTC
SYMBOLS = ("BTCUSDT", "ETHUSDT")
GOOD_PER_SYMBOL = 15_000
BAD = 100_000
PENDING = 30_000  # the first entries, read by a consumer that then dies without acking
MEGABYTE = b"7" * (1 << 20)

Flat = list[bytes]


def _tick(symbol: str, seq: int, ts: int, trade: bool = False) -> dict[str, bytes]:
    fields = {
        "symbol": symbol,
        "seq": str(seq),
        "ts_server": str(ts),
        "ts_local": str(ts + 3_000_000),
        "bid": "61800.2",
        "ask": "61800.3",
        "bid_qty": "2.507",
        "ask_qty": "0.001",
        "last_px": "61800.3" if trade else "",
        "last_qty": "0.25" if trade else "0",
        "last_side": "buy" if trade else "",
    }
    return {k: v.encode() for k, v in fields.items()}


def _flat(fields: dict[str, bytes]) -> Flat:
    return [x for k, v in fields.items() for x in (k.encode(), v)]


def _with(base: dict[str, bytes], **changes: bytes) -> Flat:
    return _flat({**base, **changes})


def _bad_entries(rng: np.random.Generator) -> list[tuple[Flat, str]]:
    """(fields, the reason they must get: a prefix, or "" for any reason) for every kind of poison."""
    base = _tick("BTCUSDT", 999_999, T0 + 1_800_000_000_000)
    quote = _tick("ETHUSDT", 999_999, T0 + 1_900_000_000_000)
    kinds: list[tuple[Flat, str]] = [
        ([b"note", b"binance"], "missing field: " + ",".join(FIELDS)),  # only an unknown field (XADD needs one)
        ([*_flat(base), b"bid", b"61800.1"], "duplicate field: bid"),
        ([*_flat(base), b"x\xff", b"1", b"x\xff", b"2"], "duplicate field: x\\xff"),
        (_with(base, bid=b"61800.4"), "crossed book: bid >= ask"),
        (_with(base, bid=b"61800.3"), "crossed book: bid >= ask"),
        (_with(base, symbol=b"btcusdt"), "bad symbol"),
        (_with(quote, last_qty=b"0.5"), "quote tick with trade fields"),
        (_with(base, last_side=b"sell"), "trade tick with non-numeric last_px"),
    ]
    for name in FIELDS:
        kinds.append((_flat({k: v for k, v in base.items() if k != name}), f"missing field: {name}"))
        # invalid UTF-8 in every field: in its value, and in its name
        kinds.append((_with(quote, **{name: b"\xff" + quote[name] + b"\xc3("}), ""))
        kinds.append(([b"\xff" + k if k == name.encode() else k for k in _flat(quote)], "missing field"))
    for name in ("bid", "ask", "bid_qty", "ask_qty"):
        for value in (b"abc", b"nan", b"NaN", b"inf", b"-inf", b"1e400", b"1_000", b" 5", b"0x10"):
            kinds.append((_with(base, **{name: value}), f"non-numeric {name}"))
        for value in (b"0", b"-1", b"-0.0", b"-61800.3"):
            if name != "ask":  # a non-positive ask is also a crossed book; bid's rule comes first
                kinds.append((_with(base, **{name: value}), f"non-positive {name}"))
    for name in ("seq", "ts_server", "ts_local"):
        for value in (b"inf", b"1e400", b"nan", b"99999999999999999999", b"9" * 400, b"-5", b"0", b"1.5", b""):
            kinds.append(
                (_with(base, **{name: value}), f"{name} is not a positive integer of plain digits up to {MAX_UINT}")
            )
    for value in (b"8999999999999999999", b"1", b"1230767999999999999", str(ts_server_max() + 10**12).encode()):
        kinds.append((_with(base, ts_server=value), "ts_server out of range"))
    for side in (b"BUY", b"long", b"b", b"\xffbuy", b"buy\x00"):
        kinds.append((_with(base, last_side=side), "unknown side"))
    bad = [kinds[int(i)] for i in rng.integers(len(kinds), size=BAD - 8)]
    # 1 MB values, a few of them (a batch of 2000 of them would be a 2 GB reply)
    bad += [(_with(base, bid=MEGABYTE), "non-numeric bid"), (_with(base, symbol=MEGABYTE), "bad symbol")] * 4
    return bad


def _good_ticks() -> list[Flat]:
    """Both symbols over the hour, some seqs going backwards (swapped neighbours), a trade now and then, a valid
    tick with an undecodable extra field, and a few ticks just past the hour (they close it for the sensor)."""
    good: list[Flat] = []
    for symbol in SYMBOLS:
        seqs = np.arange(1, GOOD_PER_SYMBOL + 1)
        seqs[100:-100:500], seqs[101:-100:500] = seqs[101:-100:500], seqs[100:-100:500].copy()
        step = 3_600_000_000_000 // GOOD_PER_SYMBOL
        for i, seq in enumerate(seqs):
            fields = _tick(symbol, int(seq), T0 + i * step, trade=i % 7 == 0)
            good.append([*_flat(fields), b"note\xff", b"\xfe\xff"] if i % 1000 == 3 else _flat(fields))
        for j in range(3):
            good.append(_flat(_tick(symbol, GOOD_PER_SYMBOL + 1 + j, T0 + 3_600_000_000_000 + (j + 1) * 10**9)))
    return good


def _xadd_all(client: redis.Redis, stream: str, entries: list[Flat]) -> list[str]:
    ids: list[str] = []
    for start in range(0, len(entries), 5000):
        pipe = client.pipeline(transaction=False)
        for flat in entries[start : start + 5000]:
            pipe.execute_command("XADD", stream, "*", *flat)
        ids += [i.decode() for i in pipe.execute()]
    return ids


def _attribution(flat: Flat) -> tuple[str, str]:
    """Where the docs say a dead letter counts: its first symbol and ts_server, if readable and sane."""
    found: dict[bytes, bytes] = {}
    for name, value in zip(flat[0::2], flat[1::2], strict=True):
        found.setdefault(name, value)
    symbol, ts = found.get(b"symbol", b""), found.get(b"ts_server", b"")
    if not re.fullmatch(rb"[A-Z0-9]{1,24}", symbol) or not re.fullmatch(rb"[0-9]{1,19}", ts):
        return ("", "")
    if not TS_SERVER_MIN <= int(ts) <= ts_server_max():
        return ("", "")
    return str(hour_keys(np.array([int(ts)]))[0]), symbol.decode()


def test_poison_entries_are_dead_lettered_once_with_their_bytes_and_nothing_raises(
    redis_url: str, stream: str, tmp_path: Path
) -> None:
    started = time.perf_counter()
    client = redis.Redis.from_url(redis_url)  # bytes: what was written is compared byte for byte
    rng = np.random.default_rng(7)
    bad = _bad_entries(rng)
    good = _good_ticks()
    order = rng.permutation(len(bad) + len(good))  # good ticks keep their own order among themselves
    is_bad = np.zeros(len(order), dtype=bool)
    is_bad[np.sort(rng.choice(len(order), size=len(bad), replace=False))] = True
    entries: list[Flat] = []
    expected: list[str] = []
    bad_at, good_at = iter(bad), iter(good)
    for flag in is_bad:
        if flag:
            flat, reason = next(bad_at)
            entries.append(flat)
            expected.append(reason)
        else:
            entries.append(next(good_at))
            expected.append("GOOD")
    ids = _xadd_all(client, stream, entries)
    by_id = dict(zip(ids, range(len(ids)), strict=True))

    # A consumer reads the first entries and dies before acking any (raw bytes: redis-py would not decode them).
    client.xgroup_create(stream, "shadow", id="0")
    read_raw(client, "XREADGROUP", "GROUP", "shadow", "killed", "COUNT", PENDING, "STREAMS", stream, ">")
    assert client.xpending(stream, "shadow")["pending"] == PENDING

    resources = {
        "redis": RedisResource(url=redis_url),
        "tick_stream": TickStreamResource(stream=stream, claim_idle_ms=0),
        "landing": LandingResource(base_path=str(tmp_path / "landing")),
        "io_manager": ParquetIOManager(base_path=str(tmp_path / "assets")),
    }
    # The sensor reads the stream as it is, poison and all: it passes the bad entries and counts them.
    with dagster_instance() as instance:
        sensed = closed_window_sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert isinstance(sensed, dg.SensorResult)
    assert sorted(str(r.partition_key) for r in sensed.run_requests or []) == [partition_key(HOUR, s) for s in SYMBOLS]
    assert f'"last_id": "{ids[-1]}"' in str(sensed.cursor)
    assert "2262" not in str(sensed.cursor)  # no hour of a wrapped or far-off time is kept open

    store = LandingResource(base_path=str(tmp_path / "landing")).store(stream)
    options = IngestOptions(stream=stream, consumer="rescuer", claim_idle_ms=0)
    report = TickConsumer(store, options, redis_url).drain()
    assert report.dead_letters == len(bad) and report.landed_total == len(good)
    assert client.xpending(stream, "shadow")["pending"] == 0

    # Every bad entry is a dead letter exactly once, with its reason and the very bytes that were written.
    letters: Any = client.xrange(f"{stream}:dlq")
    assert len(letters) == len(bad)
    seen: Counter[int] = Counter()
    for _, letter in letters:
        text = {k.decode(): v for k, v in letter.items()}
        position = by_id[text["orig_id"].decode()]
        seen[position] += 1
        want = expected[position]
        assert want != "GOOD", entries[position][:6]
        assert text["reason"].decode().startswith(want), (text["reason"], want)
        written = entries[position]
        assert original_fields(letter) == list(zip(written[0::2], written[1::2], strict=True))
    assert len(seen) == len(bad) and set(seen.values()) == {1}

    # Every good tick lands exactly once.
    ticks = landed(store)
    good_ids = {i for i, want in zip(ids, expected, strict=True) if want == "GOOD"}
    assert len(ticks) == len(good) and set(ticks["entry_id"]) == good_ids
    assert sum(report.out_of_order.values()) > 0  # seqs going backwards: counted by the guard, landed

    # Dead letters the tick stream did not write: not even these stop the reader.
    client.xadd(f"{stream}:dlq", {b"orig_id": b"\xff", b"fields": b"2", b"name.0": b"%%%", b"\xfe": b"\xff"})
    attributed = Counter(_attribution(flat) for flat, want in zip(entries, expected, strict=True) if want != "GOOD")
    for symbol in SYMBOLS:
        with dagster_instance() as instance:  # held for the run: a bare ephemeral() may be collected mid-run
            result = dg.materialize(
                [landing_zone, raw_ticks, normalized_ticks],
                partition_key=partition_key(HOUR, symbol),
                resources=resources,
                instance=instance,
                raise_on_error=False,
            )
        assert result.success
        assert all(e.passed for e in result.get_asset_check_evaluations())  # gaps: none; swapped seqs are no gap
        [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == dg.AssetKey("tick_quality")]
        meta: dict[str, Any] = {k: v.value for k, v in event.materialization.metadata.items()}
        assert meta["dead_letters"] == attributed[(HOUR, symbol)] > 0
        assert meta["dead_letters_unattributed"] == attributed[("", "")] + 1
        assert meta["rows_received"] == GOOD_PER_SYMBOL and meta["out_of_order"] > 0

    # The sensor after everything: the cursor moves on past the end, nothing more to request.
    with dagster_instance() as instance:
        again = closed_window_sensor(
            dg.build_sensor_context(instance=instance, resources=resources, cursor=sensed.cursor)
        )
    assert isinstance(again, dg.SensorResult) and not again.run_requests
    elapsed = time.perf_counter() - started
    print(f"{len(entries)} entries ({len(bad)} bad, {PENDING} pending under a dead consumer) in {elapsed:.1f} s")
