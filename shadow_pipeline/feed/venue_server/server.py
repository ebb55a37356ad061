"""A venue's public market-data endpoint on localhost, playing a frame source through the venue's own protocol.

One replay cursor per server: every connection sees the same market, as on the venue, and the cursor advances only
while a connection is subscribed, so a test's client never misses the start. Sends are awaited one by one, so at
speed 0 the replay goes as fast as the clients read (the slow-reader fault cuts one that stops reading).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from http import HTTPStatus

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from shadow_pipeline.feed.venue_server import binance
from shadow_pipeline.feed.venue_server.bybit import BybitConversation, BybitMarket
from shadow_pipeline.feed.venue_server.config import ServerFaults, ServerStats
from shadow_pipeline.feed.venue_server.session import Session
from shadow_pipeline.feed.venue_server.source import (
    BINANCE_SPOT,
    BINANCE_USDM,
    Frame,
    FrameKind,
    FrameSource,
    check_venue,
    is_bybit,
)

# Binance pings every 3 min (USD-M) or 20 s (spot) and drops a client that has not answered in 10 min or 1 min.
_PINGS: dict[str, tuple[float | None, float | None]] = {BINANCE_USDM: (180.0, 600.0), BINANCE_SPOT: (20.0, 60.0)}
_MAX_MESSAGE = 1 << 16  # client requests are small; anything larger is not one
_AGE_CLOSE = "max connection age"


def _malformed(text: str) -> str:
    """Cut short mid-frame: not JSON, as a truncated or corrupted message would be."""
    return text[: max(1, len(text) // 2)] + "\x00"


class VenueServer:
    """venue: 'bybit-linear' | 'bybit-spot' | 'binance-usdm' | 'binance-spot'. See docs/venue-server.md."""

    def __init__(
        self,
        venue: str,
        frames: FrameSource,
        *,
        speed: float = 0.0,
        faults: ServerFaults = ServerFaults(),  # noqa: B008 (frozen)
        host: str = "127.0.0.1",
        port: int = 0,
        ping_interval_s: float | None = None,
    ) -> None:
        self.venue = check_venue(venue)
        if frames.venue != venue:
            raise ValueError(f"the frames are of venue {frames.venue}, not {venue}")
        if not 0 <= speed < float("inf"):
            raise ValueError(f"speed must be a finite number >= 0, got {speed}")
        if ping_interval_s is not None and not 0 < ping_interval_s < float("inf"):
            raise ValueError(f"ping_interval_s must be a finite number > 0, got {ping_interval_s}")
        if faults.restart_at is not None and not is_bybit(venue):
            raise ValueError("restart_at is a Bybit fault (u = 1 is Bybit's restart signal)")
        self._source = frames
        self._speed = speed
        self._faults = faults
        self._host = host
        self._port = port
        default_ping, self._ping_timeout = _PINGS.get(venue, (None, None))
        self._ping_interval = default_ping if ping_interval_s is None else ping_interval_s
        self._bybit = BybitMarket(frames) if is_bybit(venue) else None
        # Bybit: one path per market; Binance: the client appends /stream?streams=...
        self._ws_path = f"/v5/public/{venue.removeprefix('bybit-')}" if self._bybit else ""
        self._binance = None if is_bybit(venue) else binance.BinanceMarket(frames)
        self.stats = ServerStats()
        self.finished = threading.Event()  # set with stats.done; read from any thread
        self._sessions: set[Session] = set()
        self._subscriptions = 0  # every subscribing connection bumps it: a stall ends on a reconnect
        self._wake: asyncio.Event | None = None
        self._server: Server | None = None
        self._player: asyncio.Task[None] | None = None
        self._to_lose = 0
        self._fired: set[str] = set()

    @property
    def port(self) -> int:
        assert self._server is not None, "the server is started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def ws_url(self) -> str:
        return f"ws://{self._host}:{self.port}{self._ws_path}"

    @property
    def rest_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._server = await serve(
            self._handle,
            self._host,
            self._port,
            process_request=self._http,
            ping_interval=self._ping_interval,
            ping_timeout=self._ping_timeout,
            max_size=_MAX_MESSAGE,
        )
        self._player = asyncio.create_task(self._play())

    async def stop(self) -> None:
        if self._player is not None:
            self._player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._player
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --- connections -------------------------------------------------------------------------------------

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        """REST requests are answered here; WebSocket paths go on to the handshake (None)."""
        path, _, query = request.path.partition("?")
        if self._bybit is not None:
            return None if path == self._ws_path else self._json(connection, 404, {"ret_msg": "no such path"})
        if path == "/stream":
            unknown = [name for name in binance.streams_of(query) if name not in self._binance_market.topics]
            if unknown:
                msg = f"Invalid stream(s): {unknown}; this server has {sorted(self._binance_market.topics)}"
                return self._json(connection, 400, {"code": -1121, "msg": msg})
            return None
        if path == binance.REST_PATHS[self.venue]:
            try:
                body = self._binance_market.rest(query)
            except binance.RestError as exc:
                return self._json(connection, 400, exc.body)
            self.stats.rest_snapshots += 1
            return self._respond(connection, 200, body)
        return self._json(connection, 404, {"code": -1000, "msg": f"no such path: {path[:80]}"})

    @property
    def _binance_market(self) -> binance.BinanceMarket:
        assert self._binance is not None
        return self._binance

    def _json(self, connection: ServerConnection, status: int, body: dict[str, object]) -> Response:
        return self._respond(connection, status, binance.dumps(body))

    @staticmethod
    def _respond(connection: ServerConnection, status: int, body: str) -> Response:
        response = connection.respond(HTTPStatus(status), body)
        del response.headers["Content-Type"]
        response.headers["Content-Type"] = "application/json"
        return response

    async def _handle(self, ws: ServerConnection) -> None:
        session = Session(ws, self._faults.slow_reader_seconds, lambda: self._fire("slow_reader"))
        self.stats.connections += 1
        self._sessions.add(session)
        expiry = None
        if self._faults.max_connection_seconds is not None:
            expiry = asyncio.create_task(self._expire(session, self._faults.max_connection_seconds))
        try:
            if self._bybit is not None:
                await BybitConversation(session, self._bybit, self.venue, self._subscribed).run()
            else:
                session.topics.update(binance.streams_of(ws.request.path.partition("?")[2] if ws.request else ""))
                if session.topics:
                    self._subscribed()
                await binance.BinanceConversation(session, self._binance_market.topics, self._subscribed).run()
        finally:
            session.closed = True
            self._sessions.discard(session)
            if expiry is not None:
                expiry.cancel()

    def _subscribed(self) -> None:
        self._subscriptions += 1
        assert self._wake is not None
        self._wake.set()

    async def _expire(self, session: Session, seconds: float) -> None:
        """Binance closes every connection at 24 h; here after ``seconds``, with a normal close."""
        await asyncio.sleep(seconds)
        self._fire("max_connection_age")
        async with session.lock:
            session.closed = True
        await session.close(1000, _AGE_CLOSE)

    def _fire(self, fault: str) -> None:
        self.stats.fired(fault)
        self._fired.add(fault)

    def _once(self, fault: str, index: int | None, at: int) -> bool:
        """Whether the once-only ``fault`` set at ``index`` fires now, at count ``at``."""
        if index is None or index != at or fault in self._fired:
            return False
        self._fire(fault)
        return True

    # --- the replay --------------------------------------------------------------------------------------

    async def _play(self) -> None:
        loop = asyncio.get_running_loop()
        anchor: tuple[float, int] | None = None  # (loop time, frame stamp) the pacing counts from
        sent_frames = deltas = 0
        for position, frame in enumerate(self._source):
            if self._to_lose:
                self._to_lose -= 1
                self.stats.frames_lost += 1
                self._apply(position, frame)
                continue
            if not self._has_subscriber():
                await self._wait_for_subscriber()
                anchor = None
            if self._once("stall", self._faults.stall_after, sent_frames):
                await self._stall(self._faults.stall_seconds)
                anchor = None
            if self._speed > 0:
                if anchor is None:
                    anchor = (loop.time(), frame.ts_local)
                delay = anchor[0] + (frame.ts_local - anchor[1]) / 1e9 / self._speed - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            if not self._has_subscriber():  # every client left while it waited
                await self._wait_for_subscriber()
                anchor = None
            text = self._apply(position, frame)
            recipients = [s for s in self._sessions if frame.topic in s.topics and not s.closed]
            if not recipients:
                continue
            if frame.kind is FrameKind.BOOK_DELTA:
                deltas += 1
                if self._once("gap", self._faults.gap_at, deltas - 1):
                    continue
                if self._bybit is not None and self._once("restart", self._faults.restart_at, deltas - 1):
                    text = self._bybit.restart(frame)
            if self._once("malformed", self._faults.malformed_at, sent_frames):
                text = _malformed(text)
            sent_frames += 1
            for session in recipients:
                await self._send_market(session, text)
        if self._binance is not None:
            self._binance.play(len(self._source), None)
        self.stats.done = True
        self.finished.set()

    def _apply(self, position: int, frame: Frame) -> str:
        if self._bybit is not None:
            return self._bybit.play(frame)
        return self._binance_market.play(position, frame)

    def _has_subscriber(self) -> bool:
        return any(session.topics and not session.closed for session in self._sessions)

    async def _wait_for_subscriber(self) -> None:
        assert self._wake is not None
        while not self._has_subscriber():
            self._wake.clear()
            await self._wake.wait()

    async def _stall(self, seconds: float) -> None:
        """Send nothing for ``seconds`` (connections stay open and answer pings), or until a client subscribes
        anew: a client's watchdog reconnecting is served at once."""
        assert self._wake is not None
        subscriptions = self._subscriptions
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while self._subscriptions == subscriptions:
                    self._wake.clear()
                    await self._wake.wait()

    async def _send_market(self, session: Session, text: str) -> None:
        if not await session.send(text):
            return
        self.stats.frames_sent += 1
        session.sent += 1
        if self._once("drop", self._faults.drop_after, session.sent):
            session.cut()
            self._to_lose = self._faults.lose_frames
            if self._to_lose:
                self._fire("lose_frames")
