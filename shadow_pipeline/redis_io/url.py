"""Redis URLs: where they come from and how they may be shown.

A Redis URL can carry a password, and redis-py keeps it in ``connection_kwargs``; every log line, error
message and piece of Dagster metadata therefore goes through :func:`redact`.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from shadow_pipeline.settings import redis_url

SUPPORTED_SCHEMES = ("redis", "rediss", "unix")


class RedisConfigError(ValueError):
    """A Redis URL or option that cannot work, explained without echoing a password."""


def redact(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (``rediss://user:***@host:6380/0``)."""
    parts = urlsplit(url)
    if parts.password is None and "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    masked = f"{user}:***@{hostport}" if user else f":***@{hostport}"
    if parts.password is None and ":" not in userinfo:
        # A bare token before '@' is a password in redis-py's eyes (redis://secret@host).
        masked = f"***@{hostport}"
    return urlunsplit((parts.scheme, masked, parts.path, parts.query, parts.fragment))


def validate_url(url: str) -> str:
    """Reject URLs that redis-py would misread, with a message that is safe to print."""
    scheme = urlsplit(url).scheme
    if scheme not in SUPPORTED_SCHEMES:
        raise RedisConfigError(
            f"unsupported Redis URL scheme {scheme!r} in {redact(url)}: use redis://, rediss:// (TLS) or unix://"
        )
    if scheme != "unix":
        parts = urlsplit(url)
        try:
            _ = parts.port
        except ValueError as exc:
            raise RedisConfigError(f"bad port in Redis URL {redact(url)}") from exc
        if not parts.hostname:
            raise RedisConfigError(f"no host in Redis URL {redact(url)}")
    return url


def configured_url() -> str | None:
    """The URL from ``$REDIS_URL``, or None when the project should start its own server."""
    url = redis_url()
    return validate_url(url) if url else None
