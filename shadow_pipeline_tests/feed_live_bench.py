"""The live feed's throughput on the local venue server: ticks/s for the Binance USD-M BTC recording, for
``make bench`` (the lead wires it in). The server and the feed run in processes of their own, as they would in
production, so that neither waits for the other's share of one interpreter; the rate is read from the entries'
Redis ids (first to last), so start-up and the recording's parse are not in it.

    PYTHONPATH=. python shadow_pipeline_tests/feed_live_bench.py   # prints one JSON line
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from typing import Any

import redis

from shadow_pipeline.redis_io.server import start_server
from shadow_pipeline.redis_io.streams import read_entries
from shadow_pipeline_tests.live_feed_helpers import WAIT_SECONDS, recording, wait_until

VENUE, SYMBOL, STREAM = "binance-usdm", "BTCUSDT", "bench:feed:ticks"


def _serve() -> None:
    """The venue server, in this (child) process: prints its URLs, serves until the recording is played."""
    from shadow_pipeline.feed.venue_server import ServerThread, VenueServer, recording_frames

    frames = recording_frames(VENUE, recording(VENUE))
    with ServerThread(VenueServer(VENUE, frames)) as running:
        print(running.ws_url, running.rest_url, len(frames), flush=True)
        running.wait_done(WAIT_SECONDS * 10)
        sys.stdin.read()  # until the parent is done with it


def bench_feed_live() -> dict[str, object]:
    server = start_server()
    children: list[subprocess.Popen[Any]] = []
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        venue = subprocess.Popen(
            [sys.executable, "-m", "shadow_pipeline_tests.feed_live_bench", "--serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(venue)
        assert venue.stdout is not None
        ws_url, rest_url, _ = venue.stdout.readline().split()
        args = ["--venue", VENUE, "--symbols", SYMBOL, "--ws-url", ws_url, "--rest-url", rest_url]
        feed = subprocess.Popen(
            [sys.executable, "-m", "shadow_pipeline.cli_feed", *args, "--redis-url", server.url, "--stream", STREAM],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        children.append(feed)
        expected = 87_402  # the recording's bookTicker and trade messages, as the replay gives them
        wait_until(lambda: client.xlen(STREAM) >= expected, "every tick", timeout=WAIT_SECONDS * 5)
        feed.send_signal(signal.SIGTERM)
        feed.wait(WAIT_SECONDS)
        ids = [
            entries[0][0] for entries in (read_entries(client, STREAM, 1), read_entries(client, STREAM, 1, newest=True))
        ]
        first_ms, last_ms = (int(entry_id.split("-")[0]) for entry_id in ids)
        span_ms = max(1, last_ms - first_ms)
        ticks = int(client.xlen(STREAM))
        return {
            "bench": "feed_live",
            "venue": VENUE,
            "ticks": ticks,
            "seconds": span_ms / 1000,
            "ticks_per_s": round(ticks / span_ms * 1000),
        }
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
        server.stop()


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        _serve()
    else:
        started = time.perf_counter()
        print(json.dumps(bench_feed_live() | {"wall_seconds": round(time.perf_counter() - started, 1)}))
