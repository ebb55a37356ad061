"""``shadow-pipeline reshard``: the live feed's seq counters carried to a new shard count (registered by ``cli``).

Run between the drain with the old count and the producers' restart with the new one (docs/ingest.md, "Shards"):
without it an instrument that moves to another shard stream numbers its ticks from 1 again.

It needs the Redis the feed and the consumers use: an embedded server would be a new, empty one, where the step
could only say that nothing is there, so none is started.
"""

from __future__ import annotations

import json

import click
import redis

from shadow_pipeline.cli_errors import fail as _fail
from shadow_pipeline.domain.market.shards import MAX_SHARDS
from shadow_pipeline.redis_io.connect import RedisUnavailable, connect, resolve_url
from shadow_pipeline.redis_io.keys import CONSUMER_GROUP
from shadow_pipeline.redis_io.reshard import check_counts, reshard_counters
from shadow_pipeline.redis_io.streams import DEFAULT_STREAM
from shadow_pipeline.redis_io.url import RedisConfigError, configured_url, redact
from shadow_pipeline.settings import REDIS_URL_ENV

_COUNT = click.IntRange(1, MAX_SHARDS)


@click.command("reshard")
@click.option("--stream", default=DEFAULT_STREAM, show_default=True, help="The base tick stream (not a shard's).")
@click.option("--from", "old", type=_COUNT, required=True, help="The shard count the producers and ingest ran with.")
@click.option("--to", "new", type=_COUNT, required=True, help="The shard count they will run with.")
@click.option("--group", default=CONSUMER_GROUP, show_default=True, help="The consumer group that must have drained.")
@click.option("--redis-url", default=None, help=f"Default: ${REDIS_URL_ENV} (no embedded server: it would be empty).")
def reshard_command(stream: str, old: int, new: int, group: str, redis_url: str | None) -> None:
    """Carry each instrument's feed seq counter to its shard stream under the new count, before the producers
    restart: refuses unless every old shard is drained; never lowers a counter, so a second run changes nothing.

    Exit status: 0 carried (one JSON line), 2 an error (one `error:` line)."""
    url = None
    try:
        check_counts(old, new)  # before Redis: a mistyped count is told as such, whatever the server
        if not redis_url and not configured_url():
            raise ValueError(f"give --redis-url or set ${REDIS_URL_ENV}: the Redis the feed and ingest use")
        url = resolve_url(redis_url, "--redis-url")
        result = reshard_counters(connect(url, embedded_advice=False), stream, old, new, group)
    except redis.RedisError as exc:  # NOPERM, WRONGTYPE, a dropped connection: they name no server
        _fail(f"Redis at {redact(url or '')}: {type(exc).__name__}: {exc}")
    except (RedisUnavailable, RedisConfigError, ValueError) as exc:
        _fail(str(exc))
    click.echo(json.dumps({"redis": redact(url), **result.as_dict()}))
