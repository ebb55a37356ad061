"""Soak: real consumer processes SIGKILLed at random moments, Redis (AOF on) restarted mid-ingest, then a drain.

``make soak`` runs three scenarios of ``--ticks`` (default 1,000,000) generated ticks each: one consumer with
the default name killed ``--kills`` (20) times, each kill followed at once by a restart; three consumers (slots
0-2) with kills; two consumers with kills and three Redis restarts (SIGTERM and SIGKILL alternately, AOF with
fsync always). Each ends with every consumer SIGKILLed and an immediate ``ingest --drain`` under the default
name, and requires: exit 0, 0 ticks lost and 0 duplicated by (symbol, seq) in the landing zone, nothing pending.

Two more scenarios have a quiet tail, where the stream's last ticks wait in the reorder buffer with no newer tick
to release them (``run_quiet``): a consumer serving a stream that stays quiet for ``--quiet-seconds`` (20) with
short claim settings (``--claim-idle-ms 3000 --max-deliveries 3``), and more kills than ``--max-deliveries``
during the quiet tail. They require, besides the above, 0 dead letters and 0 rows landed twice.
``--short`` is the version the test suite runs (tens of seconds). Figures are printed, one JSON line per scenario.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import redis

from shadow_pipeline.redis_io.server import RedisServer, start_server
from shadow_pipeline.redis_io.streams import to_field_rows
from shadow_pipeline.resources import LandingResource
from shadow_pipeline_tests.ingest_helpers import landed

STREAM = "lob:ticks"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
START_MS = 1_723_161_600_000  # 2024-08-09 00:00 UTC
_RETRY = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


@dataclass
class Figures:
    scenario: str
    ticks: int
    consumers: int
    kills: int
    redis_restarts: int
    landed: int = 0
    lost: int = 0
    duplicated: int = 0
    pending: int = 0
    consumers_left: int = 0  # in the group after the drain
    drain_exit: int = -1
    dead_letters: int = 0  # every tick of the soak is valid: any dead letter is a valid tick lost to it
    rows_landed_twice: int = 0  # landing-zone rows beyond one per entry (a reader dedups them; a crash may cause them)
    exact_rows: bool = False  # no crash between landing and XACK is possible: rows landed twice are a defect
    drain_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            self.drain_exit == 0
            and self.lost == 0
            and self.duplicated == 0
            and self.pending == 0
            and self.dead_letters == 0
            and not (self.exact_rows and self.rows_landed_twice)
        )


def _frame(start: int, count: int) -> pd.DataFrame:
    """Ticks ``start .. start+count-1``, alternating symbols, 1 ms apart; seq per symbol from 1."""
    n = np.arange(start, start + count)
    ts = (START_MS + n) * 1_000_000
    return pd.DataFrame(
        {
            "symbol": np.array(SYMBOLS, dtype=object)[n % 2],
            "seq": n // 2 + 1,
            "ts_server": ts,
            "ts_local": ts + 2_000_000,
            "bid": 60_000.0 + (n % 100) / 10,
            "ask": 60_000.1 + (n % 100) / 10,
            "bid_qty": 1.0,
            "ask_qty": 2.0,
            "last_px": "",
            "last_qty": 0.0,
            "last_side": "",
        }
    )


def _feed(url: str, total: int, seconds: float, done: threading.Event) -> None:
    """XADD ``total`` ticks over about ``seconds``, with explicit ids (``<START_MS + n>-1``): after a lost
    connection the feed resumes after the stream's last id, so no tick is written twice or skipped."""
    client = redis.Redis.from_url(url, socket_timeout=10)
    chunk = 5_000
    started = time.monotonic()
    position = 0
    while position < total:
        try:
            last = client.xrevrange(STREAM, count=1)
            if last:
                position = int(str(last[0][0], "ascii").split("-")[0]) - START_MS + 1  # type: ignore[arg-type]
            if position >= total:
                break
            count = min(chunk, total - position)
            pipe = client.pipeline(transaction=False)
            for offset, row in enumerate(to_field_rows(_frame(position, count))):
                pipe.execute_command("XADD", STREAM, f"{START_MS + position + offset}-1", *row)
            pipe.execute(raise_on_error=False)  # an id already written (a retried chunk) is refused: fine
            position += count
            ahead = started + seconds * position / total - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        except _RETRY:
            time.sleep(0.2)
    done.set()


