"""One way to get a Redis client, for the CLI, Dagster resources and tests alike."""

from __future__ import annotations

import logging
from typing import Any

import redis

from shadow_pipeline.redis_io.server import process_server
from shadow_pipeline.redis_io.url import configured_url, redact, validate_url

log = logging.getLogger(__name__)


class RedisUnavailable(ConnectionError):
    """Redis could not be reached; the message names the (redacted) URL and what to check."""


def resolve_url(url: str | None = None) -> str:
    """An explicit URL, else ``$REDIS_URL``, else the URL of this process's embedded server."""
    if url:
        return validate_url(url)
    return configured_url() or process_server().url


def connect(url: str | None = None, *, check: bool = True, **options: Any) -> redis.Redis:
    """A client for ``url`` (see :func:`resolve_url`); with ``check`` it PINGs so a bad URL fails here.

    ``options`` go to ``redis.Redis.from_url`` (``ssl_ca_certs``, ``ssl_certfile``, ``socket_timeout`` ...).
    """
    resolved = resolve_url(url)
    options.setdefault("socket_connect_timeout", 5.0)
    options.setdefault("socket_timeout", 30.0)
    options.setdefault("health_check_interval", 30)
    client = redis.Redis.from_url(resolved, **options)
    if check:
        try:
            client.ping()
        except redis.exceptions.AuthenticationError as exc:
            raise RedisUnavailable(f"Redis at {redact(resolved)} refused the credentials: {exc}") from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            raise RedisUnavailable(
                f"cannot reach Redis at {redact(resolved)}: {exc}. "
                "Check that the server runs and REDIS_URL is right, or unset REDIS_URL to use an embedded server."
            ) from None
        log.info("connected to Redis at %s", redact(resolved))
    return client
