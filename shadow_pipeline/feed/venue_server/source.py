"""What a venue server plays: market frames in receive order, and the REST depth snapshots recorded among them.

A frame keeps its text exactly as the venue sent it, so that a client under test parses what the venue's own bytes
would be; the server only reads what it needs (topic, symbol, kind) to route it and to keep its books.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from shadow_pipeline.feed.readers import venues

# The venues' codes as the server's modules compare them (strings); the venues themselves are defined once.
BYBIT_LINEAR = venues.BYBIT_LINEAR.code
BYBIT_SPOT = venues.BYBIT_SPOT.code
BINANCE_USDM = venues.BINANCE_USDM.code
BINANCE_SPOT = venues.BINANCE_SPOT.code
VENUES = (BYBIT_LINEAR, BYBIT_SPOT, BINANCE_USDM, BINANCE_SPOT)


def check_venue(venue: str) -> str:
    if venue not in VENUES:
        raise ValueError(f"unknown venue {venue!r}: one of {', '.join(VENUES)}")
    return venue


def is_bybit(venue: str) -> bool:
    return venue.startswith("bybit-")


class FrameKind(StrEnum):
    """What the server does with a frame besides sending it: book frames move its books, and faults count deltas."""

    BOOK_SNAPSHOT = "book-snapshot"
    BOOK_DELTA = "book-delta"
    TICKER = "ticker"
    TRADE = "trade"
    OTHER = "other"


@dataclass(frozen=True)
class Frame:
    """One market frame: its local receive stamp (ns), its Bybit topic or Binance stream name, and its text."""

    ts_local: int
    topic: str
    symbol: str
    kind: FrameKind
    text: str


@dataclass(frozen=True)
class RestSnapshot:
    """A Binance REST depth snapshot body, recorded after ``position`` frames of the source had arrived."""

    symbol: str
    position: int
    body: str


@dataclass(frozen=True)
class FrameSource:
    """The frames of one venue in the order a client receives them, and (Binance) the REST snapshots."""

    venue: str
    frames: tuple[Frame, ...]
    snapshots: tuple[RestSnapshot, ...] = ()

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[Frame]:
        return iter(self.frames)

    def __getitem__(self, index: int) -> Frame:
        return self.frames[index]

    @property
    def topics(self) -> frozenset[str]:
        return frozenset(frame.topic for frame in self.frames)

    @property
    def symbols(self) -> frozenset[str]:
        return frozenset(frame.symbol for frame in self.frames)
