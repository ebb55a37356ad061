"""The venue server: recordings and the synthetic market served through Bybit's and Binance's protocols, REST
snapshots, subscribe-time snapshots, every fault, and the command line. A tiny client of the test's own reads it."""

from __future__ import annotations

import base64
import functools
import gzip
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
import pytest
from click.testing import CliRunner
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK, InvalidStatus
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from shadow_pipeline.cli_venue_server import feed_server_command
from shadow_pipeline.domain.market import synthetic
from shadow_pipeline.feed import recordings
from shadow_pipeline.feed.venue_server import (
    FrameKind,
    FrameSource,
    ServerFaults,
    ServerThread,
    VenueServer,
    recording_frames,
    synthetic_frames,
)
from shadow_pipeline_tests.conftest import market_file

WAIT_S = 20.0  # an upper bound for anything to arrive: never reached unless the server is broken
USDM_BTC = "binance_hftbacktest/usdm/btcusdt_20240808.gz"
BYBIT_LINEAR = "bybit_cryptofeed/bybit_v5_linear_20260809.ws.gz"
Book = dict[str, dict[Decimal, Decimal]]


@functools.cache
def _synthetic(venue: str, minutes: float = 0.25, symbols: tuple[str, ...] = ("BTCUSDT",)) -> FrameSource:
    return synthetic_frames(venue, symbols, minutes, seed=1)


@functools.cache
def _recorded(venue: str, *relative: str) -> FrameSource:
    return recording_frames(venue, [market_file(name) for name in relative])


def connect(url: str, **options: Any) -> ClientConnection:
    """A client that queues whatever arrives (no flow control), so that leaving mid-replay closes at once."""
    return ws_connect(url, max_queue=None, open_timeout=WAIT_S, **options)


def _raw_client(running: ServerThread, path: str) -> socket.socket:
    """A WebSocket client that sends the handshake and reads nothing by itself, with a small receive buffer (the
    kernel's would otherwise take megabytes before the server notices that nobody reads)."""
    where = urlsplit(running.ws_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((where.hostname, where.port))
    sock.settimeout(WAIT_S)
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = f"GET {path} HTTP/1.1\r\nHost: {where.netloc}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    sock.sendall(f"{handshake}Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    return sock


def _serve(venue: str, source: FrameSource, **options: Any) -> ServerThread:
    return ServerThread(VenueServer(venue, source, **options))


def _binance_url(running: ServerThread, source: FrameSource, kinds: tuple[FrameKind, ...] = ()) -> str:
    streams = sorted({frame.topic for frame in source if not kinds or frame.kind in kinds})
    return f"{running.ws_url}/stream?streams={'/'.join(streams)}"


def _subscribe(ws: ClientConnection, topics: list[str], req_id: str = "t1") -> dict[str, Any]:
    ws.send(json.dumps({"op": "subscribe", "args": topics, "req_id": req_id}))
    return json.loads(ws.recv(WAIT_S))


def _receive(ws: ClientConnection, count: int) -> list[str]:
    return [str(ws.recv(WAIT_S)) for _ in range(count)]


def _until_closed(ws: ClientConnection) -> tuple[list[str], ConnectionClosed]:
    received = []
    while True:
        try:
            received.append(str(ws.recv(WAIT_S)))
        except ConnectionClosed as closed:
            return received, closed


def _stamped_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as file:
        return [line.rstrip("\n").partition(" ")[2] for line in file]


def _wait_for(check: Callable[[], bool]) -> None:
    """Poll a condition the server reaches on its own; the bound only stops a broken server hanging the suite."""
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, "the server never got there"
        time.sleep(0.01)


def _get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=WAIT_S) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _apply(book: Book, bids: list[list[str]], asks: list[list[str]]) -> None:
    for side, levels in (("b", bids), ("a", asks)):
        for price, size in levels:
            if Decimal(size) == 0:
                book[side].pop(Decimal(price), None)
            else:
                book[side][Decimal(price)] = Decimal(size)


def _levels(bids: list[list[str]], asks: list[list[str]]) -> Book:
    book: Book = {"b": {}, "a": {}}
    _apply(book, bids, asks)
    return book


def _top(book: Book, depth: int) -> Book:
    return {
        "b": dict(sorted(book["b"].items(), reverse=True)[:depth]),
        "a": dict(sorted(book["a"].items())[:depth]),
    }


