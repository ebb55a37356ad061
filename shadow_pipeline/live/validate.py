"""`make shadow-live-validate`: the seed's Step 7, feed -> ingest -> live shadow -> dry-run for N windows.

Every part runs as the service a desk would run (``shadow-pipeline feed``, ``ingest``, ``live-shadow``, each its
own process on one Redis), so the validation exercises what production runs, not an in-process shortcut. Without
``network`` the feed talks to the local venue server (``feed.venue_server``) playing the synthetic market, or
recordings, through the venue's real protocol; with it, to the venue itself. Once every instrument has its
windows published live, the services stop (SIGTERM, each must exit cleanly) and the dry-run judges the hours
they spanned: the accuracy report, the Go/No-Go, and the check that the live windows equal the batch's.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from shadow_pipeline import settings
from shadow_pipeline.domain.market.instruments import DEFAULT_VENUE, instrument_key
from shadow_pipeline.domain.market.shards import instrument_stream, shard_streams
from shadow_pipeline.feed.venue_server import ServerThread, VenueServer, recording_frames, synthetic_frames
from shadow_pipeline.redis_io.keys import feed_seq_key, live_kpi_stream, live_position_hash

# Exchange time after the last window: its markout horizon (5 s in every packaged profile) and the reorder
# watermark must pass before it closes, and the synthetic market has to run that long.
_TAIL_SECONDS = 30.0
_POLL_SECONDS = 0.5
_STOP_SECONDS = 30.0


class ValidationError(RuntimeError):
    """A service failed or the windows never came: the message says which and how to see why."""


@dataclass(frozen=True)
class LiveValidation:
    """What to validate: venue and instruments, how many windows of what length, and where the market comes from
    (``network``: the venue's own endpoints; else the local server, ``recordings`` or the synthetic market paced
    ``speed`` x real time)."""

    venue: str = DEFAULT_VENUE
    symbols: tuple[str, ...] = ("BTCUSDT",)
    windows: int = 48
    window_seconds: float = 60.0
    profile: str = "moderate"
    stream: str = "lob:ticks"
    network: bool = False
    speed: float = 1.0
    recordings: tuple[Path, ...] = ()
    seed: int = 0
    timeout_seconds: float = 3600.0
    logs: Path = field(default_factory=lambda: settings.artifacts_dir() / "live-validate")

    def instruments(self) -> list[str]:
        venue = None if self.venue == DEFAULT_VENUE else self.venue
        return [instrument_key(symbol, venue) for symbol in self.symbols]

    def market_minutes(self) -> float:
        return (self.windows * self.window_seconds + _TAIL_SECONDS) / 60


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "shadow_pipeline.cli", *args]


class Services:
    """Child processes with their logs; stopped with SIGTERM in reverse order, each expected to exit 0."""

    def __init__(self, logs: Path, env: Mapping[str, str]) -> None:
        self.logs = logs
        self.env = dict(env)
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, args: Sequence[str]) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("wb") as log:
            self.children[name] = subprocess.Popen(_command(*args), stdout=log, stderr=subprocess.STDOUT, env=self.env)

    def check_alive(self) -> None:
        for name, child in self.children.items():
            if child.poll() is not None:
                raise ValidationError(f"{name} exited with {child.returncode}: {self.last_line(name)}")

    def last_line(self, name: str) -> str:
        lines = (self.logs / f"{name}.log").read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else f"(no output; see {self.logs / name}.log)"

    def stop(self) -> dict[str, int]:
        codes: dict[str, int] = {}
        for name, child in reversed(self.children.items()):
            if child.poll() is None:
                child.terminate()
            try:
                codes[name] = child.wait(_STOP_SECONDS)
            except subprocess.TimeoutExpired:
                child.kill()
                codes[name] = child.wait()
        return codes


@contextmanager
def _local_venue(options: LiveValidation) -> Iterator[ServerThread | None]:
    if options.network:
        yield None
        return
    if options.recordings:
        frames = recording_frames(options.venue, list(options.recordings), options.symbols)
    else:
        frames = synthetic_frames(options.venue, options.symbols, options.market_minutes(), seed=options.seed)
    with ServerThread(VenueServer(options.venue, frames, speed=options.speed)) as running:
        yield running


def published_windows(client: redis.Redis, instruments: Sequence[str]) -> dict[str, int]:
    return {key: int(client.xlen(live_kpi_stream(key))) for key in instruments}


def earlier_run(client: redis.Redis, options: LiveValidation) -> list[str]:
    """Keys an earlier run left that this one would read as its own: the tick stream, its seq counters, its live
    position and the instruments' live records (the synthetic market starts at the same time every run)."""
    instruments = options.instruments()
    shards = settings.stream_shards()  # the services' count: they run in this environment
    streams = shard_streams(options.stream, shards)
    keys = [
        *streams,
        *(live_position_hash(stream) for stream in streams),
        *(feed_seq_key(instrument_stream(options.stream, key, shards), key) for key in instruments),
        *(live_kpi_stream(key) for key in instruments),
    ]
    return [key for key in keys if client.exists(key)]


def run_services(
    options: LiveValidation, url_env: Mapping[str, str], client: redis.Redis, progress: Callable[[dict[str, int]], None]
) -> dict[str, int]:
    """Feed, ingest and live shadow until every instrument has ``options.windows`` live windows; their exit codes."""
    left = earlier_run(client, options)
    if left:
        raise ValidationError(
            f"an earlier run left {', '.join(left)}: its windows would count as this run's. Use a Redis database of "
            f"the validation's own (REDIS_URL=.../N, or none: an embedded Redis), or delete them (redis-cli DEL)"
        )
    with _local_venue(options) as venue:
        services = Services(options.logs, url_env)
        feed = ["feed", "--venue", options.venue, "--symbols", ",".join(options.symbols), "--stream", options.stream]
        if venue is not None:
            feed += ["--ws-url", venue.ws_url, "--rest-url", venue.rest_url]
        window = f"{options.window_seconds:g}"
        try:
            services.start("feed", feed)
            services.start("ingest", ["ingest", "--stream", options.stream])
            services.start(
                "live-shadow",
                ["live-shadow", "--stream", options.stream, "--profile", options.profile, "--window-seconds", window],
            )
            deadline = time.monotonic() + options.timeout_seconds
            while True:
                services.check_alive()
                counts = published_windows(client, options.instruments())
                progress(counts)
                if min(counts.values()) >= options.windows:
                    break
                if time.monotonic() > deadline:
                    raise ValidationError(
                        f"{options.timeout_seconds:g} s passed with live windows {counts}, want {options.windows} "
                        f"each; logs in {options.logs}"
                    )
                time.sleep(_POLL_SECONDS)
        finally:
            codes = services.stop()
    failed = {name: code for name, code in codes.items() if code != 0}
    if failed:
        raise ValidationError(f"services did not stop cleanly: {failed}; logs in {options.logs}")
    return codes
