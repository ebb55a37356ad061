"""Dagster resources: the only way assets reach Redis."""

from __future__ import annotations

import dagster as dg
import redis
from pydantic import Field

from shadow_pipeline.redis_io.connect import connect, resolve_url
from shadow_pipeline.redis_io.url import redact


class RedisResource(dg.ConfigurableResource):
    """Redis for ticks, KPIs and alerts. Without ``url`` it uses ``$REDIS_URL``, else an embedded server.

    TLS: use a ``rediss://`` URL; ``ssl_ca_certs`` etc. may also be given as URL query parameters.
    """

    url: str | None = Field(
        default=None,
        description="redis://[user:password@]host:port/db, rediss:// for TLS, or unix://. "
        "Default: $REDIS_URL, or an embedded server started for this process.",
    )
    ssl_ca_certs: str | None = Field(default=None, description="CA bundle that signed the server certificate.")
    ssl_certfile: str | None = Field(default=None, description="Client certificate, for mutual TLS.")
    ssl_keyfile: str | None = Field(default=None, description="Client key, for mutual TLS.")
    socket_timeout: float = Field(default=30.0, description="Seconds; keep above any blocking read.")

    def get_client(self) -> redis.Redis:
        """A connected client; raises RedisUnavailable with a redacted URL when Redis is unreachable."""
        ssl: dict[str, str] = {
            name: value
            for name, value in {
                "ssl_ca_certs": self.ssl_ca_certs,
                "ssl_certfile": self.ssl_certfile,
                "ssl_keyfile": self.ssl_keyfile,
            }.items()
            if value
        }
        return connect(self.url, socket_timeout=self.socket_timeout, **ssl)  # type: ignore[arg-type]

    def describe(self) -> str:
        """The URL in use, safe to log or show in the UI."""
        return redact(resolve_url(self.url))