# --- the synthetic market: needs no shared data --------------------------------------------------------------


@pytest.mark.parametrize("venue", ["binance-usdm", "binance-spot", "bybit-linear", "bybit-spot"])
def test_synthetic_frames_read_back_as_the_synthetic_ticks(tmp_path: Path, venue: str) -> None:
    """The project's readers (bookTicker/trade -> ticks; Bybit: touch change -> quote tick) get the synthetic
    ticks back: same count as the replayer, same order, prices, sizes and sides (by decimal value)."""
    symbols = ["BTCUSDT", "ETHUSDT"]
    ticks = pd.concat(synthetic.generate(symbols, 30.0, seed=4), ignore_index=True)
    source = synthetic_frames(venue, symbols, 0.5, seed=4)
    path = tmp_path / "synthetic.ws.gz"
    with gzip.open(path, "wt") as file:
        file.writelines(f"{frame.ts_local} {frame.text}\n" for frame in source)
    read = recordings.read_binance([path]) if venue.startswith("binance") else recordings.read_bybit(path)

    assert len(read) == len(ticks)
    assert read["symbol"].tolist() == ticks["symbol"].tolist()
    assert read["last_side"].tolist() == ticks["last_side"].tolist()
    quotes, trades = ticks["last_side"] == "", ticks["last_side"] != ""
    for rows, columns in ((quotes, ["bid", "ask", "bid_qty", "ask_qty"]), (trades, ["last_px", "last_qty"])):
        got = read.loc[rows, columns].map(Decimal)
        assert got.equals(ticks.loc[rows, columns].map(Decimal))


def test_synthetic_binance_depth_rebuilds_the_touch_from_the_rest_snapshot() -> None:
    """The diffs continue the REST snapshot (pu = previous u) and move the touch that bookTicker shows."""
    source = _synthetic("binance-usdm")
    [snapshot] = source.snapshots
    body = json.loads(snapshot.body)
    book, last = _levels(body["bids"], body["asks"]), body["lastUpdateId"]
    diffs = 0
    for frame in source:
        data = json.loads(frame.text)["data"]
        if frame.kind is FrameKind.BOOK_DELTA and data["u"] >= body["lastUpdateId"]:
            assert diffs == 0 or data["pu"] == last
            _apply(book, data["b"], data["a"])
            last, diffs = data["u"], diffs + 1
        elif frame.kind is FrameKind.TICKER:
            assert data["u"] == last
            assert (max(book["b"]), book["b"][max(book["b"])]) == (Decimal(data["b"]), Decimal(data["B"]))
            assert (min(book["a"]), book["a"][min(book["a"])]) == (Decimal(data["a"]), Decimal(data["A"]))
    assert diffs > 100


def test_binance_serves_every_frame_in_order_then_idles_answering_pings() -> None:
    source = _synthetic("binance-usdm")
    with _serve("binance-usdm", source) as running, connect(_binance_url(running, source)) as ws:
        assert _receive(ws, len(source)) == [frame.text for frame in source]
        assert running.wait_done(WAIT_S)
        assert ws.ping().wait(WAIT_S)
        stats = running.stats
    assert (stats.frames_sent, stats.connections, stats.done, stats.faults) == (len(source), 1, True, {})


def test_binance_serves_only_the_streams_in_the_url() -> None:
    source = _synthetic("binance-spot")
    trades = [frame.text for frame in source if frame.kind is FrameKind.TRADE]
    with _serve("binance-spot", source) as running:
        with connect(_binance_url(running, source, (FrameKind.TRADE,))) as ws:
            assert _receive(ws, len(trades)) == trades
        assert running.wait_done(WAIT_S)


def test_binance_live_subscription_requests() -> None:
    """A combined-stream connection opened without streams subscribes with SUBSCRIBE, as on the venue."""
    source = _synthetic("binance-usdm")
    trades = [frame.text for frame in source if frame.kind is FrameKind.TRADE]
    with _serve("binance-usdm", source) as running, connect(f"{running.ws_url}/stream") as ws:
        ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
        assert json.loads(ws.recv(WAIT_S)) == {"result": [], "id": 1}
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 2}))
        assert json.loads(ws.recv(WAIT_S)) == {"result": None, "id": 2}
        assert _receive(ws, len(trades)) == trades
        ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["dogeusdt@trade"], "id": 3}))
        assert json.loads(ws.recv(WAIT_S))["error"]["code"] == 2
        ws.send("{")
        assert json.loads(ws.recv(WAIT_S))["error"]["code"] == 3


