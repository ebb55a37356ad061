"""Bybit v5 public streams (linear and spot): ``orderbook.{depth}`` kept by the readers' ``Books``, ``publicTrade``.

The venue's rules (docs/feed.md, "Bybit v5"): a snapshot resets the book; a delta with ``u`` = 1 means the
service restarted and overwrites the book like a snapshot; any other delta must carry the previous ``u`` + 1,
else the book is inconsistent: it is forgotten (nothing is published from it) and resubscribed, and the venue
answers with a fresh snapshot. Clients ping with ``{"op":"ping"}`` every 20 s.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from shadow_pipeline.domain.market.depth import DELTA, SNAPSHOT, depth_fields
from shadow_pipeline.feed.live.protocol import MalformedFrame, Update, VenueDefaults, subscribed
from shadow_pipeline.feed.readers.bybit import Books, restarted, trade_rows
from shadow_pipeline.feed.readers.files import BAD_LINE, describe
from shadow_pipeline.feed.readers.frames import exchange_ns
from shadow_pipeline.feed.readers.venues import BYBIT_LINEAR, BYBIT_SPOT

log = logging.getLogger(__name__)
# Book depths the venue serves (Bybit v5 docs, "Orderbook", checked 2026-12): 1, 50, 200 and 1000 on linear and
# spot (linear's 500 of older docs lives on only in the daily ob500 archives).
BOOK_DEPTHS = {BYBIT_LINEAR.code: (1, 50, 200, 1000), BYBIT_SPOT.code: (1, 50, 200, 1000)}
DEFAULT_BOOK_DEPTH = 200  # what the recordings hold; pushed every 100 ms on linear, 200 ms on spot
ARGS_PER_REQUEST = 10  # spot takes at most 10 topics per subscribe request
# A deep linear book of a listed perp changes many times a second; spot books of the smaller pairs can rest for
# a while. Level 1 would be re-sent every 3 s, deeper books only on change.
DEFAULTS = {
    BYBIT_LINEAR.code: VenueDefaults("wss://stream.bybit.com/v5/public/linear", None, 30.0),
    BYBIT_SPOT.code: VenueDefaults("wss://stream.bybit.com/v5/public/spot", None, 60.0),
}
CLIENT_PING = json.dumps({"op": "ping"}, separators=(",", ":"))


class BybitProtocol:
    def __init__(
        self, venue: str, symbols: tuple[str, ...], book_depth: int | None = None, depth: bool = False
    ) -> None:
        depth_levels = DEFAULT_BOOK_DEPTH if book_depth is None else book_depth
        if depth_levels not in BOOK_DEPTHS[venue]:
            served = "/".join(map(str, BOOK_DEPTHS[venue]))
            raise ValueError(f"book depth {depth_levels}: {venue} serves orderbook.{served}")
        self.venue = venue
        self.defaults = DEFAULTS[venue]
        self.client_ping: str | None = CLIENT_PING
        self.symbols = symbols
        self.depth = depth_levels
        self.publish_depth = depth
        self.book = Books()
        self.last_u: dict[str, int] = {}
        self._requests = 0

    def url(self, base: str) -> str:
        return base

    def books(self) -> list[str]:
        return list(self.symbols)

    def _book_topic(self, symbol: str) -> str:
        return f"orderbook.{self.depth}.{symbol}"

    def _request(self, op: str, topics: list[str]) -> list[str]:
        out = []
        for start in range(0, len(topics), ARGS_PER_REQUEST):
            self._requests += 1
            request = {"op": op, "args": topics[start : start + ARGS_PER_REQUEST], "req_id": f"feed-{self._requests}"}
            out.append(json.dumps(request, separators=(",", ":")))
        return out

    def on_connect(self) -> Update:
        """Every book waits for the snapshot the subscription brings; its last touch is kept, so a snapshot that
        shows it again publishes nothing twice."""
        for symbol in self.symbols:
            self.book.forget(symbol)
        topics = [topic for s in self.symbols for topic in (self._book_topic(s), f"publicTrade.{s}")]
        return Update("connect", send=self._request("subscribe", topics))

    def on_frame(self, text: str, ts_local: int) -> Update:
        try:
            message = json.loads(text)
            topic = message.get("topic") if isinstance(message, dict) else None
            if topic is None:
                return self._control(message)
            if not isinstance(topic, str):
                raise ValueError(f"topic {str(topic)[:40]!r} is not text")
            if topic.startswith("orderbook."):
                return self._book(message, ts_local)
            if topic.startswith("publicTrade."):
                expected = topic.rpartition(".")[2]
                for trade in message["data"]:
                    subscribed(trade["s"], expected, self.symbols)
                return Update("trade", rows=trade_rows(message["data"]))
            return Update("other")
        except MalformedFrame:
            raise
        except BAD_LINE as exc:
            raise MalformedFrame(describe(exc)) from None

    def _control(self, message: Any) -> Update:
        """Acks and pongs; a refused subscription is logged (the watchdog then reconnects: the book never comes)."""
        if not isinstance(message, dict):
            raise ValueError("a frame that is neither a topic message nor an op reply")
        if message.get("success") is False:
            log.warning("%s refused %s: %s", self.venue, message.get("op"), str(message.get("ret_msg"))[:200])
        return Update("control")

    def _book(self, message: dict[str, Any], ts_local: int) -> Update:
        data = message["data"]
        symbol = subscribed(data["s"], str(message["topic"]).rpartition(".")[2], self.symbols)
        update_id, kind = int(data["u"]), message["type"]
        update = Update("book")
        if kind != "snapshot" and restarted(data):
            update.resyncs.append("venue_restart")
        elif kind != "snapshot" and self.book.has(symbol) and update_id != self.last_u.get(symbol, 0) + 1:
            log.warning(
                "%s %s: delta u %d after u %s: resubscribing", self.venue, symbol, update_id, self.last_u.get(symbol)
            )
            return self._resync(symbol, "gap", update)
        elif kind != "snapshot" and not self.book.has(symbol):
            update.dropped.append("delta_without_book")
            return update
        try:
            row = self.book.apply(message)
        except BAD_LINE as exc:  # a level half applied: the book is unknown until a new snapshot
            raise MalformedFrame(describe(exc), self._resync(symbol, "malformed", Update("book"))) from None
        self.last_u[symbol] = update_id
        update.changed.append(symbol)
        if self.publish_depth:
            # ids left out: a venue restart starts u again at 1, which a depth stream's order check would refuse
            resets = kind == "snapshot" or restarted(data)
            ts = exchange_ns(message.get("cts", message["ts"]))
            update.depth.append(
                depth_fields(
                    symbol, SNAPSHOT if resets else DELTA, ts, ts_local, data["b"], data["a"], venue=self.venue
                )
            )
        if row is not None:
            update.rows.append(row)
        return update

    def _resync(self, symbol: str, cause: str, update: Update) -> Update:
        """Forget ``symbol``'s book and ask for it again: unsubscribe and subscribe bring a fresh snapshot."""
        self.book.forget(symbol)
        update.resyncs.append(cause)
        topic = [self._book_topic(symbol)]
        update.send = self._request("unsubscribe", topic) + self._request("subscribe", topic)
        return update

    def snapshot_url(self, base: str, symbol: str) -> str:
        raise NotImplementedError("Bybit books start from the WebSocket snapshot")

    def on_snapshot(self, symbol: str, body: str, ts_local: int) -> Update:
        raise NotImplementedError("Bybit books start from the WebSocket snapshot")
