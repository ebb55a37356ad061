"""Dagster resources: the only way assets reach Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import dagster as dg
import redis
from pydantic import Field
from upath import UPath

from shadow_pipeline.domain.kpis.rollup import PROFILES_FOLDER, profile_key
from shadow_pipeline.domain.market.shards import MAX_SHARDS, instrument_stream, shard_streams
from shadow_pipeline.ingest.landing import LandingStore
from shadow_pipeline.ingest.options import IngestOptions, IngestSettings, default_consumer_name
from shadow_pipeline.redis_io.connect import connect, resolve_url
from shadow_pipeline.redis_io.keys import ALERT_STREAM, TICK_STREAM, dead_letter_stream
from shadow_pipeline.redis_io.url import redact
from shadow_pipeline.settings import artifacts_dir, data_dir, redis_url, slack_token, stream_shards

URL_SETTING = "the redis resource's url"  # what a RedisConfigError names when RedisResource.url is not valid


class RedisResource(dg.ConfigurableResource):
    """Redis for ticks, KPIs and alerts. Without ``url`` it uses ``$REDIS_URL``, else an embedded server.

    The URL is read from the environment here, when the run uses the resource, so a password in it never
    enters run config. Dagster stores a ``url`` given as a value (in run config or bound in Python) in the
    run and in the job's snapshot; a URL with a password goes in as ``dg.EnvVar`` (``{env: VAR}`` in YAML),
    which Dagster stores as the variable's name.

    TLS: use a ``rediss://`` URL; ``ssl_ca_certs`` etc. may also be given as URL query parameters.
    """

    url: str | None = Field(
        default=None,
        description="redis://[user:password@]host:port/db, rediss:// for TLS, or unix://. "
        "Default: $REDIS_URL, or an embedded server started for this process. Dagster stores this value in "
        "the run: with a password, give it as {env: VAR}.",
    )
    ssl_ca_certs: str | None = Field(default=None, description="CA bundle that signed the server certificate.")
    ssl_certfile: str | None = Field(default=None, description="Client certificate, for mutual TLS.")
    ssl_keyfile: str | None = Field(default=None, description="Client key, for mutual TLS.")
    socket_timeout: float = Field(default=30.0, description="Seconds; keep above any blocking read.")

    def get_client(self, **overrides: Any) -> redis.Redis:
        """A connected client. Raises RedisRefused when Redis refuses the credentials or the user, RedisUnavailable
        when it cannot be reached, RedisConfigError for a URL redis-py would misread: each names the URL redacted."""
        ssl: dict[str, str] = {
            name: value
            for name, value in {
                "ssl_ca_certs": self.ssl_ca_certs,
                "ssl_certfile": self.ssl_certfile,
                "ssl_keyfile": self.ssl_keyfile,
            }.items()
            if value
        }
        options: dict[str, Any] = {"socket_timeout": self.socket_timeout, **ssl, **overrides}
        return connect(self._resolved_url(), **options)

    def describe(self) -> str:
        """The URL in use, safe to log or show in the UI."""
        return redact(self._resolved_url())

    def _resolved_url(self) -> str:
        """The URL in use. The code location binds ``url`` to ``dg.EnvVar("REDIS_URL")`` (defs/resources.py),
        which reaches the resource resolved: that value is taken as the variable's, so that an error about it
        names ``REDIS_URL``, the setting a user has to fix."""
        given = None if self.url == redis_url() else self.url
        return resolve_url(given, URL_SETTING)


LANDING_FOLDER = "landing"  # the landing zone's folder in a data dir, beside the asset store


class LandingResource(dg.ConfigurableResource):
    """The landing zone that consumers write before they XACK; raw_ticks reads its partitions from here."""

    base_path: str | None = Field(
        default=None,
        description="Local folder or object-store URL. Default: $SHADOW_DATA_DIR/landing.",
    )

    @classmethod
    def under(cls, data_dir: str) -> LandingResource:
        """The landing zone of a data folder (``<data_dir>/landing``), beside the asset store."""
        return cls(base_path=str(UPath(data_dir) / LANDING_FOLDER))

    @property
    def data_dir(self) -> str | None:
        """The data folder this landing zone is the ``landing`` folder of (``under``), else None: the default."""
        if self.base_path and UPath(self.base_path).name == LANDING_FOLDER:
            return str(UPath(self.base_path).parent)
        return None

    def store(self, stream: str = TICK_STREAM) -> LandingStore:
        """The landing zone of ``stream``. Another stream lands in a folder of its own under ``streams/``: entry
        ids of two streams can coincide, and landing dedups by entry id."""
        root = UPath(self.base_path) if self.base_path else UPath(data_dir()) / LANDING_FOLDER
        return LandingStore(root if stream == TICK_STREAM else root / "streams" / quote(stream, safe=""))


class TickStreamResource(dg.ConfigurableResource, IngestSettings):
    """Where the ticks come from and how a consumer reads them (``IngestSettings``, the fields the ``ingest``
    command takes too); shared by the ingest assets and the sensor."""

    consumer_slot: str = Field(
        default="dagster",
        description="The drain's consumer name is <host>-<slot>-<run id prefix>: concurrent runs (a backfill) never "
        "re-read each other's pending entries; a run killed mid-drain is dead after dead_after_ms and the next drain "
        "claims what it held.",
    )

    shards: int | None = Field(
        default=None,
        ge=1,
        le=MAX_SHARDS,
        description="Streams the ticks are spread over by instrument (shard i of lob:ticks is lob:ticks:{si}), one "
        "consumer group each. Default: $SHADOW_STREAM_SHARDS, else 1 (the one stream). docs/ingest.md, Shards.",
    )

    @property
    def shard_count(self) -> int:
        """SettingsError (a ValueError, one line) for a malformed $SHADOW_STREAM_SHARDS when ``shards`` is unset."""
        return self.shards or stream_shards()

    @property
    def streams(self) -> list[str]:
        """Every shard stream, shard 0 first: ``[stream]`` with one shard."""
        return shard_streams(self.stream, self.shard_count)

    def stream_of(self, instrument: str) -> str:
        """The shard stream that holds ``instrument``'s ticks."""
        return instrument_stream(self.stream, instrument, self.shard_count)

    @property
    def dead_letter_streams(self) -> list[str]:
        return [dead_letter_stream(stream) for stream in self.streams]

    def options(self, run_id: str = "", shard_stream: str | None = None) -> IngestOptions:
        """``run_id``: the Dagster run draining (its prefix names the consumer); ``shard_stream``: the shard it
        drains (default: the base stream). Consumers of different shards get different names: they write
        temporary files into the same landing zone, and a writer removes what one of its own name left there."""
        slot = f"{self.consumer_slot}-{run_id[:8]}" if run_id else self.consumer_slot
        settings = self.ingest_settings()
        if shard_stream is not None and shard_stream != self.stream:
            slot = f"{slot}-s{self.streams.index(shard_stream)}"
            settings["stream"] = shard_stream
        return IngestOptions(**settings, consumer=default_consumer_name(slot))