@pytest.mark.parametrize("venue", ["binance-usdm", "binance-spot"])
def test_binance_sends_websocket_pings(venue: str) -> None:
    with _serve(venue, _synthetic(venue), ping_interval_s=0.05) as running, _raw_client(running, "/stream") as ws:
        received = b""
        while b"\r\n\r\n" not in received:
            received += ws.recv(4096)
        head, _, frames = received.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        while not frames:
            frames += ws.recv(4096)
        assert frames[0] == 0x89  # a ping frame


def test_binance_refuses_unknown_streams_paths_and_symbols() -> None:
    source = _synthetic("binance-usdm")
    with _serve("binance-usdm", source) as running:
        with pytest.raises(InvalidStatus) as refused:
            connect(f"{running.ws_url}/stream?streams=dogeusdt@trade")
        assert refused.value.response.status_code == 400
        assert _get(f"{running.rest_url}/fapi/v1/depth?symbol=DOGEUSDT&limit=1000") == (
            400,
            {"code": -1121, "msg": "Invalid symbol."},
        )
        assert _get(f"{running.rest_url}/api/v3/depth?symbol=BTCUSDT")[0] == 404
        for limit in ("x", "7", "5000"):  # USD-M takes 5, 10, 20, 50, 100, 500, 1000
            assert _get(f"{running.rest_url}/fapi/v1/depth?symbol=BTCUSDT&limit={limit}")[1]["code"] == -1130
        status, body = _get(f"{running.rest_url}/fapi/v1/depth?symbol=BTCUSDT&limit=5")
        assert status == 200 and len(body["bids"]) == len(body["asks"]) == 5
        assert running.stats.rest_snapshots == 1


@pytest.mark.parametrize("venue", ["bybit-linear", "bybit-spot"])
def test_bybit_acks_pongs_and_errors_have_the_venues_shapes(venue: str) -> None:
    """Shapes as the recordings and the v5 docs show them: linear acks say ret_msg "" and always echo req_id,
    spot says "subscribe" and echoes req_id when one was sent; a public ping is answered with op "ping" and
    ret_msg "pong". Spot takes at most 10 topics a request."""
    source = _synthetic(venue)
    spot = venue == "bybit-spot"
    with _serve(venue, source) as running, connect(running.ws_url) as ws:
        assert running.ws_url.endswith(f"/v5/public/{venue.removeprefix('bybit-')}")
        ws.send(json.dumps({"op": "ping"}))
        pong = json.loads(ws.recv(WAIT_S))
        assert pong == {"success": True, "ret_msg": "pong", "conn_id": pong["conn_id"], "op": "ping"} | (
            {} if spot else {"req_id": ""}
        )
        ws.send(json.dumps({"op": "ping", "req_id": "p1"}))
        assert json.loads(ws.recv(WAIT_S))["req_id"] == "p1"
        many = _subscribe(ws, [f"publicTrade.X{n}USDT" for n in range(11)], "s9")
        assert many["success"] is False and ("args size 11" in many["ret_msg"]) == spot
        bad = _subscribe(ws, ["orderbook.50.NOPEUSDT"], "s0")
        assert (bad["success"], bad["op"]) == (False, "subscribe")
        assert "orderbook.50.NOPEUSDT" in bad["ret_msg"]
        ack = _subscribe(ws, ["publicTrade.BTCUSDT"], "s1")
        assert ack == {
            "success": True,
            "ret_msg": "subscribe" if spot else "",
            "conn_id": pong["conn_id"],
            "req_id": "s1",
            "op": "subscribe",
        }
        trades = [frame.text for frame in source if frame.topic == "publicTrade.BTCUSDT"]
        assert _receive(ws, len(trades)) == trades
        ws.send("not json")
        assert json.loads(ws.recv(WAIT_S))["success"] is False