def _consumer(url: str, landing: Path, slot: int, log: Path, extra: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "shadow_pipeline.cli", "ingest", "--stream", STREAM, "--landing", str(landing)]
    command += ["--slot", str(slot), "--block-ms", "200", "--dead-after-ms", "3000", *extra]
    with log.open("ab") as out:
        return subprocess.Popen(command, env={**os.environ, "REDIS_URL": url}, stdout=out, stderr=out)


def _restart_redis(server: RedisServer, hard: bool) -> None:
    if hard:
        server.process.kill()
        server.process.wait()
    server.restart(keep_data=True)  # SIGTERM when still running (an AOF rewrite-free clean stop), then start


def run(
    scenario: str, ticks: int, consumers: int, kills: int, redis_restarts: int, seed: int = 7, gap: float = 1.0
) -> Figures:
    """One scenario; ``gap``: mean seconds between kills (uniform 0.2 .. 2 gap - 0.2)."""
    rng = random.Random(seed)
    figures = Figures(scenario, ticks, consumers, kills, redis_restarts)
    started = time.monotonic()
    server = start_server(["--appendonly", "yes", "--appendfsync", "always"])
    work = Path(tempfile.mkdtemp(prefix="shadow-soak-"))
    landing, log = work / "landing", work / "consumers.log"
    try:
        url = server.url
        fed = threading.Event()
        feeder = threading.Thread(target=_feed, args=(url, ticks, kills * gap, fed), daemon=True)
        feeder.start()
        procs = {slot: _consumer(url, landing, slot, log) for slot in range(consumers)}
        restart_at = set(rng.sample(range(1, kills), min(redis_restarts, max(kills - 1, 0)))) if kills > 1 else set()
        restarts = 0
        for kill in range(kills):
            time.sleep(rng.uniform(0.2, 2 * gap - 0.2))
            slot = rng.randrange(consumers)
            procs[slot].send_signal(signal.SIGKILL)
            procs[slot].wait()
            procs[slot] = _consumer(url, landing, slot, log)  # at once, under the same default name
            if kill in restart_at:
                _restart_redis(server, hard=restarts % 2 == 1)
                restarts += 1
        while restarts < redis_restarts:  # fewer kills than restarts asked for
            _restart_redis(server, hard=restarts % 2 == 1)
            restarts += 1
        fed.wait(timeout=600)
        for proc in procs.values():  # the end: every consumer dies, then an immediate drain
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        _drain_and_count(url, landing, ticks, figures)
    finally:
        server.stop()
    figures.seconds = round(time.monotonic() - started, 1)
    return figures


def _drain_and_count(url: str, landing: Path, ticks: int, figures: Figures, extra: tuple[str, ...] = ()) -> None:
    """An immediate ``ingest --drain`` under the default name, then what the landing zone and Redis hold."""
    drain_started = time.monotonic()
    command = [sys.executable, "-m", "shadow_pipeline.cli", "ingest", "--drain", "--stream", STREAM]
    command += ["--landing", str(landing), "--dead-after-ms", "3000", *extra]
    drain = subprocess.run(command, env={**os.environ, "REDIS_URL": url}, capture_output=True, text=True, timeout=900)
    figures.drain_exit = drain.returncode
    figures.drain_seconds = round(time.monotonic() - drain_started, 1)
    if drain.returncode != 0:
        sys.stderr.write(drain.stderr[-3000:])
    client = redis.Redis.from_url(url, decode_responses=True)
    figures.pending = int(client.xpending(STREAM, "shadow")["pending"])
    figures.consumers_left = len(client.xinfo_consumers(STREAM, "shadow"))
    figures.dead_letters = int(client.xlen(f"{STREAM}:dlq"))
    rows = landed(LandingResource(base_path=str(landing)).store(STREAM))
    figures.landed = len(rows)
    figures.rows_landed_twice = sum(pq.read_metadata(p).num_rows for p in landing.rglob("*.parquet")) - len(rows)
    expected = _frame(0, ticks)[["symbol", "seq"]]
    got = rows[["symbol", "seq"]] if len(rows) else expected.iloc[0:0]
    figures.duplicated = int(got.duplicated().sum())
    keys = pd.MultiIndex.from_frame(expected)
    figures.lost = int((~keys.isin(pd.MultiIndex.from_frame(got.astype({"seq": "int64"})))).sum())


def _pending(url: str) -> int:
    client = redis.Redis.from_url(url)
    try:
        return int(client.xpending(STREAM, "shadow")["pending"]) if client.exists(STREAM) else -1
    except redis.exceptions.ResponseError:  # no group yet
        return -1


