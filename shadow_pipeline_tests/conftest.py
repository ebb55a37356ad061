"""Shared fixtures: a real Redis server (started here, or the one at $REDIS_URL) and the market data folder; the
``dagster_instance`` marker on every test that uses a Dagster instance."""

from __future__ import annotations

import inspect
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import hypothesis  # noqa: F401  imported here, at collection: see the note below
import pytest
import redis

from shadow_pipeline import settings
from shadow_pipeline.redis_io.server import RedisServer, start_server
from shadow_pipeline_tests.instance_helpers import dagster_instance, drop_templates, project_home

# hypothesis's pytest plugin imports hypothesis in the terminal summary when no test module did; pytest then
# rewrites its modules there, deep in the stack, where CPython 3.11.7's ast.parse can fail with "SystemError: AST
# constructor recursion depth mismatch" and turn a green session red (seen running test_dagster_grouped.py alone).
MARKET_DATA = settings.market_data_dir(Path(__file__).resolve().parents[2] / "shared/data/market")
INSTANCE_MARK = "dagster_instance"
_INSTANCE_MAKERS = (dagster_instance, project_home)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{INSTANCE_MARK}: uses a Dagster instance (set automatically; CI runs these again on PostgreSQL)"
    )


def _uses_instance(code: types.CodeType, scope: dict[str, object], seen: set[types.CodeType]) -> bool:
    """Whether this code, or a test helper it calls (function or class of shadow_pipeline_tests), makes an instance."""
    if code in seen:
        return False
    seen.add(code)
    for name in code.co_names:
        target = scope.get(name)
        if any(target is maker for maker in _INSTANCE_MAKERS):
            return True
        if not getattr(target, "__module__", "").startswith("shadow_pipeline_tests"):
            continue
        members = vars(target).values() if inspect.isclass(target) else [target]
        for member in members:
            function = inspect.unwrap(member) if callable(member) else None
            if isinstance(function, types.FunctionType) and _uses_instance(
                function.__code__, function.__globals__, seen
            ):
                return True
    nested = (const for const in code.co_consts if isinstance(const, types.CodeType))
    return any(_uses_instance(inner, scope, seen) for inner in nested)


def _function_uses_instance(function: Callable[..., object], seen: set[types.CodeType]) -> bool:
    function = inspect.unwrap(function)
    return isinstance(function, types.FunctionType) and _uses_instance(function.__code__, function.__globals__, seen)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that make a Dagster instance, in their body, a helper or a fixture, so that
    ``pytest -m dagster_instance`` selects exactly them (.ci/run's PostgreSQL pass) and no list goes stale."""
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        seen: set[types.CodeType] = set()
        fixtures = [defs[-1].func for defs in item._fixtureinfo.name2fixturedefs.values() if defs]
        if any(_function_uses_instance(function, seen) for function in [item.function, *fixtures]):
            item.add_marker(INSTANCE_MARK)


def pytest_sessionfinish() -> None:
    drop_templates()


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
