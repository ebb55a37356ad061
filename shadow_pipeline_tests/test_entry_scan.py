"""The byte scan of XREADGROUP replies gives exactly what the full parser gives on the decoded entries.

Entries go through a real Redis: written with XADD, read back once as raw bytes (the consumer's path) and once
through redis-py (the reference), over RESP2 and RESP3.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shadow_pipeline.domain.market.ticks import FIELDS, parse_entries
from shadow_pipeline.ingest.deliveries import (
    TRIMMED,
    Delivery,
    from_claim_reply,
    from_entries,
    from_range_reply,
    from_reply,
)
from shadow_pipeline.ingest.entry_scan import scan
from shadow_pipeline.redis_io.raw_reply import _receive, error_of, read_raw

GOOD = {
    "symbol": "BTCUSDT",
    "seq": "7",
    "ts_server": "1723161256313000000",
    "ts_local": "1723161255088169167",
    "bid": "61800.20",
    "ask": "61800.30",
    "bid_qty": "2.507",
    "ask_qty": "0.001",
    "last_px": "",
    "last_qty": "0",
    "last_side": "",
}
TRADE = {**GOOD, "seq": "8", "last_px": "61800.30", "last_qty": "0.25", "last_side": "buy"}
# well-formed (the default one spelled out too) and not: too long a part, a digit first, no dash, upper case, empty
VENUES = [
    "bybit-linear",
    "binance-usdm",
    "a-b",
    "abcdefghijklmnop-q",
    "abcdefghijklmnopq-r",
    "b-1x",
    "bybit",
    "Bybit-x",
    "",
]

numbers = st.one_of(
    st.integers(0, 12).flatmap(lambda places: st.decimals(-10, 10**7, places=places)).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "0", "-0", "1e5", "1.", ".5", "+3", " 4", "0x10", "1_000", "12345678901234567.5", "٣"]),
    st.integers(min_value=-(2**64), max_value=2**64).map(str),
)
values = st.fixed_dictionaries(
    {
        "symbol": st.sampled_from(["BTCUSDT", "ETHUSDT", "btc", "", "A" * 25, "X1"]),
        "seq": numbers,
        "ts_server": numbers,
        "ts_local": numbers,
        "bid": numbers,
        "ask": numbers,
        "bid_qty": numbers,
        "ask_qty": numbers,
        "last_px": numbers,
        "last_qty": numbers,
        "last_side": st.sampled_from(["", "buy", "sell", "BUY", "x"]),
    },
    optional={"venue": st.sampled_from(VENUES)},
)


# Explicit ids cover what Redis's own clock never writes: 0 ms, short and long ms parts, huge seq parts. Up to this
# many ms the broker time in ns fits int64 (the year 2262).
MAX_ID_MS = (2**63 - 1) // 1_000_000


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[dict[str, str]], list[str] | None]:
    """Entries, and either None (Redis assigns the ids) or increasing explicit ids for them."""
    entries = draw(st.lists(st.one_of(values, st.just(GOOD), st.just(TRADE)), min_size=1, max_size=30))
    if draw(st.booleans()):
        return entries, None
    id_parts = st.tuples(st.integers(0, MAX_ID_MS), st.integers(0, 2**64 - 1)).filter(lambda i: i != (0, 0))
    ids = draw(st.lists(id_parts, min_size=len(entries), max_size=len(entries), unique=True))
    return entries, [f"{ms}-{seq}" for ms, seq in sorted(ids)]


def _deliver(
    client: redis.Redis, stream: str, entries: list[dict[str, str]], ids: list[str] | None = None
) -> tuple[Delivery, Delivery]:
    """(raw path, reference path) for the same entries, read by two consumer groups."""
    client.delete(stream)
    for position, fields in enumerate(entries):
        client.xadd(stream, fields, id="*" if ids is None else ids[position])  # type: ignore[arg-type]
    client.xgroup_create(stream, "raw", id="0")
    client.xgroup_create(stream, "ref", id="0")
    raw = from_reply(read_raw(client, "XREADGROUP", "GROUP", "raw", "c", "STREAMS", stream, ">"))
    reply: Any = client.xreadgroup("ref", "c", {stream: ">"})
    read = reply[0][1] if isinstance(reply, list) else next(iter(reply.values()))[0]  # RESP2 list, RESP3 map
    decoded = [(i.decode(), [x.decode() for kv in f.items() for x in kv]) for i, f in read]
    return raw, from_entries(decoded)


def _assert_same(raw: Delivery, reference: Delivery) -> None:
    """Ids, ticks (with ``entry_id`` and ``ts_broker``), rejects and original fields agree between the paths."""
    assert raw.ids.tolist() == reference.ids.tolist()
    pd.testing.assert_frame_equal(raw.parsed.ticks, reference.parsed.ticks, check_index_type=False)
    ticks = raw.parsed.ticks
    assert ticks["entry_id"].tolist() == raw.ids[ticks.index.to_numpy()].tolist()
    assert ticks["ts_broker"].dtype == np.int64
    assert ticks["ts_broker"].tolist() == [int(i.split("-")[0]) * 1_000_000 for i in ticks["entry_id"]]
    pd.testing.assert_series_equal(raw.parsed.rejects.sort_index(), reference.parsed.rejects.sort_index())
    for position in range(len(raw)):
        assert raw.original(position) == reference.original(position)


@pytest.mark.parametrize("protocol", [2, 3])
def test_well_formed_ticks_take_the_fast_path_with_exact_values(redis_url: str, stream: str, protocol: int) -> None:
    client = redis.Redis.from_url(redis_url, protocol=protocol)
    raw, reference = _deliver(client, stream, [GOOD, TRADE, {**GOOD, "seq": "9", "symbol": "ETHUSDT"}])
    _assert_same(raw, reference)
    ticks = raw.parsed.ticks
    assert ticks["symbol"].tolist() == ["BTCUSDT", "BTCUSDT", "ETHUSDT"]
    assert ticks["bid"].iloc[0] == 61800.2 and ticks["ask_qty"].iloc[0] == 0.001
    assert ticks["ts_server"].iloc[0] == 1723161256313000000  # exact: no float rounding of nanoseconds
    assert ticks["is_trade"].tolist() == [False, True, False] and ticks["last_side"].iloc[1] == "buy"
    assert np.isnan(ticks["last_px"].iloc[0]) and ticks["last_px"].iloc[1] == 61800.3
    # the broker's clock at XADD, in ns; entry_id stays for the landing zone's dedup and order
    assert list(ticks.columns[:1]) == ["entry_id"] and ticks.columns.get_loc("ts_broker") == 5
    assert ticks["ts_broker"].iloc[0] == int(raw.ids[0].split("-")[0]) * 1_000_000


def test_entries_with_a_venue_take_the_fast_path_with_their_instrument_key(redis_url: str, stream: str) -> None:
    client = redis.Redis.from_url(redis_url)
    entries = [
        {**GOOD, "venue": "bybit-linear"},
        {**TRADE, "venue": "bybit-linear"},
        {**GOOD, "seq": "9", "venue": "binance-usdm"},  # the default venue spelled out: the bare key
        {**GOOD, "seq": "10"},
        {**GOOD, "seq": "11", "venue": "Bybit-linear"},  # not a venue code: the full parser names the rule
    ]
    raw, reference = _deliver(client, stream, entries)
    _assert_same(raw, reference)
    assert raw.parsed.ticks["symbol"].tolist() == ["BTCUSDT.bybit-linear"] * 2 + ["BTCUSDT"] * 2
    assert raw.parsed.rejects.str.startswith("bad venue").tolist() == [True]
    client.xgroup_create(stream, "scan", id="0")
    batch = scan(read_raw(client, "XREADGROUP", "GROUP", "scan", "c", "STREAMS", stream, ">"))
    assert batch.regular.tolist() == [True, True, True, True, False]


def test_fields_in_another_order_extra_or_missing_fields_and_errors(redis_url: str, stream: str) -> None:
    client = redis.Redis.from_url(redis_url)
    reordered = dict(reversed(list(GOOD.items())))
    extra = {**TRADE, "exchange": "binance"}
    missing = {k: v for k, v in GOOD.items() if k != "ask"}
    venues = [{**GOOD, "seq": "11", "venue": "bybit-linear"}, {**GOOD, "seq": "12", "venue": "binance"}]
    raw, reference = _deliver(client, stream, [reordered, extra, missing, {**GOOD, "bid": "61800.40"}, *venues])
    _assert_same(raw, reference)
    assert raw.parsed.rejects.to_dict() == {
        2: "missing field: ask",
        3: "crossed book: bid >= ask",
        5: "bad venue (want exchange-market in a-z0-9, e.g. bybit-linear, or no venue field)",
    }
    assert raw.parsed.ticks["symbol"].tolist() == ["BTCUSDT", "BTCUSDT", "BTCUSDT.bybit-linear"]
    with pytest.raises(redis.exceptions.ResponseError, match="NOGROUP"):
        from_reply(read_raw(client, "XREADGROUP", "GROUP", "nope", "c", "STREAMS", stream, ">"))


@pytest.mark.parametrize("protocol", [2, 3])
def test_an_entry_deleted_while_pending_is_trimmed(redis_url: str, stream: str, protocol: int) -> None:
    client = redis.Redis.from_url(redis_url, protocol=protocol)
    raw, _ = _deliver(client, stream, [GOOD, TRADE])
    client.xdel(stream, raw.ids[0])
    pending = from_reply(read_raw(client, "XREADGROUP", "GROUP", "raw", "c", "STREAMS", stream, "0"))
    assert pending.ids.tolist() == raw.ids.tolist()
    assert pending.parsed.rejects.to_dict() == {0: TRIMMED}
    assert pending.original(0) is None and pending.parsed.ticks["seq"].tolist() == [8]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=batches())
@example(batch=([GOOD, {**TRADE, "note": "x"}], ["0-1", f"{MAX_ID_MS}-{2**64 - 1}"]))  # fast and full path, extremes
def test_any_entries_parse_the_same_on_both_paths(
    redis_url: str, stream: str, batch: tuple[list[dict[str, str]], list[str] | None]
) -> None:
    entries, ids = batch
    raw, reference = _deliver(redis.Redis.from_url(redis_url), stream, entries, ids)
    _assert_same(raw, reference)


def test_a_large_reply_arriving_in_many_reads(redis_url: str, stream: str) -> None:
    client = redis.Redis.from_url(redis_url)
    entries = [{**TRADE, "seq": str(i + 1), "last_qty": f"{i % 97 + 1}.{i % 1000:03d}"} for i in range(30_000)]
    raw, reference = _deliver(client, stream, entries)
    assert len(raw) == 30_000 and raw.parsed.rejects.empty
    _assert_same(raw, reference)
    assert {f.encode() for f in FIELDS} <= set(raw.original(29_999) or [])


def test_push_messages_before_a_reply_are_skipped_however_the_bytes_arrive() -> None:
    push = b">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nkey\r\n"
    reply = b"*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-1\r\n*-1\r\n"
    ours, redis_side = socket.socketpair()
    with ours, redis_side:
        redis_side.sendall(push[:7])
        threading.Timer(0.05, lambda: redis_side.sendall(push[7:] + reply[:9])).start()
        threading.Timer(0.10, lambda: redis_side.sendall(reply[9:])).start()
        assert bytes(_receive(ours)) == reply


def test_error_replies_raise_what_redis_py_raises() -> None:
    loading = error_of(np.frombuffer(b"-LOADING Redis is loading the dataset in memory\r\n", dtype=np.uint8))
    assert isinstance(loading, redis.exceptions.BusyLoadingError)  # a ConnectionError: the consumer retries it
    nogroup = error_of(np.frombuffer(b"-NOGROUP No such key 's' or consumer group 'g'\r\n", dtype=np.uint8))
    assert type(nogroup) is redis.exceptions.ResponseError and str(nogroup).startswith("NOGROUP")


@settings(max_examples=60, deadline=None)
@given(entries=st.lists(st.one_of(values, st.just(GOOD), st.just(TRADE)), min_size=1, max_size=20))
def test_a_ticks_verdict_does_not_depend_on_its_batch(entries: list[dict[str, str]]) -> None:
    together = parse_entries(entries)
    for position, entry in enumerate(entries):
        alone = parse_entries([entry])
        assert together.rejects.get(position) == alone.rejects.get(0)
        if position in together.ticks.index:
            mine = together.ticks.loc[[position]].reset_index(drop=True)
            pd.testing.assert_frame_equal(mine, alone.ticks.reset_index(drop=True))


def _xadd(client: redis.Redis, stream: str, flat: list[bytes]) -> str:
    """XADD with the fields exactly as given, a name twice included (a dict could not hold that)."""
    return client.execute_command("XADD", stream, "*", *flat).decode()


def _flat(fields: dict[str, str]) -> list[bytes]:
    return [x.encode() for kv in fields.items() for x in kv]


@pytest.mark.parametrize("protocol", [2, 3])
def test_claim_and_range_replies_parse_like_the_read_reply(redis_url: str, stream: str, protocol: int) -> None:
    client = redis.Redis.from_url(redis_url, protocol=protocol)
    undecodable = {**GOOD, "seq": "9", "note": "x"}
    flats = [_flat(GOOD), _flat(TRADE), [*_flat(undecodable)[:-1], b"\xff\xfe"], [b"\xc3(", b"\xff", *_flat(GOOD)]]
    flats.append([*_flat(GOOD), b"seq", b"10"])  # seq twice
    ids = [_xadd(client, stream, f) for f in flats]
    client.xgroup_create(stream, "g", id="0")
    read = from_reply(read_raw(client, "XREADGROUP", "GROUP", "g", "dead", "STREAMS", stream, ">"))
    client.xdel(stream, ids[1])
    claimed = from_claim_reply(read_raw(client, "XAUTOCLAIM", stream, "g", "alive", 0, "0-0", "COUNT", 100))
    ranged = from_range_reply(read_raw(client, "XRANGE", stream, "-", "+"))
    assert claimed.cursor == "0-0" and read.cursor == ranged.cursor == ""
    # XAUTOCLAIM reports the deleted entry after the claimed ones, as a trimmed entry
    assert claimed.ids.tolist() == [ids[0], *ids[2:], ids[1]]
    assert claimed.parsed.rejects.to_dict() == {3: "duplicate field: seq", 4: TRIMMED}
    assert claimed.original(4) is None
    assert read.parsed.rejects.to_dict() == {4: "duplicate field: seq"}
    assert ranged.ids.tolist() == [ids[0], *ids[2:]]
    # an undecodable extra field is ignored like any extra field; its bytes stay exact
    assert read.parsed.ticks["seq"].tolist() == [7, 8, 9, 7]
    for position, flat in enumerate(flats):
        assert read.original(position) == flat
    assert claimed.original(2) == flats[3] and ranged.original(3) == flats[4]
    for delivery in (claimed, ranged):
        assert delivery.parsed.ticks["seq"].tolist() == [7, 9, 7]
    client.xgroup_destroy(stream, "g")
    with pytest.raises(redis.exceptions.ResponseError, match="NOGROUP"):
        from_claim_reply(read_raw(client, "XAUTOCLAIM", stream, "g", "alive", 0, "0-0"))


def test_claim_reply_cursor_pages_through_the_pending_list(redis_url: str, stream: str) -> None:
    client = redis.Redis.from_url(redis_url)
    ids = [_xadd(client, stream, _flat({**GOOD, "seq": str(i + 1)})) for i in range(7)]
    client.xgroup_create(stream, "g", id="0")
    read_raw(client, "XREADGROUP", "GROUP", "g", "dead", "STREAMS", stream, ">")
    seen, cursor = [], "0-0"
    while True:
        page = from_claim_reply(read_raw(client, "XAUTOCLAIM", stream, "g", "alive", 0, cursor, "COUNT", 3))
        seen += page.ids.tolist()
        cursor = page.cursor
        if cursor == "0-0":
            break
    assert seen == ids


field_bytes_values = st.one_of(
    st.binary(max_size=12),
    st.sampled_from(
        [b"\xff", b"\xc3(", b"1\xff", b"\xed\xa0\x80", b"buy\x00", b"BTC\xffUSDT", b"inf", b"nan", b"1e400"]
    ),
    st.sampled_from([v.encode() for v in GOOD.values()]),
)
field_names = st.one_of(st.sampled_from([f.encode() for f in FIELDS]), st.binary(min_size=1, max_size=8))


@st.composite
def byte_entries(draw: st.DrawFn) -> list[bytes]:
    """A tick with any of its field names or values replaced by arbitrary bytes, fields added, repeated or lost."""
    flat = [x for name, value in GOOD.items() for x in (name.encode(), value.encode())]
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["value", "name", "add", "drop"]))
        at = 2 * draw(st.integers(0, len(flat) // 2 - 1))
        if what == "value":
            flat[at + 1] = draw(field_bytes_values)
        elif what == "name":
            flat[at] = draw(field_names)
        elif what == "add":
            flat += [draw(field_names), draw(field_bytes_values)]
        elif len(flat) > 2:
            del flat[at : at + 2]
    return flat


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(byte_entries(), min_size=1, max_size=20))
def test_arbitrary_bytes_parse_the_same_on_every_path_and_are_kept_exactly(
    redis_url: str, stream: str, entries: list[list[bytes]]
) -> None:
    client = redis.Redis.from_url(redis_url)
    client.delete(stream)
    ids = [_xadd(client, stream, flat) for flat in entries]
    client.xgroup_create(stream, "g", id="0")
    read = from_reply(read_raw(client, "XREADGROUP", "GROUP", "g", "dead", "STREAMS", stream, ">"))
    claimed = from_claim_reply(read_raw(client, "XAUTOCLAIM", stream, "g", "alive", 0, "0-0"))
    ranged = from_range_reply(read_raw(client, "XRANGE", stream, "-", "+"))
    reference = from_entries(list(zip(ids, entries, strict=True)))
    for delivery in (read, claimed, ranged):
        _assert_same(delivery, reference)
        assert [delivery.original(p) for p in range(len(entries))] == entries
    # what is landed is text a decoding client can write anywhere
    for column in ("symbol", "last_side"):
        read.parsed.ticks[column].map(lambda v: v.encode("utf-8"))
