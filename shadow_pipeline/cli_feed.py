"""``shadow-pipeline feed``: the live feed handler as a command (registered by ``cli``).

Options default to None so that every default stays declared once, in ``feed.live.config`` (or the venue's
own, ``protocol.VenueDefaults``); a value out of bounds is refused there, as one ``error:`` line with exit 2.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import typing

import click
import redis

from shadow_pipeline import settings
from shadow_pipeline.cli_errors import fail as _fail
from shadow_pipeline.feed.live.venues import PROTOCOLS
from shadow_pipeline.redis_io.connect import RedisUnavailable, connect, resolve_url
from shadow_pipeline.redis_io.server import NoServerAvailable
from shadow_pipeline.redis_io.url import RedisConfigError, redact

log = logging.getLogger("shadow_pipeline")
_SETUP_ERRORS = (RedisUnavailable, NoServerAvailable, RedisConfigError, redis.RedisError, ValueError, OSError)


@click.command("feed", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--venue", type=click.Choice(sorted(PROTOCOLS)), required=True, help="The venue and market.")
@click.option("--symbols", required=True, help="Comma-separated venue symbols, e.g. BTCUSDT,ETHUSDT.")
@click.option("--ws-url", default=None, help="WebSocket base URL (default: the venue's public endpoint).")
@click.option("--rest-url", default=None, help="REST base URL for Binance depth snapshots (default: the venue's).")
@click.option("--redis-url", default=None, help="Redis URL (default: $REDIS_URL, else an embedded server).")
@click.option("--stream", default=None, help="The tick stream (default lob:ticks).")
@click.option("--maxlen", type=int, default=None, help="XADD MAXLEN ~ of the tick stream.")
@click.option("--depth", is_flag=True, help="Also publish the full book to lob:depth:{instrument}.")
@click.option("--book-depth", type=int, default=None, help="Bybit orderbook depth: 1, 50, 200 (default) or 1000.")
@click.option(
    "--stale-seconds",
    type=float,
    default=None,
    help="Reconnect when a book is unchanged this long (default per venue).",
)
@click.option(
    "--max-age-seconds", type=float, default=None, help="Reconnect before a connection gets this old (default 23 h)."
)
@click.option("--backoff-initial-seconds", type=float, default=None, help="First reconnect delay cap (full jitter).")
@click.option("--backoff-max-seconds", type=float, default=None, help="Largest reconnect delay cap.")
@click.option("--ping-seconds", type=float, default=None, help="Bybit client ping interval (default 20 s).")
@click.option(
    "--metrics-port", type=click.IntRange(1, 65535), default=None, help="Serve Prometheus metrics on 127.0.0.1:PORT."
)
@click.option("--metrics-textfile", default=None, help="Write the metrics to this file at exit (node_exporter).")
def feed_command(
    venue: str,
    symbols: str,
    redis_url: str | None,
    metrics_port: int | None,
    metrics_textfile: str | None,
    depth: bool,
    **options: typing.Any,
) -> None:
    """Subscribe to a venue's order book and trades and XADD ticks (and, with --depth, the book) until SIGTERM."""
    from shadow_pipeline.feed.live.config import FeedConfig
    from shadow_pipeline.feed.live.metrics import FeedMetrics
    from shadow_pipeline.feed.live.service import run_feed
    from shadow_pipeline.feed.live.venues import protocol_for

    url = None
    try:
        if metrics_textfile and not os.access(os.path.dirname(os.path.abspath(metrics_textfile)), os.W_OK):
            raise ValueError(f"--metrics-textfile {metrics_textfile}: its folder does not exist or is not writable")
        names = tuple(s.strip() for s in symbols.split(",") if s.strip())
        given = {name: value for name, value in options.items() if value is not None}
        config = FeedConfig(venue=venue, symbols=names, depth=depth, shards=settings.stream_shards(), **given)
        protocol_for(config)  # the venue's own refusals (a book depth it does not serve) before any connection
        metrics = FeedMetrics(venue)
        url = resolve_url(redis_url, "--redis-url")
        client = connect(url)
        if metrics_port is not None:
            metrics.serve(metrics_port)
            log.info("metrics on http://127.0.0.1:%d/metrics", metrics_port)
    except _SETUP_ERRORS as exc:
        _fail(str(exc))
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("feed %s %s -> %s at %s", venue, ",".join(names), config.stream, redact(url))
    try:
        summary = asyncio.run(run_feed(config, client, stop, metrics))
    except redis.RedisError as exc:
        _write_metrics(metrics, metrics_textfile)
        _fail(f"Redis at {redact(url)}: {type(exc).__name__}: {exc}")
    except Exception as exc:  # a bug: one line for the operator, the traceback in the debug log
        log.debug("feed crashed", exc_info=True)
        _write_metrics(metrics, metrics_textfile)
        _fail(f"the feed stopped on an unexpected {type(exc).__name__}: {exc} (run with -v for the traceback)")
    unwritten = _write_metrics(metrics, metrics_textfile)
    click.echo(json.dumps({"redis": redact(url), **summary.as_dict()}))
    if unwritten:
        _fail(unwritten)
    if summary.lost_at_stop:  # after the summary: what was written is known; what was not is an error
        _fail(
            f"{summary.lost_at_stop} ticks and depth entries not written: "
            f"Redis at {redact(url)} was unreachable at the stop"
        )


def _write_metrics(metrics: typing.Any, path: str | None) -> str | None:
    if not path:
        return None
    try:
        metrics.write_textfile(path)
    except OSError as exc:
        return f"metrics not written to {path}: {exc.strerror or exc}"
    return None


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    feed_command()
