"""The L2 depth stream ``lob:depth:{key}``: the reader on a real Redis (a hostile entry is one error naming its id,
never a book that passes), the range it returns, and the Binance USD-M publisher (``replay --depth``) with its
one-line errors. The full-depth reality on the shared recordings is in ``test_depth_reality.py``."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from shadow_pipeline.domain.market.depth import depth_fields
from shadow_pipeline.redis_io.depth_stream import BadDepthEntry, read_depth
from shadow_pipeline.redis_io.keys import depth_stream

T0 = 1_723_161_255_000_000_000
S = 1_000_000_000
CLI = [sys.executable, "-m", "shadow_pipeline.cli"]


@pytest.fixture
def symbol(redis_client: redis.Redis) -> Iterator[str]:
    """A symbol of this test alone (its stream is deleted afterwards: tests may share an external Redis)."""
    name = "X" + uuid.uuid4().hex[:12].upper()
    yield name
    redis_client.delete(depth_stream(name))


def _snapshot(symbol: str, at: int = T0, last_id: int = 100) -> dict[str, str]:
    bids, asks = [["100.0", "3"], ["99.9", "5"]], [["100.1", "2"], ["100.2", "4"]]
    return depth_fields(symbol, "snapshot", at, at, bids, asks, last_id=last_id)


def _delta(symbol: str, at: int = T0 + S, first_id: int = 99, last_id: int = 105) -> dict[str, str]:
    return depth_fields(symbol, "delta", at, at, [["99.9", "0"]], [["100.3", "1.5"]], first_id, last_id)


def _write(client: redis.Redis, symbol: str, *entries: dict[Any, Any]) -> list[str]:
    return [str(client.xadd(depth_stream(symbol), entry)) for entry in entries]


HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    # (case, fields changed or removed (None) in a good delta, the reason)
    ("missing-kind", {"kind": None}, "'kind' is a required property"),
    ("unknown-kind", {"kind": "update"}, "kind: 'update' is not one of"),
    ("extra-field", {"foo": "1"}, "Additional properties are not allowed ('foo'"),
    ("lowercase-symbol", {"symbol": "btcusdt"}, "symbol: 'btcusdt' does not match"),
    ("bad-venue", {"venue": "Binance"}, "venue: 'Binance' does not match"),
    ("nan-ts", {"ts_server": "NaN"}, "ts_server: 'NaN' does not match"),
    ("float-ts", {"ts_server": "1.7e18"}, "ts_server: '1.7e18' does not match"),
    ("negative-ts", {"ts_server": "-5"}, "ts_server: '-5' does not match"),
    ("huge-ts", {"ts_server": "9" * 40}, "does not match"),
    ("past-int64", {"ts_server": "9300000000000000000"}, "ts_server: 9300000000000000000 does not fit int64"),
    ("ancient-ts", {"ts_server": "1000"}, "ts_server out of range"),
    ("ids-reversed", {"first_id": "200", "last_id": "150"}, "first_id 200 > last_id 150"),
    ("bids-not-json", {"bids": '[["100.0",'}, "bids: not JSON"),
    ("bids-object", {"bids": '{"100.0": "1"}'}, "bids: want a JSON array of at most 10000"),
    ("bids-numbers", {"bids": "[[100.0, 1]]"}, "bids/0: [100.0, 1] is not a [price, qty] pair"),
    ("nan-price", {"bids": '[["NaN","1"]]'}, 'bids/0: ["NaN", "1"] is not a [price, qty] pair'),
    ("inf-qty", {"asks": '[["100.1","Infinity"]]'}, "asks/0"),
    ("exponent", {"bids": '[["1e5","1"]]'}, "bids/0"),
    ("negative-qty", {"bids": '[["100.0","-1"]]'}, "bids/0"),
    ("three-items", {"bids": '[["100.0","1","x"]]'}, "bids/0"),
    ("zero-price", {"bids": '[["0","1"]]'}, "bids: a price is 0"),
    ("price-twice", {"bids": '[["100.0","1"],["100.0","2"]]'}, "bids: a price is listed twice"),
    ("too-many-levels", {"bids": json.dumps([[f"{i}.5", "1"] for i in range(1, 10_002)])}, "at most 10000"),
    ("huge-text", {"bids": "[" * 1_000_001}, "bids: '[[[[[[[[["),
    ("deep-nesting", {"bids": "[" * 100_000 + "]" * 100_000}, "bids: not JSON (nested too deep)"),
    ("non-utf8", {"asks": b"\xff\xfe"}, "asks: not JSON (Expecting value at character 0)"),
    ("ts-back", {"ts_server": str(T0 - 1)}, f"ts_server {T0 - 1} goes back (previous entry {T0})"),
    ("id-repeated", {"first_id": "90", "last_id": "99"}, "last_id 99 does not increase (previous entry 100)"),
    ("other-symbol", {"symbol": "ETHUSDT"}, "symbol ETHUSDT in a stream of"),
]


@pytest.mark.parametrize(("changes", "reason"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE])
def test_a_hostile_entry_is_one_error_naming_it(
    redis_client: redis.Redis, symbol: str, changes: dict[str, Any], reason: str
) -> None:
    delta: dict[str, Any] = {**_delta(symbol), **changes}
    delta = {k: v for k, v in delta.items() if v is not None}
    _, bad_id = _write(redis_client, symbol, _snapshot(symbol), delta)
    with pytest.raises(BadDepthEntry) as caught:
        read_depth(redis_client, symbol, T0, T0 + 3600 * S)
    message = str(caught.value)
    assert message.startswith(f"{depth_stream(symbol)} entry {bad_id}: "), message
    assert reason in message, message
    assert "\n" not in message and len(message) < 400, message


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([_delta], "a delta with no snapshot before it, the book is unknown"),
        ([lambda s: {**_snapshot(s), "bids": '[["100.0","0"]]'}], "bids: a snapshot level has qty 0"),
        ([lambda s: {**_snapshot(s), "asks": "[]"}], "a snapshot with an empty side"),
    ],
    ids=["delta-first", "snapshot-qty-0", "snapshot-one-sided"],
)
def test_a_book_that_cannot_be_known_is_refused(
    redis_client: redis.Redis, symbol: str, entries: list[Any], reason: str
) -> None:
    [bad_id] = _write(redis_client, symbol, *(make(symbol) for make in entries))
    with pytest.raises(BadDepthEntry, match=f"entry {bad_id}: {reason}"):
        read_depth(redis_client, symbol, T0, T0 + 3600 * S)


def test_the_range_starts_from_the_last_snapshot_before_it(redis_client: redis.Redis, symbol: str) -> None:
    _write(
        redis_client,
        symbol,
        _snapshot(symbol, T0, 100),
        _delta(symbol, T0 + S, 99, 105),
        _snapshot(symbol, T0 + 2 * S, 110),  # the book at the start of the range
        _delta(symbol, T0 + 3 * S, 111, 115),
        _delta(symbol, T0 + 10 * S, 116, 120),
        _delta(symbol, T0 + 20 * S, 121, 125),  # at the end: outside
    )
    read = read_depth(redis_client, symbol, T0 + 5 * S, T0 + 20 * S)
    assert read is not None
    assert (read.snapshots, read.deltas, read.first_snapshot) == (1, 2, (2, 2))
    assert read.levels["ts_server"].drop_duplicates().tolist() == [T0 + 2 * S, T0 + 3 * S, T0 + 10 * S]
    assert read.levels["update"].tolist() == [0, 0, 0, 0, 1, 1, 2, 2]
    assert read.describe() == f"full depth: {depth_stream(symbol)}, 1 snapshot (2x2 levels), 2 diffs"
    assert read_depth(redis_client, symbol, T0 + 30 * S, T0 + 40 * S) is None  # nothing in the range
    assert read_depth(redis_client, "NOSUCHSYMBOL", T0, T0 + S) is None  # no stream


# the publisher: shadow-pipeline replay --depth


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=dict(os.environ), timeout=300)


def _recording(path: Path, lines: list[tuple[int, dict[str, Any]]]) -> Path:
    path.write_bytes(
        gzip.compress(b"".join(b"%d %s\n" % (t, json.dumps(m, separators=(",", ":")).encode()) for t, m in lines))
    )
    return path


def _diff_line(t: int, first: int, last: int, previous: int, bids: Any = None) -> tuple[int, dict[str, Any]]:
    data = {"e": "depthUpdate", "E": t // 1_000_000, "s": "BTCUSDT", "U": first, "u": last, "pu": previous}
    data |= {"b": bids if bids is not None else [["100.0", "1.000"]], "a": [["100.1", "2.000"]]}
    return t, {"stream": "btcusdt@depth@0ms", "data": data}


def _ticker_line(t: int) -> tuple[int, dict[str, Any]]:
    data = {"e": "bookTicker", "s": "BTCUSDT", "b": "100.0", "B": "1", "a": "100.1", "A": "2", "E": t // 1_000_000}
    return t, {"stream": "btcusdt@bookTicker", "data": data}


SNAPSHOT_LINE = (
    T0 + 5_000_000,
    {"lastUpdateId": 50, "E": T0 // 1_000_000 + 5, "T": 0, "bids": [["100.0", "1"]], "asks": [["100.1", "1"]]},
)


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        (
            [
                _ticker_line(T0),
                _diff_line(T0 + 1, 40, 45, 39),
                SNAPSHOT_LINE,
                _diff_line(T0 + 9, 46, 60, 45),
                _diff_line(T0 + 10, 62, 70, 61),
            ],
            "line 5: diff pu 61 is not the previous diff's u 60: a diff is missing",
        ),
        (
            [_ticker_line(T0), SNAPSHOT_LINE, _diff_line(T0 + 9, 55, 60, 54)],
            "line 3: the first diff after the snapshot starts at U 55, past its lastUpdateId 50",
        ),
        ([_ticker_line(T0), _diff_line(T0 + 1, 40, 45, 39)], "depth diffs of BTCUSDT but no REST snapshot"),
        ([_ticker_line(T0)], "no depth diffs or REST snapshot in"),
        (
            [_ticker_line(T0), SNAPSHOT_LINE, _diff_line(T0 + 9, 46, 60, 45, bids=[["100.0", 1.5]])],
            "line 3: level value '1.5' is not a decimal string",
        ),
        (
            [_ticker_line(T0), SNAPSHOT_LINE, _diff_line(T0 + 9, 46, 60, 45, bids=[["100.0", "1e3"]])],
            'line 3: bids/0: ["100.0", "1e3"] is not a [price, qty] pair',
        ),
        (
            [_ticker_line(T0), SNAPSHOT_LINE, _diff_line(T0 + 9, 46, 60, 45, bids=7)],
            "line 3: unexpected message shape",
        ),
    ],
    ids=["gap", "snapshot-too-old", "no-snapshot", "no-depth", "number-qty", "exponent", "levels-not-a-list"],
)
def test_a_recording_whose_book_cannot_be_rebuilt_is_one_error_line(
    tmp_path: Path, redis_url: str, lines: list[tuple[int, dict[str, Any]]], error: str
) -> None:
    path = _recording(tmp_path / "rec.gz", lines)
    out = _cli("replay", "--source", "binance", "--file", str(path), "--depth", "--redis-url", redis_url)
    assert out.returncode == 2, out.stderr
    [line] = [line for line in out.stderr.splitlines() if line.startswith("error: ")]
    assert error in line, out.stderr


@pytest.mark.parametrize(
    "args", [("--source", "synthetic"), ("--source", "binance", "--speed", "1")], ids=["synthetic", "paced"]
)
def test_depth_is_refused_where_it_cannot_be_published(args: tuple[str, ...]) -> None:
    out = _cli("replay", *args, "--depth")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "error: --depth publishes a Binance USD-M recording's book: use it with --source binance and --speed 0"
    )


def test_a_small_recording_is_published_and_read_back(
    tmp_path: Path, redis_url: str, redis_client: redis.Redis
) -> None:
    """Binance's rule on a hand-made recording: the diff before the snapshot (u < lastUpdateId) is dropped, the
    straddling one is applied after the snapshot, which is stamped no later than it."""
    lines = [
        _ticker_line(T0),
        _diff_line(T0 + 1_000_000, 40, 45, 39),  # u 45 < lastUpdateId 50: dropped
        _diff_line(T0 + 2_000_000, 46, 52, 45),  # straddles 50: the first one applied
        SNAPSHOT_LINE,
        _diff_line(T0 + 9_000_000, 53, 60, 52),
    ]
    path = _recording(tmp_path / "rec.gz", lines)
    key = depth_stream("BTCUSDT")
    redis_client.delete(key)
    try:
        stream = f"test:{uuid.uuid4().hex[:8]}:ticks"
        out = _cli(
            "replay",
            "--source",
            "binance",
            "--file",
            str(path),
            "--depth",
            "--json",
            "--redis-url",
            redis_url,
            "--stream",
            stream,
        )
        redis_client.delete(stream)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["depth_entries"] == {key: 3}
        read = read_depth(redis_client, "BTCUSDT", T0, T0 + S)
        assert read is not None and (read.snapshots, read.deltas) == (1, 2)
        assert read.levels["ts_server"].drop_duplicates().tolist() == [T0 + 2_000_000, T0 + 9_000_000]
    finally:
        redis_client.delete(key)
