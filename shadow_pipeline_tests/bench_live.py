"""`make bench`, live rows: the WebSocket clients on one loopback server, the feed against the replayer, and the
live shadow's delay from a window's close to its KPIs in Redis.

The clients row is why the feed uses ``websockets``: each client receives the same recorded frames from one server
in another process and parses each (``json.loads``), the feed's per-frame work before its own.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from multiprocessing.queues import Queue

import aiohttp
import picows
import redis
import websockets
from websockets.asyncio.server import ServerConnection, serve

from shadow_pipeline_tests.conftest import MARKET_DATA

CLIENT_FRAMES = 60_000
CLIENT_ROUNDS = 3


def _frames() -> list[str]:
    """Combined-stream frames of the USD-M BTCUSDT recording, else synthetic bookTicker-shaped frames."""
    path = MARKET_DATA / "binance_hftbacktest/usdm/btcusdt_20240808.gz"
    if not path.exists():
        return [
            json.dumps({"stream": "btcusdt@bookTicker", "data": {"u": n, "b": "60000.10", "a": "60000.20"}})
            for n in range(CLIENT_FRAMES)
        ]
    frames: list[str] = []
    with gzip.open(path, "rt") as lines:
        for line in lines:
            text = line.split(" ", 1)[1].rstrip("\n")
            if text.startswith('{"stream"'):
                frames.append(text)
            if len(frames) == CLIENT_FRAMES:
                break
    return frames


def _serve(frames: list[str], port: Queue) -> None:
    async def send_all(connection: ServerConnection) -> None:
        await connection.recv()
        for frame in frames:
            await connection.send(frame)
        await connection.close()

    async def run() -> None:
        async with serve(send_all, "127.0.0.1", 0, max_size=None, compression=None) as server:
            port.put(server.sockets[0].getsockname()[1])
            await asyncio.Future()

    asyncio.run(run())


async def _with_websockets(url: str) -> int:
    received = 0
    async with websockets.connect(url, max_size=None, compression=None) as connection:
        await connection.send("go")
        async for message in connection:
            json.loads(message)
            received += 1
    return received


async def _with_aiohttp(url: str) -> int:
    received = 0
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as connection:
        await connection.send_str("go")
        async for message in connection:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            json.loads(message.data)
            received += 1
    return received


async def _with_picows(url: str) -> int:
    finished: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Listener(picows.WSListener):
        received = 0

        def on_ws_connected(self, transport: picows.WSTransport) -> None:
            transport.send(picows.WSMsgType.TEXT, b"go")

        def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
            if frame.msg_type == picows.WSMsgType.TEXT:
                json.loads(frame.get_payload_as_ascii_text())
                self.received += 1
            elif frame.msg_type == picows.WSMsgType.CLOSE:
                transport.disconnect()

        def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
            if not finished.done():
                finished.set_result(self.received)

    await picows.ws_connect(Listener, url)
    return await finished


def bench_ws_clients() -> list[dict[str, object]]:
    """Frames/s each client receives and parses, best of ``CLIENT_ROUNDS`` interleaved rounds; ratio to websockets."""
    frames = _frames()
    ports: Queue = multiprocessing.Queue()
    server = multiprocessing.Process(target=_serve, args=(frames, ports), daemon=True)
    server.start()
    try:
        url = f"ws://127.0.0.1:{ports.get(timeout=30)}"
        clients: dict[str, Callable[[str], Awaitable[int]]] = {
            "websockets": _with_websockets,
            "aiohttp": _with_aiohttp,
            "picows": _with_picows,
        }
        best: dict[str, float] = {}
        for _ in range(CLIENT_ROUNDS):
            for name, client in clients.items():
                started = time.perf_counter()
                received: int = asyncio.run(client(url))  # type: ignore[arg-type]
                rate = received / (time.perf_counter() - started)
                assert received == len(frames), (name, received, len(frames))
                best[name] = max(best.get(name, 0.0), rate)
    finally:
        server.terminate()
    return [
        {
            "benchmark": f"WebSocket client: {name}",
            "input": f"{len(frames)} frames from a websockets server in another process, json.loads each",
            "baseline": "websockets (the feed's client)",
            "baseline_per_s": round(best["websockets"]),
            "ours_per_s": round(rate),
            "ratio": round(rate / best["websockets"], 3),
        }
        for name, rate in best.items()
    ]


def bench_feed(replay_per_s: object) -> dict[str, object]:
    """The feed's ticks/s from the local venue server (the USD-M BTC recording) beside the replayer's ticks/s on
    the same recording, measured earlier in the same run."""
    from shadow_pipeline_tests.feed_live_bench import bench_feed_live

    row: dict[str, object] = {
        "benchmark": "feed: local venue server -> WebSocket -> book -> XADD",
        "baseline": "the replayer (replay -> XADD) on the same recording, this run",
        "baseline_per_s": replay_per_s,
    }
    if not (MARKET_DATA / "binance_hftbacktest/usdm/btcusdt_20240808.gz").exists():
        return {**row, "input": f"skipped: no shared recordings under {MARKET_DATA}"}
    measured = bench_feed_live()
    ours = int(measured["ticks_per_s"])  # type: ignore[call-overload]
    return {
        **row,
        "input": f"btcusdt_20240808.gz, {measured['ticks']} ticks, server and feed in processes of their own",
        "ours_per_s": ours,
        "ratio": round(ours / float(replay_per_s), 3) if isinstance(replay_per_s, int | float) else "",
    }


def bench_live_delay(client: redis.Redis) -> list[dict[str, object]]:
    """The live shadow's delay from a window's close to its record in Redis, at the replayed rate and 10x it."""
    from shadow_pipeline_tests.live_helpers import live_delay

    rows = []
    for multiplier in (1.0, 10.0):
        median_ms, p99_ms, windows = live_delay(client, multiplier)
        rows.append(
            {
                "benchmark": f"live shadow: window close -> KPI in Redis, replay at {multiplier:g}x",
                "input": f"synthetic BTCUSDT+ETHUSDT, 10 s windows, {windows} windows",
                "baseline": "the 1 s budget (ms)",
                "baseline_per_s": 1000,
                "ours_per_s": f"median {median_ms:.0f} ms, p99 {p99_ms:.0f} ms",
                "ratio": round(p99_ms / 1000, 3),
            }
        )
    return rows
