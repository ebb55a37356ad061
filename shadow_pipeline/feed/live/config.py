"""The feed's settings, every default declared here once and every bound checked on construction."""

from __future__ import annotations

from dataclasses import dataclass

from shadow_pipeline.domain.market.instruments import SYMBOL_PATTERN
from shadow_pipeline.domain.market.shards import check_shards
from shadow_pipeline.redis_io.streams import DEFAULT_MAXLEN, DEFAULT_STREAM

# Binance closes a connection after 24 h; leaving an hour's margin means the feed picks the moment, not the venue.
DEFAULT_MAX_AGE_SECONDS = 23 * 3600.0
DEFAULT_BACKOFF_INITIAL_SECONDS = 0.5
DEFAULT_BACKOFF_MAX_SECONDS = 30.0
DEFAULT_PING_SECONDS = 20.0  # Bybit asks clients to ping every 20 s
DEFAULT_OPEN_TIMEOUT_SECONDS = 10.0
DEFAULT_REST_TIMEOUT_SECONDS = 10.0
DEFAULT_BATCH_MAX = 1000  # ticks per Lua call: bounds one call's time on the server, which blocks it

_REDIS_MAX_INT = 2**63 - 1  # XADD MAXLEN takes a signed 64-bit count; a larger one fails only at the first write


@dataclass(frozen=True)
class FeedConfig:
    """One feed: a venue and its instruments. None means the venue's own default (``protocol.VenueDefaults``):
    endpoints, the stale-book timeout and Bybit's book depth differ by venue.

    ``compression`` offers permessage-deflate: off by default, as it costs CPU per frame at both ends and adds
    latency (and hides a backlog: compressed frames fill the buffers several times later); on for a thin link.
    ``receive_buffer_bytes`` caps the socket's receive buffer (None: the kernel's autotuning, up to tens of MB on
    Linux): a small one shows the venue a reader that falls behind at once, rather than after megabytes.
    ``pause_after_frames`` and ``pause_seconds`` are for tests only: the first connection stops reading for that
    long after that many frames, so that the venue sees a reader that does not keep up (the slow-reader fault).
    """

    venue: str
    symbols: tuple[str, ...]
    ws_url: str | None = None
    rest_url: str | None = None
    stream: str = DEFAULT_STREAM
    maxlen: int | None = DEFAULT_MAXLEN
    shards: int = 1  # ticks go to their instrument's shard of ``stream`` ($SHADOW_STREAM_SHARDS; docs/ingest.md)
    depth: bool = False
    book_depth: int | None = None
    stale_seconds: float | None = None
    max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS
    backoff_initial_seconds: float = DEFAULT_BACKOFF_INITIAL_SECONDS
    backoff_max_seconds: float = DEFAULT_BACKOFF_MAX_SECONDS
    ping_seconds: float = DEFAULT_PING_SECONDS
    open_timeout_seconds: float = DEFAULT_OPEN_TIMEOUT_SECONDS
    rest_timeout_seconds: float = DEFAULT_REST_TIMEOUT_SECONDS
    batch_max: int = DEFAULT_BATCH_MAX
    receive_buffer_bytes: int | None = None
    compression: bool = False
    pause_after_frames: int | None = None
    pause_seconds: float = 0.0

    def __post_init__(self) -> None:
        check_shards(self.shards)
        if not self.symbols:
            raise ValueError("symbols: at least one instrument symbol, e.g. BTCUSDT")
        bad = [s for s in self.symbols if not SYMBOL_PATTERN.fullmatch(s)]
        if bad:
            raise ValueError(f"symbols: want 1-24 of A-Z0-9 each (the venue's symbol, e.g. BTCUSDT), not {bad}")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"symbols: {list(self.symbols)} names one symbol twice")
        if self.ws_url is not None and not self.ws_url.startswith(("ws://", "wss://")):
            raise ValueError(f"ws_url: want a ws:// or wss:// URL, got {self.ws_url[:80]!r}")
        if self.rest_url is not None and not self.rest_url.startswith(("http://", "https://")):
            raise ValueError(f"rest_url: want an http:// or https:// URL, got {self.rest_url[:80]!r}")
        if not self.stream:
            raise ValueError("stream: a stream name is required")
        if self.maxlen is not None and not 1 <= self.maxlen <= _REDIS_MAX_INT:
            raise ValueError(f"maxlen must be 1 to {_REDIS_MAX_INT} (or none for no trimming), got {self.maxlen}")
        positive = {
            "max_age_seconds": self.max_age_seconds,
            "backoff_initial_seconds": self.backoff_initial_seconds,
            "backoff_max_seconds": self.backoff_max_seconds,
            "ping_seconds": self.ping_seconds,
            "open_timeout_seconds": self.open_timeout_seconds,
            "rest_timeout_seconds": self.rest_timeout_seconds,
            "stale_seconds": self.stale_seconds if self.stale_seconds is not None else 1.0,
        }
        for name, value in positive.items():
            if not 0 < value < float("inf"):
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")
        if self.backoff_initial_seconds > self.backoff_max_seconds:
            raise ValueError(
                f"backoff_initial_seconds {self.backoff_initial_seconds} exceeds backoff_max_seconds "
                f"{self.backoff_max_seconds}"
            )
        if not 1 <= self.batch_max <= 100_000:
            raise ValueError(f"batch_max must be 1 to 100000, got {self.batch_max}")
        if self.receive_buffer_bytes is not None and not 4096 <= self.receive_buffer_bytes <= 1 << 30:
            raise ValueError(f"receive_buffer_bytes must be 4096 to 1 GiB, got {self.receive_buffer_bytes}")
        if not 0 <= self.pause_seconds < 60:
            raise ValueError(f"pause_seconds must be 0 to 60, got {self.pause_seconds}")
        if self.pause_after_frames is not None and self.pause_after_frames < 0:
            raise ValueError(f"pause_after_frames must be >= 0, got {self.pause_after_frames}")
