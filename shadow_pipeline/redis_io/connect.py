"""One way to get a Redis client, for the CLI, Dagster resources and tests alike."""

from __future__ import annotations

import logging
from typing import Any

import redis

from shadow_pipeline.redis_io.server import process_server
from shadow_pipeline.redis_io.url import RedisConfigError, configured_url, redact, redact_text, validate_url

log = logging.getLogger(__name__)


class RedisUnavailable(ConnectionError):
    """Redis could not be reached; the message names the (redacted) URL and what to check."""


class RedisRefused(RedisUnavailable):
    """Redis answered but refused the credentials (WRONGPASS, NOAUTH) or the user (NOPERM): retrying is futile."""


def resolve_url(url: str | None = None, setting: str = "the Redis URL") -> str:
    """An explicit URL, else ``$REDIS_URL``, else the URL of this process's embedded server; ``setting`` names
    where the explicit URL came from (``--redis-url``), for the error when it is not valid."""
    if url:
        return validate_url(url, setting)
    return configured_url() or process_server().url


def connect(url: str | None = None, *, check: bool = True, embedded_advice: bool = True, **options: Any) -> redis.Redis:
    """A client for ``url`` (see :func:`resolve_url`); with ``check`` it PINGs so a bad URL fails here.
    ``embedded_advice=False`` for a command that needs the feed's own Redis (an embedded one would be empty): an
    unreachable server is then not answered with "unset REDIS_URL".

    ``options`` go to ``redis.Redis.from_url`` (``ssl_ca_certs``, ``ssl_certfile``, ``socket_timeout`` ...).
    """
    resolved = resolve_url(url)
    options.setdefault("socket_connect_timeout", 5.0)
    options.setdefault("socket_timeout", 30.0)
    options.setdefault("health_check_interval", 30)
    try:
        client = redis.Redis.from_url(resolved, **options)
    except (TypeError, ValueError, redis.RedisError):
        raise _bad_options(resolved) from None
    if check:
        try:
            client.ping()
        except TypeError:  # the first connection is built here: "got an unexpected keyword argument 'ssl_...'"
            raise _bad_options(resolved) from None
        except (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError) as exc:
            raise RedisRefused(f"Redis at {redact(resolved)} refused the credentials: {_reason(exc)}") from None
        except redis.exceptions.NoPermissionError as exc:
            raise RedisRefused(f"Redis at {redact(resolved)} refused the user: {_reason(exc)}") from None
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
            fallback = ", or unset REDIS_URL to use an embedded server" if embedded_advice else ""
            raise RedisUnavailable(
                f"cannot reach Redis at {redact(resolved)}: {_reason(exc).rstrip('.')}. "
                f"Check that the server runs and the URL is right{fallback}."
            ) from None
        except redis.exceptions.ResponseError as exc:  # an error reply to the handshake (AUTH, HELLO, SELECT)
            raise RedisRefused(f"Redis at {redact(resolved)} refused the connection: {_reason(exc)}") from None
        log.info("connected to Redis at %s", redact(resolved))
    return client


def _bad_options(url: str) -> RedisConfigError:
    """The URL passed validate_url, so one of ``options`` is wrong (a TLS option on redis://); redis-py's
    message may quote the URL, so it is not shown."""
    return RedisConfigError(f"redis-py refuses the options given for Redis at {redact(url)}")


def _reason(exc: BaseException) -> str:
    """An exception's text on one line, with any URL in it redacted."""
    return " ".join(redact_text(str(exc)).split()) or type(exc).__name__
