"""Replaying into a real Redis: one entry per message, values exactly as recorded, faults exactly as reported."""

import gzip
import json
from collections import Counter

import pytest
import redis

from shadow_pipeline.domain.market.faults import FaultSpec
from shadow_pipeline.domain.market.ticks import parse_entries
from shadow_pipeline.feed.replay import ReplayOptions, replay
from shadow_pipeline.feed.sources import open_source
from shadow_pipeline.redis_io.streams import read_entries
from shadow_pipeline_tests.conftest import market_file


def _file_messages(path) -> list[dict]:  # type: ignore[no-untyped-def]
    """bookTicker and trade payloads in file order, read independently of the project's parser."""
    out = []
    with gzip.open(path, "rt") as handle:
        for line in handle:
            frame = json.loads(line.split(" ", 1)[1])
            stream = frame.get("stream", "")
            if stream.endswith("@bookTicker") or stream.endswith("@trade"):
                out.append(frame["data"])
    return out


def test_binance_recording_lands_one_entry_per_message_with_exact_values(
    redis_client: redis.Redis, redis_url: str, stream: str
) -> None:
    path = market_file("binance_hftbacktest/usdm/btcusdt_20240808.gz")
    messages = _file_messages(path)
    assert Counter("b" in m for m in messages) == {True: 66_089, False: 21_313}  # README's counts

    source = open_source("binance", files=[path])
    result = replay(redis.Redis.from_url(redis_url), source.chunks, ReplayOptions(stream=stream, progress=False))

    entries = read_entries(redis_client, stream)
    assert len(entries) == len(messages) == result.entries
    assert [int(f["seq"]) for _, f in entries] == list(range(1, len(messages) + 1))
    quote = {"bid": "b", "ask": "a", "bid_qty": "B", "ask_qty": "A"}
    last_quote: dict | None = None
    for (_, fields), message in zip(entries, messages, strict=True):
        assert fields["symbol"] == message["s"]
        assert int(fields["ts_server"]) == message["E"] * 1_000_000
        if "b" in message:
            assert {k: fields[k] for k in quote} == {k: message[v] for k, v in quote.items()}
            assert (fields["last_px"], fields["last_qty"], fields["last_side"]) == ("", "0", "")
            last_quote = message
        else:
            assert (fields["last_px"], fields["last_qty"]) == (message["p"], message["q"])
            assert fields["last_side"] == ("sell" if message["m"] else "buy")
            if last_quote is not None:  # a trade carries the touch of the latest quote
                assert {k: fields[k] for k in quote} == {k: last_quote[v] for k, v in quote.items()}
    assert parse_entries([f for _, f in entries]).rejects.empty


def test_spot_files_play_back_to_back(redis_client: redis.Redis, redis_url: str, stream: str) -> None:
    first = market_file("binance_hftbacktest/spot/ethusdt_20240808.gz")
    second = market_file("binance_hftbacktest/spot/ethusdt_20240809.gz")
    expected = len(_file_messages(first)) + len(_file_messages(second))
    source = open_source("binance", files=[first, second])
    replay(redis.Redis.from_url(redis_url), source.chunks, ReplayOptions(stream=stream, progress=False))
    entries = read_entries(redis_client, stream)
    assert len(entries) == expected
    assert [int(f["seq"]) for _, f in entries] == list(range(1, expected + 1))
    local = [int(f["ts_local"]) for _, f in entries]
    assert local == sorted(local)


