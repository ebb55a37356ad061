"""Running the live shadow in tests and the bench: over a replayed stream, in-process, until the stream is idle."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import numpy as np
import redis

from shadow_pipeline.defs.shadow.assets import ShadowConfig
from shadow_pipeline.feed.replay import ReplayOptions, replay
from shadow_pipeline.feed.sources import open_source
from shadow_pipeline.live.shadow_loop import LiveOptions, LiveShadow, LiveSummary
from shadow_pipeline.redis_io.keys import live_kpi_hash, live_kpi_stream, live_position_hash
from shadow_pipeline.redis_io.live_kpis import read_live_records
from shadow_pipeline.settings import REDIS_URL_ENV

SYMBOL = "BTCUSDT"
WINDOW_SECONDS = 10.0


def clear_live_keys(client: redis.Redis, stream: str, symbols: tuple[str, ...] = (SYMBOL,)) -> None:
    """Live records are per instrument, not per stream: a test starts from none."""
    for symbol in symbols:
        for key in (live_kpi_stream(symbol), f"{live_kpi_stream(symbol)}:ids", live_kpi_hash(symbol)):
            client.delete(key)
    client.delete(live_position_hash(stream))


def run_live(client: redis.Redis, stream: str, idle_s: float = 0.3, **options: object) -> LiveSummary:
    """The live shadow (10 s windows, moderate) over ``stream`` until it has been idle ``idle_s``."""
    config = ShadowConfig(window_seconds=WINDOW_SECONDS)
    return LiveShadow(client, LiveOptions(stream, config, until_idle_s=idle_s, **options)).run()  # type: ignore[arg-type]


def closed_windows(window_ends: np.ndarray, ts_server: np.ndarray, horizon_s: float, watermark_ns: int) -> int:
    """How many windows the close rule closes on a stream whose ticks are all in: end + horizon reached by the
    newest tick released by the watermark (the hand rule, not the service's code)."""
    newest = int(ts_server.max())
    released = ts_server[ts_server < newest - watermark_ns]
    return int((window_ends + round(horizon_s * 1e9) <= released.max()).sum())


def live_delay(client: redis.Redis, rate_multiplier: float, minutes: float = 1.0) -> tuple[float, float, int]:
    """The live shadow's delay from window close to KPI record in Redis while ``minutes`` of the synthetic market
    (BTCUSDT, ETHUSDT) are replayed at ``rate_multiplier`` times market speed, 10 s windows: (median ms, p99 ms,
    windows). The service runs as deployed, a `live-shadow` process of its own (started and ready before the
    replay); the delays are read from its records (``published_ns - closed_ns``)."""
    stream = f"bench:live:{uuid.uuid4().hex[:8]}:ticks"
    symbols = ("BTCUSDT", "ETHUSDT")
    clear_live_keys(client, stream, symbols)
    port = _free_port()
    command = [sys.executable, "-m", "shadow_pipeline.cli_live", "--stream", stream, "--metrics-port", str(port)]
    env = {**os.environ, REDIS_URL_ENV: _url_of(client), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    service = subprocess.Popen([*command, "--window-seconds", f"{WINDOW_SECONDS:g}"], env=env, stdout=subprocess.PIPE)
    try:
        _wait_for_metrics(port, service)
        source = open_source("synthetic", symbols=symbols, seconds=minutes * 60, seed=11)
        replay(client, source.chunks, ReplayOptions(stream=stream, maxlen=None, speed=rate_multiplier, progress=False))
        time.sleep(1.5)  # the last closes
        service.send_signal(signal.SIGTERM)
        service.communicate(timeout=60)
        records = [r for symbol in symbols for r in read_live_records(client, symbol)]
    finally:
        service.kill()
        client.delete(stream, live_position_hash(stream))
        clear_live_keys(client, stream, symbols)
    delays = np.array([(r["published_ns"] - r["closed_ns"]) / 1e6 for r in records])
    if not len(delays):
        return float("nan"), float("nan"), 0
    return float(np.median(delays)), float(np.quantile(delays, 0.99)), len(delays)


def _url_of(client: redis.Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    auth = f"{kwargs.get('username') or ''}:{kwargs['password']}@" if kwargs.get("password") else ""
    return f"redis://{auth}{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}/{kwargs.get('db', 0)}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_metrics(port: int, service: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """Until the service answers on its metrics port: it is reading the stream."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if service.poll() is not None:
            raise RuntimeError(f"live-shadow exited with {service.returncode} before it served")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("live-shadow did not serve its metrics in time")


def entry_in_window(client: redis.Redis, stream: str, window_start_ns: int, window_end_ns: int) -> tuple[str, dict]:
    """The first entry of ``SYMBOL`` whose exchange time falls in the window."""
    for entry_id, fields in client.xrange(stream):  # type: ignore[union-attr]
        text = {_text(k): _text(v) for k, v in (fields or {}).items()}
        if text["symbol"] == SYMBOL and window_start_ns <= int(text["ts_server"]) < window_end_ns:
            return _text(entry_id), text
    raise AssertionError("no tick in the window")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
