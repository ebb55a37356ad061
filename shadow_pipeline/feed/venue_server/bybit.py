"""Bybit v5 public WebSocket (https://bybit-exchange.github.io/docs/v5/ws/connect, .../v5/websocket/public/orderbook):
``op`` requests and their replies, and the books that subscribe-time snapshots and the restart fault come from."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.exceptions import ConnectionClosed

from shadow_pipeline.feed.venue_server.books import Book
from shadow_pipeline.feed.venue_server.session import Session
from shadow_pipeline.feed.venue_server.source import BYBIT_SPOT, Frame, FrameKind, FrameSource

_SPOT_MAX_ARGS = 10  # v5 docs, connect: "Spot can input up to 10 args for each subscription request"


def dumps(message: dict[str, Any]) -> str:
    """Bybit writes compact JSON."""
    return json.dumps(message, separators=(",", ":"))


@dataclass
class _TopicBook:
    """One ``orderbook.N.SYM`` topic's book and the ids of its last frame; ``offset`` is the recorded ``u`` minus
    the served one after a restart fault (the venue numbers from 1 again)."""

    book: Book = field(default_factory=Book)
    u: int = 0
    seq: int = 0
    ts: int = 0
    cts: int | None = None
    offset: int = 0


class BybitMarket:
    """The books of the played ``orderbook`` frames, by topic."""

    def __init__(self, source: FrameSource) -> None:
        self.topics = source.topics
        self._books: dict[str, _TopicBook] = {}

    def play(self, frame: Frame) -> str:
        """Apply ``frame`` to its book; the text to send (renumbered after a restart fault)."""
        if frame.kind not in (FrameKind.BOOK_SNAPSHOT, FrameKind.BOOK_DELTA):
            return frame.text
        message = json.loads(frame.text)
        data = message["data"]
        state = self._books.setdefault(frame.topic, _TopicBook())
        # u = 1 is the venue's own restart: a snapshot in a delta's clothes
        if frame.kind is FrameKind.BOOK_SNAPSHOT or int(data["u"]) == 1:
            state.book.reset(data["b"], data["a"])
            state.offset = 0
        else:
            state.book.apply(data["b"], data["a"])
        state.u = int(data["u"]) - state.offset
        state.seq, state.ts, state.cts = int(data.get("seq", 0)), int(message["ts"]), message.get("cts")
        if not state.offset:
            return frame.text
        data["u"] = state.u
        return dumps(message)

    def restart(self, frame: Frame) -> str:
        """The topic's whole book as a delta with ``u`` = 1, which is how Bybit announces a service restart;
        later deltas of the topic are numbered on from it."""
        state = self._books[frame.topic]
        state.offset += state.u - 1
        state.u = 1
        return self._book_frame(frame.topic, "delta", state)

    def snapshot(self, topic: str) -> str | None:
        """The topic's current book as a snapshot frame; None before the replay reached its recorded snapshot."""
        state = self._books.get(topic)
        return None if state is None else self._book_frame(topic, "snapshot", state)

    @staticmethod
    def _book_frame(topic: str, kind: str, state: _TopicBook) -> str:
        depth = int(topic.split(".")[1])
        bids, asks = state.book.levels(depth)
        data = {"s": topic.rpartition(".")[2], "b": bids, "a": asks, "u": state.u, "seq": state.seq}
        message: dict[str, Any] = {"topic": topic, "type": kind, "ts": state.ts, "data": data}
        if state.cts is not None:
            message["cts"] = state.cts
        return dumps(message)


class BybitConversation:
    """Answers one client's ``op`` requests: subscribe, unsubscribe, ping."""

    def __init__(self, session: Session, market: BybitMarket, venue: str, subscribed: Callable[[], None]) -> None:
        self._session = session
        self._market = market
        self._spot = venue == BYBIT_SPOT
        self._subscribed = subscribed

    async def run(self) -> None:
        try:
            async for text in self._session.ws:
                await self._answer(text if isinstance(text, str) else text.decode(errors="replace"))
        except ConnectionClosed:
            pass

    def _reply(self, op: str, success: bool, ret_msg: str, req_id: Any) -> str:
        """The venue's reply shapes (the recorded acks; the v5 docs' public pongs, ``op`` "ping" and ``ret_msg``
        "pong"): linear always echoes ``req_id`` and says ``ret_msg`` "" on a subscribe; spot echoes ``req_id``
        only when one was sent and says ``ret_msg`` "subscribe"."""
        reply: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": self._session.conn_id}
        if req_id is not None or not self._spot:
            reply["req_id"] = "" if req_id is None else req_id
        reply["op"] = op
        return dumps(reply)

    async def _answer(self, text: str) -> None:
        try:
            request = json.loads(text)
            op, req_id, args = request["op"], request.get("req_id"), request.get("args", [])
            if not (isinstance(op, str) and isinstance(args, list) and all(isinstance(a, str) for a in args)):
                raise TypeError
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            await self._session.send(self._reply("", False, f"error:invalid request: {text[:80]}", None))
            return
        if op == "ping":
            await self._session.send(self._reply("ping", True, "pong", req_id))
        elif op == "subscribe":
            await self._subscribe(args, req_id)
        elif op == "unsubscribe":
            self._session.topics.difference_update(args)
            await self._session.send(self._reply(op, True, "" if not self._spot else op, req_id))
        else:
            await self._session.send(self._reply(op, False, f"error:unknown op {op[:40]}", req_id))

    async def _subscribe(self, topics: list[str], req_id: Any) -> None:
        """Known topics are subscribed even when others in the request are not (one error reply names those);
        an ``orderbook`` topic gets the current book first, as the venue sends a snapshot on subscribing."""
        if self._spot and len(topics) > _SPOT_MAX_ARGS:
            reason = f"error:args size {len(topics)} > {_SPOT_MAX_ARGS} (spot takes at most 10 topics a request)"
            await self._session.send(self._reply("subscribe", False, reason, req_id))
            return
        unknown = [t for t in topics if t not in self._market.topics]
        again = [t for t in topics if t in self._session.topics]
        fresh = [t for t in topics if t not in unknown and t not in again]
        session = self._session
        async with session.lock:
            # no await between the books' state and the subscription: the replay sends what comes after it
            snapshots = [s for s in map(self._market.snapshot, fresh) if s is not None]
            session.topics.update(fresh)
            if unknown or again:
                reasons = [f"error:handler not found,topic:{t}" for t in unknown]
                reasons += [f"error:already subscribed,topic:{t}" for t in again]
                await session.send_locked(self._reply("subscribe", False, ";".join(reasons), req_id))
            else:
                await session.send_locked(self._reply("subscribe", True, "subscribe" if self._spot else "", req_id))
            for snapshot in snapshots:
                await session.send_locked(snapshot)
        if fresh:
            self._subscribed()
