"""A local stand-in for the venues' public market-data endpoints: recorded or synthetic frames played through
Bybit v5's and Binance's own WebSocket and REST protocols, with fault injection (docs/venue-server.md)."""

from shadow_pipeline.feed.venue_server.config import ServerFaults, ServerStats
from shadow_pipeline.feed.venue_server.recorded import recording_frames
from shadow_pipeline.feed.venue_server.server import VenueServer
from shadow_pipeline.feed.venue_server.source import VENUES, Frame, FrameKind, FrameSource, RestSnapshot
from shadow_pipeline.feed.venue_server.synthetic import synthetic_frames
from shadow_pipeline.feed.venue_server.thread import ServerThread

__all__ = [
    "VENUES",
    "Frame",
    "FrameKind",
    "FrameSource",
    "RestSnapshot",
    "ServerFaults",
    "ServerStats",
    "ServerThread",
    "VenueServer",
    "recording_frames",
    "synthetic_frames",
]
