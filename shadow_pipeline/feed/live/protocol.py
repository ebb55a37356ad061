"""What a venue's live protocol is to the feed: the interface each venue implements, and what a frame gives.

The connection loop (``connection``) is the same for every venue; how to subscribe, how to keep a book and when
it is inconsistent are the venue's documented rules and live behind :class:`VenueProtocol` (``venues`` maps a
venue code to its implementation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


class MalformedFrame(ValueError):
    """A frame the venue's protocol cannot read: counted and skipped, never a crash of the feed. ``update`` is
    what the protocol did about it (a book the frame left half-applied is resynced)."""

    def __init__(self, reason: str, update: Update | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.update = update


def subscribed(symbol: object, expected: str, symbols: tuple[str, ...]) -> str:
    """``symbol`` as a frame names it, when it is the one its topic or stream names and one the feed asked for: a
    frame that names another would invent an instrument (a seq counter, ticks nobody subscribed)."""
    if symbol != expected or symbol not in symbols:
        raise MalformedFrame(f"a frame of symbol {str(symbol)[:40]!r} on the topic of {expected[:40]!r}")
    return expected


@dataclass(frozen=True)
class VenueDefaults:
    """A venue's public endpoints and how long one of its books may normally stay unchanged (``stale_seconds``:
    the watchdog's timeout; docs/feed.md, "Stale books", says why each)."""

    ws_url: str
    rest_url: str | None
    stale_seconds: float


@dataclass
class Update:
    """What one frame (or REST snapshot) gives the feed.

    ``rows`` are the readers' quote and trade rows (``readers.binance.quote_row``, ``readers.bybit.Books``), in
    the frame's order; ``depth`` depth stream entries (``depth_fields``); ``changed`` the books that moved (the
    watchdog's clock); ``resyncs`` the causes of books found inconsistent; ``send`` frames to send back
    (Bybit's resubscribe); ``snapshots`` symbols whose REST snapshot to fetch; ``dropped`` reasons of messages
    dropped on purpose (a stale ``bookTicker``).
    """

    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    depth: list[dict[str, str]] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    resyncs: list[str] = field(default_factory=list)
    send: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


class VenueProtocol(Protocol):
    """One venue's public market data protocol for a list of symbols; one instance lives as long as the feed and
    keeps the books across connections (so a touch is not published twice after a reconnect)."""

    venue: str
    defaults: VenueDefaults
    client_ping: str | None  # sent every ``ping_seconds`` (Bybit); None: the server pings (Binance)

    def url(self, base: str) -> str:
        """The WebSocket URL to open from the configured base."""

    def books(self) -> list[str]:
        """The names of the books the watchdog keeps a clock for."""

    def on_connect(self) -> Update:
        """A new connection: every book is unknown again; what to send and fetch first."""

    def on_frame(self, text: str, ts_local: int) -> Update:
        """One received frame; raises :class:`MalformedFrame` for one it cannot read."""

    def snapshot_url(self, base: str, symbol: str) -> str:
        """The REST depth snapshot of ``symbol`` (venues that need one)."""

    def on_snapshot(self, symbol: str, body: str, ts_local: int) -> Update:
        """A REST snapshot's body for ``symbol``; raises :class:`MalformedFrame` for one it cannot read."""
