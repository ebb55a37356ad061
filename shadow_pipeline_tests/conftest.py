"""Shared fixtures: a real Redis server (started here, or the one at $REDIS_URL) and the market data folder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from shadow_pipeline import settings
from shadow_pipeline.redis_io.server import RedisServer, start_server

MARKET_DATA = settings.market_data_dir(Path(__file__).resolve().parents[2] / "shared/data/market")


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """$REDIS_URL when set (e.g. the CI machine's Redis 7), else a private server for this test session."""
    external = settings.redis_url()
    if external:
        yield external
        return
    server = start_server()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def stream(redis_client: redis.Redis) -> Iterator[str]:
    """A stream key of this test alone, deleted afterwards (tests may share an external Redis)."""
    key = f"test:{uuid.uuid4().hex[:12]}:ticks"
    yield key
    for pattern in (f"{key}*", f"shadow:guard:{{{key}*"):  # the stream, its dead letters, its guard state
        for name in redis_client.scan_iter(match=pattern):
            redis_client.delete(name)


@pytest.fixture
def own_server() -> Iterator[RedisServer]:
    """A server that the test may stop, restart or reconfigure."""
    server = start_server()
    yield server
    server.stop()


def market_file(relative: str) -> Path:
    path = MARKET_DATA / relative
    if not path.exists():
        pytest.skip(f"recorded market data not found at {path} (set SHADOW_MARKET_DATA to the market folder)")
    return path