def test_bybit_resubscribe_gets_the_current_book_then_the_next_delta() -> None:
    """Paced, so that the first client's socket buffers do not take the whole replay before it leaves."""
    source = _synthetic("bybit-linear")
    topic = "orderbook.50.BTCUSDT"
    book_frames = [json.loads(frame.text) for frame in source if frame.topic == topic]
    with _serve("bybit-linear", source, speed=1.0) as running:
        with connect(running.ws_url) as first:
            _subscribe(first, [topic])
            assert [json.loads(text) for text in _receive(first, 40)] == book_frames[:40]
        with connect(running.ws_url) as second:
            assert _subscribe(second, [topic])["success"]
            snapshot, delta = (json.loads(text) for text in _receive(second, 2))
    assert (snapshot["type"], delta["type"]) == ("snapshot", "delta")
    u = snapshot["data"]["u"]
    assert delta["data"]["u"] == u + 1
    truth = _levels([], [])
    for frame in book_frames:
        if frame["data"]["u"] <= u:
            _apply(truth, frame["data"]["b"], frame["data"]["a"])
    assert _levels(snapshot["data"]["b"], snapshot["data"]["a"]) == _top(truth, 50)
    assert delta == next(frame for frame in book_frames if frame["data"]["u"] == u + 1)


# --- faults ---------------------------------------------------------------------------------------------------


def test_drop_cuts_without_a_close_frame_and_the_next_client_resumes_after_the_lost_frames() -> None:
    source = _synthetic("binance-usdm")
    faults = ServerFaults(drop_after=30, lose_frames=7)
    with _serve("binance-usdm", source, faults=faults) as running:
        with connect(_binance_url(running, source)) as ws:
            received, closed = _until_closed(ws)
        assert received == [frame.text for frame in source.frames[:30]]
        assert closed.rcvd is None  # no close frame: the connection just ended
        _wait_for(lambda: running.stats.frames_lost == 7)
        with connect(_binance_url(running, source)) as ws:
            assert _receive(ws, 3) == [frame.text for frame in source.frames[37:40]]
        stats = running.stats
    assert stats.faults == {"drop": 1, "lose_frames": 1}
    assert stats.connections == 2


def test_bybit_resubscribe_after_a_drop_gets_the_book_with_the_lost_frames_applied() -> None:
    source = _synthetic("bybit-linear")
    topic = "orderbook.50.BTCUSDT"
    with _serve("bybit-linear", source, faults=ServerFaults(drop_after=20, lose_frames=10)) as running:
        with connect(running.ws_url) as ws:
            _subscribe(ws, [topic])
            received, _ = _until_closed(ws)
        _wait_for(lambda: running.stats.frames_lost == 10)
        with connect(running.ws_url) as ws:
            _subscribe(ws, [topic])
            snapshot, delta = (json.loads(text) for text in _receive(ws, 2))
    book_at = [i for i, frame in enumerate(source) if frame.topic == topic]
    resume = book_at[19] + 1 + 10  # after the 20th frame sent, 10 frames of the source passed unsent
    played = [json.loads(source.frames[i].text) for i in book_at if i < resume]
    assert len(received) == 20 and snapshot["data"]["u"] == played[-1]["data"]["u"]
    truth = _levels([], [])
    for frame in played:
        _apply(truth, frame["data"]["b"], frame["data"]["a"])
    assert _levels(snapshot["data"]["b"], snapshot["data"]["a"]) == truth
    assert delta == json.loads(source.frames[next(i for i in book_at if i >= resume)].text)


def test_stall_sends_nothing_but_answers_pings_until_a_client_reconnects() -> None:
    source = _synthetic("binance-usdm")
    faults = ServerFaults(stall_after=25, stall_seconds=3600.0)
    with _serve("binance-usdm", source, faults=faults) as running, connect(_binance_url(running, source)) as stalled:
        assert _receive(stalled, 25) == [frame.text for frame in source.frames[:25]]
        _wait_for(lambda: running.stats.faults.get("stall") == 1)
        assert stalled.ping().wait(WAIT_S)
        assert running.stats.frames_sent == 25
        with connect(_binance_url(running, source)) as fresh:
            assert _receive(fresh, 2) == [frame.text for frame in source.frames[25:27]]
        assert _receive(stalled, 1) == [source.frames[25].text]


def test_binance_gap_skips_one_diff_so_pu_breaks_once() -> None:
    source = _synthetic("binance-usdm")
    with _serve("binance-usdm", source, faults=ServerFaults(gap_at=5)) as running:
        diffs = sum(frame.kind is FrameKind.BOOK_DELTA for frame in source)
        with connect(_binance_url(running, source, (FrameKind.BOOK_DELTA,))) as ws:
            data = [json.loads(text)["data"] for text in _receive(ws, diffs - 1)]
        assert running.stats.faults == {"gap": 1}
    breaks = [i for i in range(1, len(data)) if data[i]["pu"] != data[i - 1]["u"]]
    assert breaks == [5]


