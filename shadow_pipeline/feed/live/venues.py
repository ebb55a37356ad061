"""The registry of venue protocols by venue code: what ``--venue`` may name."""

from __future__ import annotations

from collections.abc import Callable

from shadow_pipeline.feed.live.binance import BinanceProtocol
from shadow_pipeline.feed.live.bybit import BybitProtocol
from shadow_pipeline.feed.live.config import FeedConfig
from shadow_pipeline.feed.live.protocol import VenueProtocol
from shadow_pipeline.feed.readers.venues import BINANCE_SPOT, BINANCE_USDM, BYBIT_LINEAR, BYBIT_SPOT


def _bybit(config: FeedConfig) -> VenueProtocol:
    return BybitProtocol(config.venue, config.symbols, config.book_depth, config.depth)


def _binance(config: FeedConfig) -> VenueProtocol:
    if config.book_depth is not None:
        raise ValueError(f"book depth: {config.venue} keeps the full book from a REST snapshot (use --depth)")
    return BinanceProtocol(config.venue, config.symbols, config.depth)


PROTOCOLS: dict[str, Callable[[FeedConfig], VenueProtocol]] = {
    BINANCE_USDM.code: _binance,
    BINANCE_SPOT.code: _binance,
    BYBIT_LINEAR.code: _bybit,
    BYBIT_SPOT.code: _bybit,
}


def protocol_for(config: FeedConfig) -> VenueProtocol:
    """The venue's protocol for ``config``; a venue without one, or an option it cannot take, is a ValueError."""
    if config.venue not in PROTOCOLS:
        raise ValueError(f"venue {config.venue!r}: the live feed speaks {', '.join(PROTOCOLS)}")
    return PROTOCOLS[config.venue](config)