def test_bybit_recording_gives_touch_changes_and_every_trade(
    redis_client: redis.Redis, redis_url: str, stream: str
) -> None:
    path = market_file("bybit_cryptofeed/bybit_v5_linear_20260809.ws.gz")
    trades = 0
    with gzip.open(path, "rt") as handle:
        for line in handle:
            frame = json.loads(line.split(" ", 1)[1])
            if frame.get("topic", "").startswith("publicTrade."):
                trades += len(frame["data"])
    assert trades == 56 + 23 + 165 + 83  # README's counts
    source = open_source("bybit", files=[path])
    replay(redis.Redis.from_url(redis_url), source.chunks, ReplayOptions(stream=stream, progress=False))
    batch = parse_entries([f for _, f in read_entries(redis_client, stream)])
    assert batch.rejects.empty
    assert int(batch.ticks["is_trade"].sum()) == trades
    # the linear connection's frames say so (trades' tick direction L, derivative tickers): each entry names it
    assert set(batch.ticks["symbol"]) == {f"{s}.bybit-linear" for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT", "DOGEUSDT")}
    for _, group in batch.ticks.groupby("symbol"):
        assert group["seq"].tolist() == list(range(1, len(group) + 1))


def _independent_counts(entries: list[tuple[str, dict[str, str]]]) -> dict[str, object]:
    """Drops, duplicates, late arrivals and junk counted straight from the stream, without project code."""
    seen: dict[str, set[int]] = {}
    highest: dict[str, int] = {}
    dups = late = junk = 0
    for _, fields in entries:
        try:
            valid = (
                set(fields) >= {"ask", "bid"}
                and float(fields["bid"]) > 0
                and float(fields["bid"]) < float(fields["ask"])
                and fields["last_side"] in ("", "buy", "sell")
            )
        except ValueError:
            valid = False
        if not valid:
            junk += 1
            continue
        symbol, seq = fields["symbol"], int(fields["seq"])
        if seq in seen.setdefault(symbol, set()):
            dups += 1
        elif seq < highest.get(symbol, 0):
            late += 1
        seen[symbol].add(seq)
        highest[symbol] = max(highest.get(symbol, 0), seq)
    return {
        "duplicated": dups,
        "reordered": late,
        "malformed": junk,
        "missing": {s: highest[s] - len(seen[s]) for s in seen},
    }


def test_injected_faults_are_reported_exactly(redis_client: redis.Redis, redis_url: str, stream: str) -> None:
    spec = FaultSpec(drop=0.01, duplicate=0.02, reorder=0.03, jitter_ms=25, malformed=0.005, seed=11)
    source = open_source("synthetic", symbols=["BTCUSDT", "ETHUSDT"], seconds=120, seed=3)
    result = replay(
        redis.Redis.from_url(redis_url),
        source.chunks,
        ReplayOptions(stream=stream, faults=spec, progress=False),
    )
    report = result.faults
    assert report.dropped > 0 and report.duplicated > 0 and report.reordered > 0 and report.malformed > 0
    found = _independent_counts(read_entries(redis_client, stream))
    assert found["duplicated"] == report.duplicated
    assert found["reordered"] == report.reordered
    assert found["malformed"] == report.malformed
    # The last seq of a symbol could itself be dropped, which no reader can see; allow exactly that.
    missing = found["missing"]
    assert isinstance(missing, dict)
    for symbol, dropped in report.dropped_by_symbol.items():
        assert dropped - missing[symbol] in (0, 1)
    assert sum(report.malformed_by_defect.values()) == report.malformed
    entries_expected = sum(result.ticks_by_symbol.values()) - report.dropped + report.duplicated + report.malformed
    assert result.entries == entries_expected == redis_client.xlen(stream)


def test_same_fault_seed_same_stream(redis_client: redis.Redis, redis_url: str, stream: str) -> None:
    spec = FaultSpec(drop=0.05, duplicate=0.05, reorder=0.05, malformed=0.01, seed=5)
    client = redis.Redis.from_url(redis_url)
    for suffix in ("a", "b"):
        source = open_source("synthetic", symbols=["ETHUSDT"], seconds=20, seed=1)
        replay(client, source.chunks, ReplayOptions(stream=f"{stream}:{suffix}", faults=spec, progress=False))
    a = [f for _, f in read_entries(redis_client, f"{stream}:a")]
    b = [f for _, f in read_entries(redis_client, f"{stream}:b")]
    assert a == b


def test_pacing_follows_market_time(redis_url: str, stream: str) -> None:
    source = open_source("synthetic", symbols=["BTCUSDT"], seconds=2, seed=1)
    result = replay(
        redis.Redis.from_url(redis_url),
        source.chunks,
        ReplayOptions(stream=stream, speed=4.0, progress=False),
    )
    # Behaviour, not speed: at 4x, 2 market seconds cannot be sent in much less than half a second.
    assert result.wall_seconds >= result.market_seconds / 4 * 0.9


def test_maxlen_trims_approximately(redis_client: redis.Redis, redis_url: str, stream: str) -> None:
    source = open_source("synthetic", symbols=["BTCUSDT"], seconds=30, seed=1)
    result = replay(
        redis.Redis.from_url(redis_url),
        source.chunks,
        ReplayOptions(stream=stream, maxlen=1000, progress=False),
    )
    assert result.entries > 3000
    assert 1000 <= redis_client.xlen(stream) < 1000 + 1000  # '~' trims whole macro-nodes only


def test_unknown_symbol_and_missing_file_are_clear_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="no synthetic market for 'XYZUSDT'"):
        next(open_source("synthetic", symbols=["XYZUSDT"]).chunks)
    with pytest.raises(ValueError, match="recording not found"):
        open_source("binance", files=[tmp_path / "nope.gz"])