def _undelivered(url: str) -> int:
    """Entries the group has not delivered yet (the test's own count: nothing writes meanwhile)."""
    client = redis.Redis.from_url(url)
    last = next(g for g in client.xinfo_groups(STREAM) if g["name"] == b"shadow")["last-delivered-id"]
    return len(client.xrange(STREAM, b"(" + last, "+") or [])


def _deliveries(url: str) -> int:
    """How often the oldest pending entry was delivered (Redis's count, which re-reads raise)."""
    rows = redis.Redis.from_url(url).xpending_range(STREAM, "shadow", "-", "+", 1)
    return int(rows[0]["times_delivered"]) if rows else 0


def run_quiet(
    scenario: str, ticks: int, kills: int, quiet_seconds: float, claim_idle_ms: int, max_deliveries: int
) -> Figures:
    """One consumer lands ``ticks`` fed at once; the stream then stays quiet, its last ticks (the newest 40 ms)
    waiting in the reorder buffer. Meanwhile it serves for ``quiet_seconds`` with claims of entries idle
    ``claim_idle_ms``, and is SIGKILLed and restarted ``kills`` times; then killed, and an immediate drain."""
    figures = Figures(scenario, ticks, consumers=1, kills=kills, redis_restarts=0, exact_rows=True)
    started = time.monotonic()
    server = start_server()
    work = Path(tempfile.mkdtemp(prefix="shadow-soak-"))
    landing, log = work / "landing", work / "consumers.log"
    settings = ("--claim-idle-ms", str(claim_idle_ms), "--max-deliveries", str(max_deliveries))
    try:
        url = server.url
        consumer = _consumer(url, landing, 0, log, settings)
        fed = threading.Event()
        _feed(url, ticks, 0.0, fed)
        deadline = time.monotonic() + 120
        while not (_pending(url) > 0 and _undelivered(url) == 0 and _pending(url) <= 200):  # only the quiet tail left
            if time.monotonic() > deadline:
                raise RuntimeError(f"{scenario}: the consumer did not land the stream within 120 s (see {log})")
            time.sleep(0.1)
        time.sleep(quiet_seconds)
        for _ in range(kills):
            consumer.send_signal(signal.SIGKILL)
            consumer.wait()
            before = _deliveries(url)
            consumer = _consumer(url, landing, 0, log, settings)
            while _deliveries(url) <= before:  # it re-read the tail: the next kill is one while it holds it
                if time.monotonic() > deadline + 300:
                    raise RuntimeError(f"{scenario}: a restarted consumer never re-read its pending tail (see {log})")
                time.sleep(0.05)
        consumer.send_signal(signal.SIGKILL)
        consumer.wait()
        _drain_and_count(url, landing, ticks, figures, ("--max-deliveries", str(max_deliveries)))
    finally:
        server.stop()
    figures.seconds = round(time.monotonic() - started, 1)
    return figures


QUIET_SCENARIOS = {
    "quiet-stream": {"kills": 0},
    "quiet-tail-kills": {"kills": 6},  # more than max_deliveries (3)
}

SCENARIOS = {
    "one-consumer-kills": {"consumers": 1, "redis_restarts": 0},
    "three-consumers-kills": {"consumers": 3, "redis_restarts": 0},
    "two-consumers-redis-restarts": {"consumers": 2, "redis_restarts": 3},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--short", action="store_true", help="60,000 ticks, 4 kills each (the test suite's)")
    parser.add_argument("--quiet-seconds", type=float, default=20.0, help="how long the quiet scenarios stay quiet")
    parser.add_argument("--scenario", choices=sorted({*SCENARIOS, *QUIET_SCENARIOS}), action="append")
    args = parser.parse_args()
    ticks, kills, gap = (60_000, 4, 0.8) if args.short else (args.ticks, args.kills, 1.5)
    quiet = 8.0 if args.short else args.quiet_seconds
    failed = False
    for name in args.scenario or [*SCENARIOS, *QUIET_SCENARIOS]:
        if name in QUIET_SCENARIOS:
            figures = run_quiet(
                name, 2_000, quiet_seconds=quiet, claim_idle_ms=3000, max_deliveries=3, **QUIET_SCENARIOS[name]
            )
        else:
            figures = run(name, ticks, kills=kills, gap=gap, **SCENARIOS[name])
        print(json.dumps({**asdict(figures), "ok": figures.ok}), flush=True)
        failed |= not figures.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