def test_bybit_gap_and_restart() -> None:
    """A gap: u jumps by 2 once. A restart: the whole current book as a delta with u = 1, then u = 2, 3, ..."""
    source = _synthetic("bybit-linear")
    topic = "orderbook.50.BTCUSDT"
    recorded = [json.loads(frame.text) for frame in source if frame.topic == topic]
    faults = ServerFaults(gap_at=3, restart_at=10)
    with _serve("bybit-linear", source, faults=faults) as running, connect(running.ws_url) as ws:
        _subscribe(ws, [topic])
        served = [json.loads(text) for text in _receive(ws, 20)]
        assert running.stats.faults == {"gap": 1, "restart": 1}
    u = [frame["data"]["u"] for frame in served]
    assert u[:4] == [recorded[i]["data"]["u"] for i in (0, 1, 2, 3)]
    assert u[4] == u[3] + 2  # delta 3 (frame 4 of the topic) was skipped
    assert u[10:] == list(range(1, 11))  # delta 10 is the restart, then numbered on
    truth = _levels([], [])
    for frame in recorded[:12]:  # the snapshot and deltas 0..10, the skipped one included
        _apply(truth, frame["data"]["b"], frame["data"]["a"])
    restart = served[10]
    assert restart["type"] == "delta"
    assert _levels(restart["data"]["b"], restart["data"]["a"]) == truth
    assert served[11]["data"]["b"] == recorded[12]["data"]["b"]


def test_malformed_replaces_one_frame_with_text_that_is_not_json() -> None:
    source = _synthetic("binance-usdm")
    with _serve("binance-usdm", source, faults=ServerFaults(malformed_at=4)) as running:
        with connect(_binance_url(running, source)) as ws:
            received = _receive(ws, 10)
        assert running.stats.faults == {"malformed": 1}
    for index, text in enumerate(received):
        if index == 4:
            with pytest.raises(ValueError):
                json.loads(text)
        else:
            assert text == source.frames[index].text


def test_a_client_that_stops_reading_is_closed_as_a_slow_consumer() -> None:
    """The close frame (1008) comes after the data the client left unread."""
    source = _synthetic("binance-usdm", minutes=1.0)
    reason = b"slow consumer"
    close_frame = b"\x88" + bytes([2 + len(reason)]) + (1008).to_bytes(2, "big") + reason
    with _serve("binance-usdm", source, faults=ServerFaults(slow_reader_seconds=0.3)) as running:
        with _raw_client(running, _binance_url(running, source).removeprefix(running.ws_url)) as silent:
            _wait_for(lambda: running.stats.faults.get("slow_reader") == 1)
            received = bytearray()
            while not received.endswith(close_frame) and (chunk := silent.recv(1 << 20)):
                received += chunk
        assert not running.stats.done
    assert received.endswith(close_frame)


def test_connections_close_normally_at_the_maximum_age() -> None:
    source = _synthetic("binance-usdm")
    faults = ServerFaults(max_connection_seconds=0.3)
    with _serve("binance-usdm", source, speed=1.0, faults=faults) as running:
        with connect(_binance_url(running, source)) as ws:
            _, closed = _until_closed(ws)
        assert isinstance(closed, ConnectionClosedOK) and closed.rcvd is not None
        assert closed.rcvd.code == 1000
        assert running.stats.faults == {"max_connection_age": 1}


def test_bad_faults_and_options_are_refused() -> None:
    source = _synthetic("binance-usdm")
    for make in (
        lambda: ServerFaults(stall_seconds=float("nan")),
        lambda: ServerFaults(gap_at=-1),
        lambda: ServerFaults(drop_after=0),
        lambda: VenueServer("binance-usdm", source, speed=-1.0),
        lambda: VenueServer("binance-usdm", source, ping_interval_s=float("nan")),
        lambda: VenueServer("binance-usdm", source, faults=ServerFaults(restart_at=1)),
        lambda: VenueServer("bybit-linear", source),
        lambda: VenueServer("kraken", source),
    ):
        with pytest.raises(ValueError):
            make()


