"""Binance combined streams and the REST depth snapshot (https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly,
and the spot API's ``GET /api/v3/depth``): the server's books, built from the recorded snapshot and the diffs played."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from shadow_pipeline.feed.venue_server.books import Book
from shadow_pipeline.feed.venue_server.source import BINANCE_USDM, Frame, FrameKind, FrameSource, RestSnapshot

REST_PATHS = {BINANCE_USDM: "/fapi/v1/depth", "binance-spot": "/api/v3/depth"}
INVALID_SYMBOL = {"code": -1121, "msg": "Invalid symbol."}
_MAX_LIMIT = 5000


def dumps(message: dict[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


class RestError(Exception):
    """An answer with Binance's error body (``{"code": ..., "msg": ...}``) and HTTP 400."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__(body["msg"])
        self.body = body


@dataclass
class _Depth:
    """A symbol's book once the replay has passed its recorded snapshot: ``update_id`` is the snapshot's
    ``lastUpdateId``, then the last applied diff's ``u``; ``event``/``trade`` its ``E``/``T``."""

    update_id: int
    event: Any
    trade: Any
    book: Book = field(default_factory=Book)


class BinanceMarket:
    def __init__(self, source: FrameSource) -> None:
        self._usdm = source.venue == BINANCE_USDM
        self.topics = source.topics
        self._recorded: dict[str, RestSnapshot] = {}
        self._due: dict[int, list[RestSnapshot]] = {}
        for snapshot in source.snapshots:
            self._recorded.setdefault(snapshot.symbol, snapshot)
            self._due.setdefault(snapshot.position, []).append(snapshot)
        self._depth: dict[str, _Depth] = {}

    def play(self, position: int, frame: Frame | None) -> str:
        """Reach the snapshots recorded before ``frame`` (at ``position``; None: the end), then apply a diff as
        the documented procedure does: skip ``u`` < ``lastUpdateId``, apply the rest."""
        for snapshot in self._due.pop(position, ()):
            body = json.loads(snapshot.body)
            reached = _Depth(int(body["lastUpdateId"]), body.get("E"), body.get("T"))
            reached.book.reset(body["bids"], body["asks"])
            self._depth[snapshot.symbol] = reached
        if frame is None:
            return ""
        depth = self._depth.get(frame.symbol)
        if frame.kind is FrameKind.BOOK_DELTA and depth is not None:
            data = json.loads(frame.text)["data"]
            if int(data["u"]) >= depth.update_id:
                depth.book.apply(data["b"], data["a"])
                depth.update_id, depth.event, depth.trade = int(data["u"]), data.get("E"), data.get("T")
        return frame.text

    def rest(self, query: str) -> str:
        """``GET depth?symbol=..&limit=..``: before the replay reached the recorded snapshot, that snapshot as
        recorded (newer than the diffs sent so far, as the venue's is); after, the server's current book."""
        params = parse_qs(query)
        symbol = params.get("symbol", [""])[0]
        if not symbol:
            raise RestError(
                {"code": -1102, "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}
            )
        if symbol not in self._recorded:
            raise RestError(INVALID_SYMBOL)
        limit_text = params.get("limit", ["100"])[0]
        if not limit_text.isdigit() or not 0 < int(limit_text) <= _MAX_LIMIT:
            raise RestError(
                {
                    "code": -1100,
                    "msg": f"Illegal characters found in parameter 'limit'; legal range is '1..{_MAX_LIMIT}'.",
                }
            )
        limit = int(limit_text)
        depth = self._depth.get(symbol)
        if depth is None:
            body = json.loads(self._recorded[symbol].body)
            if len(body["bids"]) <= limit and len(body["asks"]) <= limit:
                return self._recorded[symbol].body
            body["bids"], body["asks"] = body["bids"][:limit], body["asks"][:limit]
            return dumps(body)
        bids, asks = depth.book.levels(limit)
        answer: dict[str, Any] = {"lastUpdateId": depth.update_id}
        if self._usdm:
            answer |= {"E": depth.event, "T": depth.trade}
        return dumps(answer | {"bids": bids, "asks": asks})


def streams_of(query: str) -> list[str]:
    """The stream names of a combined-stream URL's ``streams=a/b/c``."""
    names = parse_qs(query).get("streams", [""])[0]
    return [name for name in names.split("/") if name]
