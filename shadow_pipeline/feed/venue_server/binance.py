"""Binance combined streams and the REST depth snapshot (https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly,
and the spot API's ``GET /api/v3/depth``): the server's books, built from the recorded snapshot and the diffs played."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from websockets.exceptions import ConnectionClosed

from shadow_pipeline.feed.readers.venues import BINANCE_DEPTH_PATHS
from shadow_pipeline.feed.venue_server.books import Book
from shadow_pipeline.feed.venue_server.session import Session
from shadow_pipeline.feed.venue_server.source import (
    BINANCE_USDM,
    Frame,
    FrameKind,
    FrameSource,
    RestSnapshot,
)

REST_PATHS = BINANCE_DEPTH_PATHS
INVALID_SYMBOL = {"code": -1121, "msg": "Invalid symbol."}
# USD-M: "Default 500; Valid limits:[5, 10, 20, 50, 100, 500, 1000]"; spot: default 100, above 5000 truncated to 5000
_USDM_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
_SPOT_LIMIT = 5000


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

    def _limit(self, text: str) -> int:
        """The levels per side a depth request asks for, by the market's rules (see ``_USDM_LIMITS``)."""
        if not text:
            return 500 if self._usdm else 100
        if not text.isdigit():
            raise _bad_limit(text)
        if self._usdm:
            if int(text) not in _USDM_LIMITS:
                raise _bad_limit(text)
            return int(text)
        if int(text) < 1:
            raise _bad_limit(text)
        return min(int(text), _SPOT_LIMIT)

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
        limit = self._limit(params.get("limit", [""])[0])
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


def _bad_limit(text: str) -> RestError:
    return RestError({"code": -1130, "msg": f"Data sent for parameter 'limit' is not valid: {text[:20]!r}."})


def streams_of(query: str) -> list[str]:
    """The stream names of a combined-stream URL's ``streams=a/b/c``."""
    names = parse_qs(query).get("streams", [""])[0]
    return [name for name in names.split("/") if name]


class BinanceConversation:
    """Answers the live subscription requests of a combined-stream connection (``SUBSCRIBE``, ``UNSUBSCRIBE``,
    ``LIST_SUBSCRIPTIONS``: https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams)."""

    def __init__(self, session: Session, topics: frozenset[str], subscribed: Callable[[], None]) -> None:
        self._session = session
        self._topics = topics
        self._subscribed = subscribed

    async def run(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for text in self._session.ws:
                await self._session.send(dumps(self._answer(text)))

    def _answer(self, text: str | bytes) -> dict[str, Any]:
        try:
            request = json.loads(text)
            method, params, request_id = request["method"], request.get("params", []), request.get("id")
            if not (isinstance(params, list) and all(isinstance(p, str) for p in params)):
                return {"error": {"code": 1, "msg": "Invalid value type: params must be a list of streams"}, "id": None}
        except (ValueError, KeyError, TypeError, RecursionError):
            return {"error": {"code": 3, "msg": "Invalid JSON: expected {method, params, id}"}, "id": None}
        if method == "LIST_SUBSCRIPTIONS":
            return {"result": sorted(self._session.topics), "id": request_id}
        if method == "UNSUBSCRIBE":
            self._session.topics.difference_update(params)
            return {"result": None, "id": request_id}
        if method != "SUBSCRIBE":
            return {
                "error": {"code": 2, "msg": f"Invalid request: unknown method {str(method)[:40]}"},
                "id": request_id,
            }
        unknown = [p for p in params if p not in self._topics]
        self._session.topics.update(p for p in params if p in self._topics)
        self._subscribed()
        if unknown:  # the venue would accept them and send nothing: a test fixture says so instead
            return {
                "error": {"code": 2, "msg": f"Invalid request: streams not served here: {unknown}"},
                "id": request_id,
            }
        return {"result": None, "id": request_id}