class ArtifactsResource(dg.ConfigurableResource):
    """Reports for people and downstream tools (snapshot JSON, Markdown, plots), outside Dagster's storage."""

    base_path: str | None = Field(default=None, description="Folder. Default: $SHADOW_ARTIFACTS_DIR, else ./artifacts.")

    def shadow_folder(self, hour: str, symbol: str) -> Path:
        return self.base() / "shadow" / hour / symbol

    def profile_folder(self, hour: str, symbol: str, profile: str) -> Path:
        """Where a shadow run keeps its result under its profile, beside the partition's latest (ValueError for a
        name that cannot be a folder): a second profile on the hour does not overwrite the first."""
        return self.shadow_folder(hour, symbol) / PROFILES_FOLDER / profile_key(profile)

    def rollup_folder(self, day: str, symbol: str) -> Path:
        return self.base() / "rollup" / day / symbol

    def dryrun_folder(self, hour: str, symbol: str) -> Path:
        return self.base() / "dryrun" / hour / symbol

    def tune_folder(self, hour: str, symbol: str) -> Path:
        return self.base() / "tune" / hour / symbol

    def base(self) -> Path:
        return Path(self.base_path) if self.base_path else artifacts_dir()


class AlertsResource(dg.ConfigurableResource):
    """Where failed check evaluations are announced: a Redis stream always, Slack when a token is configured."""

    stream: str = Field(default=ALERT_STREAM, description="Redis stream of alerts (one entry per failed check).")
    maxlen: int = Field(default=10_000, description="MAXLEN ~ of the alert stream.")
    slack_token: str | None = Field(
        default=None, description="Slack bot token; default $SLACK_BOT_TOKEN. Without one, no Slack message."
    )
    slack_channel: str = Field(default="#shadow-alerts", description="Slack channel for alerts.")

    def post_to_slack(self, text: str) -> bool:
        """Post ``text``; False when Slack is not configured. Errors propagate so the caller can log them."""
        token = self.slack_token or slack_token()
        if not token:
            return False
        from dagster_slack import SlackResource

        SlackResource(token=token).get_client().chat_postMessage(channel=self.slack_channel, text=text)
        return True
