"""Which venue a recording is from, as its messages show it, reconciled with the venue a user asks for.

A symbol alone names no instrument (docs/instruments.md): Binance spot and USD-M both have BTCUSDT, and so do
Bybit's linear and spot markets, with other grids and lots. The recorders wrote no venue, but the messages differ
by market, so each reader notes what every message it reads says (:class:`Sightings`) and a file gets the venue
its messages agree on. A venue asked for (``replay --venue``) names the venue where the messages say nothing and
replaces the one they say when it is of the same exchange and market (a user's own venue code); one of another
exchange or market is refused, as replaying it would simulate one market on another's data.
"""

from __future__ import annotations

from pathlib import Path

from shadow_pipeline.domain.market.instruments import Venue
from shadow_pipeline.feed.readers.files import RecordingError

# The venues the readers can tell apart; test_source_venues.py holds them to the instrument registry.
BINANCE_USDM = Venue("binance-usdm", "binance", "linear")
BINANCE_SPOT = Venue("binance-spot", "binance", "spot")
BYBIT_LINEAR = Venue("bybit-linear", "bybit", "linear")
BYBIT_SPOT = Venue("bybit-spot", "bybit", "spot")
# Binance's REST depth snapshot, by venue code: what the live feed fetches and the local venue server serves.
BINANCE_DEPTH_PATHS = {BINANCE_USDM.code: "/fapi/v1/depth", BINANCE_SPOT.code: "/api/v3/depth"}


class Sightings:
    """What one file's messages said about its venue: the first line that showed each venue, and why.

    ``saw`` runs once per message read, so it only records a venue the first time.
    """

    def __init__(self, path: Path, exchange: str) -> None:
        self.path = path
        self.exchange = exchange
        self.first: dict[Venue, tuple[int, str]] = {}

    def saw(self, venue: Venue, line: int, why: str) -> None:
        if venue not in self.first:
            self.first[venue] = (line, why)

    def venue(self, chosen: Venue | None, undecided: str) -> Venue:
        """The file's venue: the one its messages show, or ``chosen`` (which must agree with them).

        ``undecided`` says which messages would have told, for the error when none did and none was chosen.
        """
        if len(self.first) > 1:
            (one, (line_one, why_one)), (other, (line_other, why_other)) = sorted(
                self.first.items(), key=lambda item: item[1][0]
            )[:2]
            raise RecordingError(
                f"{self.path}: line {line_other}: {why_other}, but line {line_one}: {why_one}: one file holds "
                f"one market, not {one.code} and {other.code}"
            )
        if chosen is not None and chosen.exchange != self.exchange:
            raise RecordingError(f"{self.path}: a {self.exchange} recording, not one of venue {chosen}")
        if not self.first:
            if chosen is None:
                raise RecordingError(f"{self.path}: {undecided}: pass the venue (--venue)")
            return chosen
        [(shown, (line, why))] = self.first.items()
        if chosen is None:
            return shown
        if chosen.market != shown.market:
            raise RecordingError(
                f"{self.path}: line {line}: {why}: {shown.exchange} {shown.market} data, not venue {chosen} "
                f"(leave the venue out, or choose {shown.code})"
            )
        return chosen