# --- recordings (shared data) ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("venue", "files", "topics"),
    [
        ("bybit-linear", (BYBIT_LINEAR,), ["orderbook.200.SOLUSDT", "publicTrade.SOLUSDT", "tickers.SOLUSDT"]),
        ("bybit-spot", ("bybit_cryptofeed/bybit_v5_spot_20260809.ws.gz",), ["orderbook.200.ETHUSDT"]),
        ("binance-usdm", (USDM_BTC,), ["btcusdt@trade"]),
        (
            "binance-spot",
            ("binance_hftbacktest/spot/ethusdt_20240808.gz", "binance_hftbacktest/spot/ethusdt_20240809.gz"),
            ["ethusdt@depth@100ms"],
        ),
    ],
)
def test_a_recording_is_served_completely_and_in_order(venue: str, files: tuple[str, ...], topics: list[str]) -> None:
    source = _recorded(venue, *files)
    key = "topic" if venue.startswith("bybit") else "stream"
    expected = [
        line
        for name in files
        for line in _stamped_lines(market_file(name))
        if line.startswith("{") and json.loads(line).get(key) in topics
    ]
    with _serve(venue, source) as running:
        if venue.startswith("bybit"):
            with connect(running.ws_url) as ws:
                assert _subscribe(ws, topics)["success"]
                assert _receive(ws, len(expected)) == expected
        else:
            with connect(f"{running.ws_url}/stream?streams={'/'.join(topics)}") as ws:
                assert _receive(ws, len(expected)) == expected
        assert running.wait_done(WAIT_S)
    if venue == "binance-spot":  # the 0809 file continues the 0808 one: no gap at the file boundary
        data = [json.loads(text)["data"] for text in expected]
        assert all(data[i]["U"] == data[i - 1]["u"] + 1 for i in range(1, len(data)))


def test_binance_rest_is_the_recorded_snapshot_then_the_servers_book() -> None:
    """Before the replay reaches the recorded snapshot line: that snapshot as recorded. After: the book rebuilt from
    it and the diffs played since, exactly as a client following Binance's procedure would rebuild it."""
    source = _recorded("binance-usdm", USDM_BTC)
    lines = _stamped_lines(market_file(USDM_BTC))
    recorded = next(line for line in lines if line.startswith('{"lastUpdateId"'))
    with _serve("binance-usdm", source) as running:
        depth = f"{running.rest_url}/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
        assert _get(depth) == (200, json.loads(recorded))
        with connect(_binance_url(running, source, (FrameKind.BOOK_DELTA,))) as ws:
            _receive(ws, 300)
        status, served = _get(depth)
    snapshot = json.loads(recorded)
    assert status == 200 and served["lastUpdateId"] > snapshot["lastUpdateId"]
    truth, last = _levels(snapshot["bids"], snapshot["asks"]), None
    for line in lines:
        if line.startswith('{"stream":"btcusdt@depth'):
            data = json.loads(line)["data"]
            if snapshot["lastUpdateId"] <= data["u"] <= served["lastUpdateId"]:
                _apply(truth, data["b"], data["a"])
                last = data
    assert last is not None and (served["E"], served["T"]) == (last["E"], last["T"])
    assert _levels(served["bids"], served["asks"]) == _top(truth, 1000)


def test_bybit_recording_resubscribe_snapshot_equals_the_recorded_book() -> None:
    source = _recorded("bybit-linear", BYBIT_LINEAR)
    topic = "orderbook.200.BTCUSDT"
    recorded = [json.loads(line) for line in _stamped_lines(market_file(BYBIT_LINEAR)) if f'"topic":"{topic}"' in line]
    with _serve("bybit-linear", source, speed=4.0) as running:  # paced: see the synthetic resubscribe test
        with connect(running.ws_url) as first:
            _subscribe(first, [topic])
            _receive(first, 30)
        with connect(running.ws_url) as second:
            _subscribe(second, [topic])
            snapshot, delta = (json.loads(text) for text in _receive(second, 2))
    u = snapshot["data"]["u"]
    assert (snapshot["type"], delta["data"]["u"]) == ("snapshot", u + 1)
    truth = _levels([], [])
    for frame in recorded:
        if frame["type"] == "snapshot":
            truth = _levels(frame["data"]["b"], frame["data"]["a"])
        elif frame["data"]["u"] <= u:
            _apply(truth, frame["data"]["b"], frame["data"]["a"])
    assert _levels(snapshot["data"]["b"], snapshot["data"]["a"]) == _top(truth, 200)


