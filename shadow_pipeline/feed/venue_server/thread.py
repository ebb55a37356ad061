"""A venue server on its own event loop in a daemon thread, for synchronous tests and the command line."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from types import TracebackType

from shadow_pipeline.feed.venue_server.config import ServerStats
from shadow_pipeline.feed.venue_server.server import VenueServer

_START_TIMEOUT_S = 30.0


class ServerThread:
    """``with ServerThread(server) as running:`` serves until the block ends; a failure to start (a port in use)
    is raised from ``__enter__``."""

    def __init__(self, server: VenueServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"venue-server-{server.venue}", daemon=True)
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._ws_url = self._rest_url = ""

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.server.start())
            self._ws_url, self._rest_url = self.server.ws_url, self.server.rest_url
        except BaseException as exc:  # handed to the starting thread, which raises it
            self._failure = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self.server.stop())
        self._loop.close()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        self._started.wait(_START_TIMEOUT_S)
        if self._failure is not None:
            raise self._failure
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(_START_TIMEOUT_S)

    @property
    def ws_url(self) -> str:
        return self._ws_url

    @property
    def rest_url(self) -> str:
        return self._rest_url

    @property
    def stats(self) -> ServerStats:
        """A copy taken on the server's loop while it runs, so that its counters are read together."""

        async def copy() -> ServerStats:
            stats = self.server.stats
            return dataclasses.replace(stats, faults=dict(stats.faults))

        if not self._loop.is_running():
            return dataclasses.replace(self.server.stats, faults=dict(self.server.stats.faults))
        return asyncio.run_coroutine_threadsafe(copy(), self._loop).result(_START_TIMEOUT_S)

    def wait_done(self, timeout: float) -> bool:
        """Whether every frame of the source was sent (or lost) within ``timeout`` seconds."""
        return self.server.finished.wait(timeout)
