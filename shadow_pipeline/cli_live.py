"""`shadow-pipeline live-shadow`: the live shadow as a long-running service (docs/live-shadow.md).

Every refusal is one ``error:`` line and exit 2, as in the rest of the command line; SIGTERM (or Ctrl-C) stops it
cleanly after the batch in hand, with its position saved and a summary line.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import typing

import click
import pydantic
import redis

from shadow_pipeline import settings
from shadow_pipeline.redis_io.connect import RedisUnavailable, connect, resolve_url
from shadow_pipeline.redis_io.keys import TICK_STREAM
from shadow_pipeline.redis_io.url import RedisConfigError, redact, redact_text

log = logging.getLogger("shadow_pipeline")


class _OneLineCommand(click.Command):
    """Usage errors as one ``error:`` line with exit 2, also when the command runs on its own."""

    def make_context(self, *args: typing.Any, **kwargs: typing.Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as exc:
            raise _Refused(f"{exc.format_message()} (see live-shadow -h)") from None


class _Refused(click.ClickException):
    exit_code = 2

    def show(self, file: typing.IO[typing.Any] | None = None) -> None:
        click.echo(f"error: {redact_text(self.format_message())}", err=True)


def _config_error(exc: pydantic.ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors())


@click.command("live-shadow", cls=_OneLineCommand)
@click.option("--redis-url", default=None, help="Redis URL (default: $REDIS_URL, else an embedded server).")
@click.option("--stream", default=TICK_STREAM, show_default=True, help="The tick stream to read.")
@click.option("--symbols", default=None, help="Comma-separated instruments (default: every one seen).")
@click.option("--profile", default="moderate", show_default=True, help="Strategy profile.")
@click.option("--profiles-file", default=None, help="Profiles JSON (default: $SHADOW_PROFILES, else the packaged).")
@click.option("--window-seconds", type=float, default=60.0, show_default=True, help="Window length; divides 3600.")
@click.option(
    "--watermark-ms", type=click.FloatRange(0, 3_600_000), default=40.0, show_default=True, help="Reorder watermark."
)
@click.option(
    "--start-id",
    default="0-0",
    show_default=True,
    help="On a first start, read after this entry id (0-0: the whole stream; $: new entries only). A restart "
    "resumes where the last run left off.",
)
@click.option("--metrics-port", type=click.IntRange(1, 65535), default=None, help="Prometheus on 127.0.0.1:PORT.")
@click.option("--metrics-textfile", default=None, help="Write the metrics to this file at exit (node_exporter).")
@click.option(
    "--until-idle",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Exit once the stream has been idle this many seconds (tests, validation); default: until SIGTERM.",
)
def live_shadow_command(
    redis_url: str | None,
    stream: str,
    symbols: str | None,
    profile: str,
    profiles_file: str | None,
    window_seconds: float,
    watermark_ms: float,
    start_id: str,
    metrics_port: int | None,
    metrics_textfile: str | None,
    until_idle: float | None,
) -> None:
    """Shadow the tick stream live: each window's KPIs to Redis (shadow:live:kpi:*) and Prometheus within a second
    of its close. The hourly Dagster partition stays the record of truth (check live_windows_match_batch)."""
    from shadow_pipeline.defs.partitions import instrument_keys
    from shadow_pipeline.defs.shadow.assets import ShadowConfig
    from shadow_pipeline.domain.market.instruments import InstrumentError
    from shadow_pipeline.live.metrics import LiveMetrics
    from shadow_pipeline.live.shadow_loop import LiveOptions, LiveShadowError
    from shadow_pipeline.live.shards import run_all, shard_services

    try:
        config = ShadowConfig(profile=profile, window_seconds=window_seconds, profiles_file=profiles_file)
        chosen = tuple(instrument_keys(s for s in symbols.split(",") if s.strip())) if symbols else None
        if symbols is not None and not chosen:
            raise ValueError("--symbols names no instrument")
        if start_id != "$" and not re.fullmatch(r"\d+(-\d+)?", start_id):
            raise ValueError(f"--start-id {start_id!r} is not an entry id (MS-SEQ), 0-0 or $")
        url = resolve_url(redis_url, "--redis-url")
        client = connect(url, socket_timeout=30.0)
        options = LiveOptions(
            stream=stream,
            config=config,
            symbols=chosen,
            watermark_ns=round(watermark_ms * 1e6),
            until_idle_s=until_idle,
            start_id=start_id,
            source=redact(url),
        )
        metrics = LiveMetrics()
        services = shard_services(client, options, settings.stream_shards(), metrics)  # one per shard read
        if metrics_port is not None:
            metrics.serve(metrics_port)
    except pydantic.ValidationError as exc:
        raise _Refused(_config_error(exc)) from None
    except (LiveShadowError, InstrumentError, RedisUnavailable, RedisConfigError, ValueError, OSError) as exc:
        raise _Refused(str(exc)) from None
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        summary = run_all(services, stop)
    except redis.RedisError as exc:
        raise _Refused(f"Redis at {redact(url)}: {type(exc).__name__}: {' '.join(str(exc).split())}") from None
    except LiveShadowError as exc:
        raise _Refused(str(exc)) from None
    finally:
        if metrics_textfile:
            metrics.write_textfile(metrics_textfile)
    click.echo(summary.line())


if __name__ == "__main__":
    live_shadow_command()