# --- the command line -----------------------------------------------------------------------------------------


def _lines(text: str) -> Callable[[Path], str]:
    def write(folder: Path) -> str:
        path = folder / "hostile.gz"
        with gzip.open(path, "wt") as file:
            file.write(text)
        return str(path)

    return write


_HOSTILE = {
    "not_a_recording": _lines("hello\n"),
    "depth_without_u": _lines('1723161255088169167 {"stream":"btcusdt@depth@0ms","data":{"U":1}}\n'),
    "bybit_bad_topic": _lines('1786310819720003000 {"topic":"orderbook.x.BTCUSDT","type":"snapshot","data":{}}\n'),
    "bybit_bad_level": _lines(
        '1786310819720003000 {"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1,'
        '"data":{"u":2,"b":[["1"]],"a":[]}}\n'
    ),
    "not_json": _lines("1786310819720003000 {nope\n"),
}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--venue", "kraken", "--synthetic-minutes", "1"], "'--venue'"),
        (["--venue", "binance-usdm"], "one of the two"),
        (["--venue", "binance-usdm", "--recording", "{tmp}/missing.gz"], "recording not found"),
        (["--venue", "binance-usdm", "--recording", "{tmp}"], "a folder"),
        (["--venue", "binance-usdm", "--recording", "{not_a_recording}"], "expected '<local timestamp> <frame>'"),
        (["--venue", "binance-usdm", "--recording", "{depth_without_u}"], "line 1: missing field 'u'"),
        (["--venue", "bybit-linear", "--recording", "{bybit_bad_topic}"], "is not orderbook.<depth>.<symbol>"),
        (["--venue", "bybit-linear", "--recording", "{bybit_bad_level}"], "line 1: "),
        (["--venue", "bybit-spot", "--recording", "{not_json}"], "line 1: not JSON"),
        (["--venue", "binance-usdm", "--synthetic-minutes", "nan"], "not a finite number"),
        (["--venue", "binance-usdm", "--synthetic-minutes", "0"], "--synthetic-minutes"),
        (["--venue", "binance-usdm", "--synthetic-minutes", "1", "--speed", "-1"], "--speed"),
        (["--venue", "binance-usdm", "--synthetic-minutes", "1", "--speed", "inf"], "not a finite number"),
        (["--venue", "binance-usdm", "--synthetic-minutes", "1", "--symbols", "NOPEUSDT"], "no synthetic market"),
        (["--venue", "binance-usdm", "--synthetic-minutes", "1", "--restart-at", "3"], "Bybit fault"),
        (["--venue", "binance-usdm", "--synthetic-minutes", "1", "--drop-after", "0"], "--drop-after"),
        (["--venue", "binance-usdm", "--synthetic-minutes", "1", "--port", "70000"], "--port"),
    ],
)
def test_bad_options_are_one_error_line(tmp_path: Path, args: list[str], says: str) -> None:
    places = {"tmp": str(tmp_path)}
    places |= {name: write(tmp_path) for name, write in _HOSTILE.items() if f"{{{name}}}" in " ".join(args)}
    result = CliRunner().invoke(feed_server_command, [arg.format(**places) for arg in args])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.stderr
    assert "Traceback" not in result.output


def test_a_port_in_use_is_one_error_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        args = ["--venue", "bybit-spot", "--synthetic-minutes", "0.1", "--port", port]
        result = CliRunner().invoke(feed_server_command, args)
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert len(result.stderr.splitlines()) == 1


def test_the_command_serves_until_sigterm_and_exits_0() -> None:
    command = "from shadow_pipeline.cli_venue_server import feed_server_command; feed_server_command()"
    args = ["--venue", "bybit-linear", "--synthetic-minutes", "0.1", "--json"]
    with subprocess.Popen(
        [sys.executable, "-c", command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as process:
        assert process.stdout is not None
        urls = json.loads(process.stdout.readline())
        with connect(urls["ws_url"]) as ws:
            assert _subscribe(ws, ["publicTrade.BTCUSDT"])["success"]
            assert json.loads(ws.recv(WAIT_S))["topic"] == "publicTrade.BTCUSDT"
        process.terminate()
        assert process.wait(WAIT_S) == 0
        assert process.stderr is not None and process.stderr.read() == ""
