"""A price-level book as the venues publish it: absolute sizes per level, a size of 0 deletes the level."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

Level = list[str]  # [price, size] as the venue wrote them


class Book:
    """Levels keyed by the price's value (``"65114.2"`` and ``"65114.20"`` are one level), text kept as written."""

    def __init__(self) -> None:
        self.bids: dict[float, Level] = {}
        self.asks: dict[float, Level] = {}

    def reset(self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> None:
        self.bids.clear()
        self.asks.clear()
        self.apply(bids, asks)

    def apply(self, bids: Iterable[Sequence[str]], asks: Iterable[Sequence[str]]) -> None:
        for side, levels in ((self.bids, bids), (self.asks, asks)):
            for price, size in levels:
                if float(size) == 0:
                    side.pop(float(price), None)
                else:
                    side[float(price)] = [price, size]

    def levels(self, depth: int | None = None) -> tuple[list[Level], list[Level]]:
        """Best first, at most ``depth`` per side."""
        bids = [self.bids[price] for price in sorted(self.bids, reverse=True)[:depth]]
        asks = [self.asks[price] for price in sorted(self.asks)[:depth]]
        return bids, asks
