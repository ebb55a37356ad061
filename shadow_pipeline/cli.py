"""`shadow-pipeline`: the command line of the project (replay a feed, run with an embedded Redis, the demo)."""

from __future__ import annotations

import enum
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import typing
from collections.abc import Callable
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit

import click
import dagster as dg
import pandas as pd
import pydantic
import redis

from shadow_pipeline import settings
from shadow_pipeline.cli_ci import ci_dryrun_command
from shadow_pipeline.cli_compare import compare_command
from shadow_pipeline.cli_errors import fail as _fail
from shadow_pipeline.cli_feed import feed_command
from shadow_pipeline.cli_fills import fills_command
from shadow_pipeline.cli_instance import instance
from shadow_pipeline.cli_live import live_shadow_command
from shadow_pipeline.cli_reshard import reshard_command
from shadow_pipeline.cli_validate import live_validate_command
from shadow_pipeline.cli_venue_server import feed_server_command
from shadow_pipeline.defs.dryrun.assets import Depth, DryRunConfig, QueueModel, Reality
from shadow_pipeline.defs.export.assets import ExportConfig, ExportMode
from shadow_pipeline.defs.feed.assets import FeedConfig
from shadow_pipeline.defs.shadow.assets import ShadowConfig
from shadow_pipeline.defs.tune.assets import PROGRESS_LOGGER, TUNING_HOURS, TuneConfig
from shadow_pipeline.domain.market.faults import FaultSpec
from shadow_pipeline.domain.market.instruments import DEFAULT_VENUE, InstrumentError, load_registry
from shadow_pipeline.domain.market.shards import MAX_SHARDS, shard_stream
from shadow_pipeline.domain.tuning.tuner import OBJECTIVES
from shadow_pipeline.feed.replay import ReplayOptions, ReplayResult, replay, replay_depth
from shadow_pipeline.feed.sources import SourceKind, open_depth, open_source
from shadow_pipeline.ingest.options import IngestOptions, IngestSettings, default_consumer_name
from shadow_pipeline.launch import console_level, default
from shadow_pipeline.redis_io.connect import RedisUnavailable, connect, resolve_url
from shadow_pipeline.redis_io.server import NoServerAvailable
from shadow_pipeline.redis_io.streams import DEFAULT_STREAM
from shadow_pipeline.redis_io.url import RedisConfigError, redact, redact_text
from shadow_pipeline.settings import REDIS_URL_ENV
from shadow_pipeline.threads import run_together

if typing.TYPE_CHECKING:
    from shadow_pipeline.ingest.consumer import TickConsumer
    from shadow_pipeline.ingest.consumer.report import IngestReport
    from shadow_pipeline.ingest.metrics import IngestMetrics

log = logging.getLogger("shadow_pipeline")
# redis.RedisError: what a server refuses (NOPERM for an ACL user, WRONGTYPE for a key that is not a stream)
_SETUP_ERRORS = (RedisUnavailable, NoServerAvailable, RedisConfigError, redis.RedisError)


def _exit_for_runs(code: int, crash: str | None) -> None:
    """Exit with a verdict's code; when runs crashed (code 2), first say why on one stderr line."""
    if code == 2 and crash:
        click.echo(f"error: {crash}", err=True)
    sys.exit(code)


class _OneLineError(click.ClickException):
    """A usage error as every other refusal is shown: one ``error:`` line, exit 2 (scripts read one format)."""

    exit_code = 2

    def show(self, file: typing.IO[typing.Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> typing.Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            command = exc.ctx.command_path if exc.ctx else ctx.command_path
            raise _OneLineError(f"{exc.format_message()} (see {command} -h)") from None


class _FiniteFloatRange(click.FloatRange):
    """FloatRange refuses NaN too (a comparison with NaN is false, so its range check lets NaN through)."""

    def convert(self, value: typing.Any, param: click.Parameter | None, ctx: click.Context | None) -> typing.Any:
        number = super().convert(value, param, ctx)
        if number != number:
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


def _ranged(low: float | None, high: float | None, integer: bool, low_open: bool = False) -> click.ParamType:
    if integer:
        return click.IntRange(None if low is None else int(low), None if high is None else int(high), min_open=low_open)
    return _FiniteFloatRange(low, high, min_open=low_open)


def _config_range(config: type[pydantic.BaseModel], field: str) -> click.ParamType:
    """The option type of a run config field, with the field's bounds: an option and the launchpad take the same
    values, declared once (in the config, or in the profiles schema it reads them from)."""
    info = config.model_fields[field]
    bounds = {name: getattr(m, name) for m in info.metadata for name in ("gt", "ge", "le") if hasattr(m, name)}
    integer = info.annotation is int or int in typing.get_args(info.annotation)
    return _ranged(bounds.get("gt", bounds.get("ge")), bounds.get("le"), integer, low_open="gt" in bounds)


def _choice(config: type[pydantic.BaseModel], field: str) -> click.Choice:
    """The choices of a run config field typed as a Literal (or an Enum): the CLI offers what the launchpad does."""
    annotation = config.model_fields[field].annotation
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return click.Choice([str(member.value) for member in annotation])
    return click.Choice([str(value) for value in typing.get_args(annotation)])


def _field_type(config: type[pydantic.BaseModel], field: str) -> click.ParamType | None:
    annotation = config.model_fields[field].annotation
    if typing.get_origin(annotation) is typing.Literal:
        return _choice(config, field)
    return _config_range(config, field) if annotation in (int, float) else None


def _ingest_options(command: Callable[..., None]) -> Callable[..., None]:
    """Every ingest setting as an option (``batch`` as --batch, ``watermark_ms`` as --watermark-ms): default,
    range and help come from IngestSettings, as they do for the tick_stream resource."""
    for name, info in reversed(IngestSettings.model_fields.items()):
        command = click.option(
            f"--{name.replace('_', '-')}",
            name,
            type=_field_type(IngestSettings, name),
            default=info.default,
            show_default=True,
            help=info.description,
        )(command)
    return command


def _folder(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A local folder option whose path runs into a file is refused before anything is read: every write under
    it would fail, after the stream had been consumed. URLs (object stores) are left to the store."""
    if value is None or "://" in value:
        return value
    path = Path(value).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise click.BadParameter(f"{existing} is a file, not a folder")
    return value


def _textfile(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The metrics file is written at exit, after the drain: its folder is checked first (exists, writable)."""
    if value is None:
        return value
    path = Path(value).absolute()
    if path.is_dir():
        raise click.BadParameter(f"{value} is a folder")
    if not path.parent.is_dir():
        raise click.BadParameter(f"folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise click.BadParameter(f"folder {path.parent} is not writable")
    return value


def _gateway(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """A Pushgateway address that prometheus_client can use (it adds http:// to a bare host:port); whether it
    answers is known only when the metrics are pushed, at exit."""
    if value is None:
        return value
    parts = urlsplit(value if "://" in value else f"http://{value}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1 or port == 0:
        raise click.BadParameter(f"{value!r} is not a Pushgateway address (http[s]://host[:port] or host:port)")
    return value


class _VenueCode(click.ParamType):
    """A venue code of the instrument registry: the choices are the registry's venues, read when the option is
    used (the registry includes $SHADOW_INSTRUMENTS, which a command that takes no venue must not have to read)."""

    name = "venue"

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        try:
            return f"[{'|'.join(load_registry().venues)}]"
        except InstrumentError:
            return "VENUE"

    def convert(self, value: typing.Any, param: click.Parameter | None, ctx: click.Context | None) -> typing.Any:
        try:
            return load_registry().venue(str(value)).code
        except InstrumentError as exc:
            self.fail(str(exc), param, ctx)


class _RedactingFilter(logging.Filter):
    """Every log line through redact_text, its traceback too: a library that logs a URL must not log its
    password. The traceback is formatted here into ``exc_text``, which formatters print instead of formatting
    ``exc_info`` again."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
def main(verbose: bool) -> None:
    """Shadow Mode for market-making strategies, on Redis Streams and Dagster.

    Redis: --redis-url, else $REDIS_URL, else an embedded server that lives as long as the command.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(_RedactingFilter())
    if not verbose:  # a new Dagster instance's schema migration logs ~30 INFO lines that say nothing to a user
        logging.getLogger("alembic").setLevel(logging.WARNING)


def _summary(result: ReplayResult, url: str, stream: str) -> dict[str, object]:
    info = result.stream
    return {
        "redis": redact(url),
        "stream": stream,
        "entries_written": result.entries,
        "ticks_by_symbol": result.ticks_by_symbol,
        "wall_seconds": round(result.wall_seconds, 3),
        "entries_per_second": round(result.entries_per_second, 1),
        "market_seconds": round(result.market_seconds, 3),
        "stream_length": info.length if info else None,
        "first_id": info.first_id if info else None,
        "last_id": info.last_id if info else None,
        "faults": result.faults.as_dict(),
    }


@main.command("replay")
@click.option(
    "--source", type=_choice(FeedConfig, "source"), default=default(FeedConfig, "source").value, show_default=True
)
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Recording file (repeat for files played back to back, e.g. *_20240808 then *_20240809).",
)
@click.option("--symbols", default="", help="Comma-separated; synthetic default BTCUSDT,ETHUSDT; recordings: all.")
@click.option(
    "--venue",
    type=_VenueCode(),
    default=None,
    help="The ticks' venue. Recordings: default what the file's messages show; a venue that contradicts them "
    f"is refused. Synthetic: default {DEFAULT_VENUE}.",
)
@click.option(
    "--minutes",
    type=_config_range(FeedConfig, "minutes"),
    default=default(FeedConfig, "minutes"),
    show_default=True,
    help="Market minutes.",
)
@click.option(
    "--seed",
    type=_config_range(FeedConfig, "seed"),
    default=default(FeedConfig, "seed"),
    show_default=True,
    help="Synthetic market seed.",
)
@click.option("--redis-url", default=None, help="Default: $REDIS_URL, else an embedded server.")
@click.option("--stream", default=DEFAULT_STREAM, show_default=True)
@click.option(
    "--maxlen",
    type=_config_range(FeedConfig, "maxlen"),
    default=default(FeedConfig, "maxlen"),
    show_default=True,
    help="XADD MAXLEN ~ (0 = no trim).",
)
@click.option(
    "--speed",
    type=_config_range(FeedConfig, "speed"),
    default=default(FeedConfig, "speed"),
    show_default=True,
    help="0 = as fast as possible, 1 = real time, N = N x real time.",
)
@click.option("--batch-size", type=int, default=1000, show_default=True, help="Entries per pipelined round trip.")
@click.option("--drop", type=float, default=0.0, help="Fault: share of ticks dropped.")
@click.option("--duplicate", type=float, default=0.0, help="Fault: share of ticks sent twice.")
@click.option("--reorder", type=float, default=0.0, help="Fault: share of ticks delayed by up to --jitter-ms.")
@click.option("--jitter-ms", type=float, default=40.0, show_default=True)
@click.option("--malformed", type=float, default=0.0, help="Fault: malformed junk entries per tick.")
@click.option("--fault-seed", type=int, default=0, show_default=True)
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option(
    "--depth",
    is_flag=True,
    help="Also XADD the recording's L2 book (REST snapshot, then diffs) to lob:depth:{symbol}, for the dry-run's "
    "full-depth reality (Binance USD-M recordings, --speed 0).",
)
def replay_command(
    source: str,
    files: tuple[str, ...],
    symbols: str,
    venue: str | None,
    minutes: float,
    seed: int,
    redis_url: str | None,
    stream: str,
    maxlen: int,
    speed: float,
    batch_size: int,
    drop: float,
    duplicate: float,
    reorder: float,
    jitter_ms: float,
    malformed: float,
    fault_seed: int,
    progress: bool | None,
    as_json: bool,
    depth: bool,
) -> None:
    """XADD ticks into a Redis Stream, as the exchange feed handler would."""
    if depth and (source != SourceKind.BINANCE or speed != 0):
        _fail("--depth publishes a Binance USD-M recording's book: use it with --source binance and --speed 0")
        return
    try:
        faults = FaultSpec(
            drop=drop,
            duplicate=duplicate,
            reorder=reorder,
            jitter_ms=jitter_ms,
            malformed=malformed,
            seed=fault_seed,
        )
        options = ReplayOptions(
            stream=stream,
            maxlen=maxlen or None,
            speed=speed,
            batch_size=batch_size,
            faults=faults,
            progress=progress,
            shards=settings.stream_shards(),
        )
        chosen = [s.strip().upper() for s in symbols.split(",") if s.strip()]
        src = open_source(source, symbols=chosen, seconds=minutes * 60, seed=seed, files=files, venue=venue)
        url = resolve_url(redis_url, "--redis-url")
        if not redis_url and not settings.redis_url():
            log.warning(
                "REDIS_URL is unset: replaying into an embedded server that stops when this command "
                "exits. Use `shadow-pipeline with-redis -- ...` or set REDIS_URL to keep the data."
            )
        client = connect(url)
        books = open_depth(files, chosen, venue) if depth else []
        result = replay(client, src.chunks, options, src.market_seconds)
        depth_entries = replay_depth(client, books, batch_size) if depth else {}
    except (*_SETUP_ERRORS, ValueError) as exc:
        _fail(_error_text(exc))
        return
    summary = _summary(result, url, stream) | {"latency": src.latency}
    if depth:
        summary["depth_entries"] = depth_entries
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            click.echo(f"{key:>20}: {value}")


@main.command("ingest")
@click.option("--redis-url", default=None, help="Default: $REDIS_URL, else an embedded server.")
@click.option(
    "--consumer",
    default=None,
    help="Consumer name (default: <host>-<slot>, the same after a restart, so it re-reads its own pending entries).",
)
@click.option(
    "--slot",
    default=None,
    help="Instance on this host for the default name (default: $SHADOW_INGEST_SLOT, else 0); one per consumer.",
)
@click.option(
    "--landing",
    default=None,
    callback=_folder,
    help="Landing zone base, folder or URL (default: $SHADOW_DATA_DIR/landing); a stream other than lob:ticks "
    "lands under streams/<stream> there, as in Dagster.",
)
@click.option("--drain", is_flag=True, help="Land what the stream holds now, then exit (default: serve until SIGTERM).")
@click.option(
    "--shard",
    type=click.IntRange(0, MAX_SHARDS - 1),
    default=None,
    help="Consume only this shard of the stream ($SHADOW_STREAM_SHARDS shards; default: every shard).",
)
@click.option(
    "--consumers-per-shard",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Consumers of each shard's group in this process (threads; names end in -s<shard> and -c<n>).",
)
@_ingest_options
@click.option(
    "--metrics-port", type=click.IntRange(1, 65535), default=None, help="Serve Prometheus metrics on 127.0.0.1:PORT."
)
@click.option(
    "--textfile", default=None, callback=_textfile, help="Write the metrics to this file at exit (node_exporter)."
)
@click.option(
    "--pushgateway",
    default=None,
    callback=_gateway,
    help="Push the metrics to this Pushgateway at exit (a push that fails is reported after the report, exit 2).",
)
def ingest_command(
    redis_url: str | None,
    consumer: str | None,
    slot: str | None,
    landing: str | None,
    drain: bool,
    shard: int | None,
    consumers_per_shard: int,
    metrics_port: int | None,
    textfile: str | None,
    pushgateway: str | None,
    **ingest: typing.Any,
) -> None:
    """Consume the tick stream through a consumer group and land every tick exactly once (then XACK)."""
    from shadow_pipeline.ingest.consumer import TickConsumer
    from shadow_pipeline.ingest.landing_faults import LandingError
    from shadow_pipeline.ingest.metrics import IngestMetrics
    from shadow_pipeline.resources import LandingResource

    try:
        shards = settings.stream_shards()
        if shard is not None and shard >= shards:
            raise ValueError(f"--shard {shard}: ${settings.STREAM_SHARDS_ENV} is {shards}, shards are 0..{shards - 1}")
        metrics = IngestMetrics()
        url = resolve_url(redis_url, "--redis-url")
        store = LandingResource(base_path=landing).store(ingest["stream"])  # every shard lands in one zone
        name = consumer or default_consumer_name(slot)
        workers = [
            TickConsumer(store, options, url, metrics)
            for options in _shard_consumers(ingest, name, shards, shard, consumers_per_shard)
        ]
        if metrics_port is not None:
            metrics.serve(metrics_port)
            log.info("metrics on http://127.0.0.1:%d/metrics", metrics_port)
    except (*_SETUP_ERRORS, ValueError, OSError) as exc:  # OSError: the metrics port is taken
        _fail(_error_text(exc))
        return
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        reports = _run_consumers(workers, drain, stop)
    except _SETUP_ERRORS as exc:  # lost Redis, or a refusal (NOPERM for an ACL user without stream rights)
        _publish_metrics(metrics, textfile, pushgateway)
        _fail(_error_text(exc, url))
        return
    except LandingError as exc:  # a full or read-only landing zone: what to free or fix, and nothing lost
        _publish_metrics(metrics, textfile, pushgateway)
        _fail(str(exc))
        return
    unpublished = _publish_metrics(metrics, textfile, pushgateway)
    for worker, report in zip(workers, reports, strict=True):  # one line per consumer
        line = {"redis": redact(url), "consumer": worker.options.consumer, **report.as_dict()}
        if len(workers) > 1:
            line["stream"] = worker.options.stream
        click.echo(json.dumps(line, default=str))
    if unpublished:  # after the report: what was landed and acked is known, whatever became of the metrics
        _fail(unpublished)
    if drain and not all(report.complete for report in reports):  # live consumers still hold entries (docs/ingest.md)
        sys.exit(3)


def _shard_consumers(
    ingest: dict[str, typing.Any], name: str, shards: int, only: int | None, per_shard: int
) -> list[IngestOptions]:
    """The options of each consumer the command runs: ``per_shard`` in the group of each shard chosen. Names stay
    the given one with one shard and one consumer (as before sharding); else they end in ``-s<shard>`` and
    ``-c<n>``, stable across restarts, so each consumer re-reads its own pending entries first."""
    chosen = range(shards) if only is None else [only]
    return [
        IngestOptions(
            **{**ingest, "stream": shard_stream(ingest["stream"], number, shards)},
            consumer=name + (f"-s{number}" if shards > 1 else "") + (f"-c{member}" if per_shard > 1 else ""),
        )
        for number in chosen
        for member in range(per_shard)
    ]


def _run_consumers(workers: list[TickConsumer], drain: bool, stop: threading.Event) -> list[IngestReport]:
    """Run the consumers (one on this thread, several on threads of their own) to their end; the first error any
    raised is raised here once all have ended (SIGTERM stops the others: ``stop`` is set when one fails)."""
    if len(workers) == 1:
        return [workers[0].drain() if drain else workers[0].serve(stop)]
    return run_together(
        [(w.options.consumer, w.drain if drain else partial(w.serve, stop)) for w in workers],
        stop,
    )


def _publish_metrics(metrics: IngestMetrics, textfile: str | None, pushgateway: str | None) -> str | None:
    """Write and push the metrics at exit; why they were not, on one line, else None. Both are tried: one
    failing sink does not cost the other its metrics."""
    failures = []
    if textfile:
        try:
            metrics.write_textfile(textfile)
        except OSError as exc:
            failures.append(f"metrics not written to {textfile}: {exc.strerror or exc}")
    if pushgateway:
        try:
            metrics.push(pushgateway)
        except OSError as exc:  # urllib's URLError and HTTPError are OSErrors
            failures.append(f"metrics not pushed to {pushgateway}: {getattr(exc, 'reason', None) or exc}")
    return "; ".join(failures) or None


def _error_text(exc: BaseException, url: str | None = None) -> str:
    """A setup error as one line; redis-py's own errors (NOPERM, WRONGTYPE, a dropped connection) name neither
    the server nor their class, so both are added (the URL redacted)."""
    if isinstance(exc, redis.RedisError):
        where = f" at {redact(url)}" if url else ""
        return f"Redis{where}: {type(exc).__name__}: {' '.join(str(exc).split())}"
    if isinstance(exc, pydantic.ValidationError):  # a run config value out of its range: field and rule
        return "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
    return str(exc)


def _symbols(raw: str) -> list[str]:
    """The instruments to run, after checking the partition settings: a malformed one is this command's error."""
    from shadow_pipeline.defs.partitions import configured_symbols, instrument_keys

    settings.check()
    return instrument_keys(s for s in raw.split(",") if s.strip()) or configured_symbols()


def _print_table(table: pd.DataFrame) -> None:
    click.echo(table.to_string(index=False, float_format=lambda v: f"{v:.4g}") if len(table) else "(nothing)")


def _placement_options(command: Callable[..., None]) -> Callable[..., None]:
    """--stream, --data-dir and --artifacts-dir: where the command's runs read and write (resource config)."""
    for option in reversed(
        [
            click.option("--stream", default=DEFAULT_STREAM, show_default=True, help="The tick stream to ingest."),
            click.option(
                "--data-dir",
                default=None,
                callback=_folder,
                help="Landing zone and asset store (folder or URL; default: $SHADOW_DATA_DIR).",
            ),
            click.option(
                "--artifacts-dir",
                default=None,
                callback=_folder,
                help="Reports folder (default: $SHADOW_ARTIFACTS_DIR).",
            ),
        ]
    ):
        command = option(command)
    return command


def _override_options(command: Callable[..., None]) -> Callable[..., None]:
    """--touch_dwell_ms and --min_lot (the seed's spelling; --touch-dwell-ms and --min-lot too): one parameter
    of the profile replaced for these runs (ShadowConfig's overrides, checked by search_space.with_values)."""
    for option in reversed(
        [
            click.option(
                "--touch_dwell_ms",
                "--touch-dwell-ms",
                "touch_dwell_ms",
                type=_config_range(ShadowConfig, "touch_dwell_ms"),
                default=None,
                help="Override the profile's touch_dwell_ms (dwell fill model only).",
            ),
            click.option(
                "--min_lot",
                "--min-lot",
                "min_lot",
                type=_config_range(ShadowConfig, "min_lot"),
                default=None,
                help="Override the profile's min_lot (order size, a multiple of the symbol's lot_step).",
            ),
        ]
    ):
        command = option(command)
    return command


def _check_profile(config: ShadowConfig, symbols: str) -> list[str]:
    """The symbols, after resolving the profile and its overrides for each: a bad file or value is an error
    before Redis is read or a run started, not a failed run after the ingest (``dg.Failure``, a ValueError
    here)."""
    from shadow_pipeline.defs.shadow.assets import strategy_for

    chosen = _symbols(symbols)
    for symbol in chosen:
        try:
            strategy_for(config, symbol)
        except dg.Failure as exc:
            raise ValueError(exc.description) from None
    return chosen


def _partitions(hours: tuple[str, ...], symbols: str, stream: str) -> list[dg.MultiPartitionKey]:
    """The (hour, symbol) keys to run: given hours are checked before Redis is touched; without any, every hour
    the stream spans. Redis is then checked too (a refused password is an error here, not a failed run)."""
    from shadow_pipeline.defs.partitions import FIRST_HOUR, has_hour
    from shadow_pipeline.launch import partition_keys, stream_hours

    chosen = _symbols(symbols)
    keys = partition_keys(list(hours), chosen)
    client = connect(decode_responses=True)
    if hours:
        return keys
    spanned = stream_hours(client, stream)
    if not spanned:
        raise ValueError(f"stream {stream} is empty: replay ticks into it first (shadow-pipeline replay)")
    early = [hour for hour in spanned if hour < FIRST_HOUR]  # a moving start ($SHADOW_RETENTION_DAYS) passed them
    if early:
        log.info("hours before the first partition %s left out: %s .. %s", FIRST_HOUR, early[0], early[-1])
    unfinished = [hour for hour in spanned if hour >= FIRST_HOUR and not has_hour(hour)]
    if unfinished:
        log.info("hours not finished yet, left for a later run: %s", ", ".join(unfinished))
    runnable = [hour for hour in spanned if has_hour(hour)]
    if not runnable:
        raise ValueError(f"stream {stream} holds no finished hour from the first partition {FIRST_HOUR} on")
    return partition_keys(runnable, chosen)


@main.command("shadow")
@click.option(
    "--hour",
    "hours",
    multiple=True,
    help="Hourly partition, e.g. 2024-08-09-00:00 (repeat). Default: every hour the stream's ticks span.",
)
@click.option("--symbols", default="", help="Comma-separated; default: the configured partitions ($SHADOW_SYMBOLS).")
@click.option("--profile", default=default(ShadowConfig, "profile"), show_default=True)
@click.option(
    "--window-seconds",
    type=_config_range(ShadowConfig, "window_seconds"),
    default=default(ShadowConfig, "window_seconds"),
    show_default=True,
    help="Iteration window.",
)
@click.option(
    "--min-windows",
    type=_config_range(ShadowConfig, "min_windows"),
    default=None,
    help="Valid windows a Go needs (default: the profile's).",
)
@click.option("--profiles-file", default=None, help="Default: $SHADOW_PROFILES, else the packaged profiles.")
@_override_options
@_placement_options
@click.option("--export", is_flag=True, help="Also export the KPIs to Redis after each run (hash and stream).")
def shadow_command(
    hours: tuple[str, ...],
    symbols: str,
    profile: str,
    window_seconds: float,
    min_windows: int | None,
    profiles_file: str | None,
    touch_dwell_ms: float | None,
    min_lot: float | None,
    stream: str,
    data_dir: str | None,
    artifacts_dir: str | None,
    export: bool,
) -> None:
    """Ingest from the stream and run Shadow Mode per (hour, symbol) through Dagster: KPIs, gates, reports.

    Exit status: 0 all Go, 1 any No-Go, 2 an error (bad input, Redis refused or unreachable, a run crashed)."""
    from shadow_pipeline.defs.export.assets import ExportConfig
    from shadow_pipeline.domain.kpis.gates import GO
    from shadow_pipeline.launch import Placement, crash_summary, project_instance, run_shadow, verdict_exit_code

    try:
        shadow = ShadowConfig(
            profile=profile,
            window_seconds=window_seconds,
            min_windows=min_windows,
            profiles_file=profiles_file,
            touch_dwell_ms=touch_dwell_ms,
            min_lot=min_lot,
        )
        _check_profile(shadow, symbols)
        keys = _partitions(hours, symbols, stream)
        placement = Placement(stream=stream, data_dir=data_dir, artifacts_dir=artifacts_dir)
        with project_instance() as instance:
            table = run_shadow(keys, shadow, placement, instance, console_level(), ExportConfig() if export else None)
    except (*_SETUP_ERRORS, ValueError) as exc:
        _fail(_error_text(exc))
        return
    _print_table(table)
    _exit_for_runs(verdict_exit_code(table, "verdict", [GO]), crash_summary(table, "reasons", "verdict"))


@main.command("report")
@click.option(
    "--hour",
    "hours",
    multiple=True,
    help="Hourly partition (repeat). Default: the newest hour with stored shadow_iterations.",
)
@click.option("--symbols", default="", help="Comma-separated; default: the configured partitions.")
@click.option("--data-dir", default=None, callback=_folder, help="Asset store (default: $SHADOW_DATA_DIR).")
@click.option(
    "--artifacts-dir", default=None, callback=_folder, help="Reports folder (default: $SHADOW_ARTIFACTS_DIR)."
)
def report_command(hours: tuple[str, ...], symbols: str, data_dir: str | None, artifacts_dir: str | None) -> None:
    """Re-materialize shadow_report from stored shadow_iterations and fill_sensitivity (no ingest): snapshot,
    Markdown, gates.

    Exit status: 0 all Go, 1 any No-Go, 2 an error."""
    from shadow_pipeline.domain.kpis.gates import GO
    from shadow_pipeline.launch import Placement, crash_summary, project_instance, run_report, verdict_exit_code

    try:
        with project_instance() as instance:
            keys = _stored_keys(instance, hours, symbols, newest_only=True)
            table = run_report(
                keys, Placement(data_dir=data_dir, artifacts_dir=artifacts_dir), instance, console_level()
            )
    except ValueError as exc:
        _fail(str(exc))
        return
    _print_table(table)
    _exit_for_runs(verdict_exit_code(table, "verdict", [GO]), crash_summary(table, "reasons", "verdict"))


def _stored_keys(
    instance: dg.DagsterInstance, hours: tuple[str, ...], symbols: str, newest_only: bool
) -> list[dg.MultiPartitionKey]:
    """Partitions with stored shadow_iterations: the given hours (each must be stored), else every stored one
    (``newest_only``: of the newest hour), of the given symbols or of all stored ones."""
    from shadow_pipeline.defs.partitions import has_hour, hour_and_symbol, partition_key, refuse_grouped
    from shadow_pipeline.launch import partition_keys

    refuse_grouped()
    stored = instance.get_materialized_partitions(dg.AssetKey("shadow_iterations"))
    chosen = _symbols(symbols)
    if hours:
        keys = partition_keys(list(hours), chosen)
        missing = [str(key) for key in keys if str(key) not in stored]
        if missing:
            raise ValueError(f"no stored shadow_iterations for {', '.join(missing)}: run shadow-pipeline shadow first")
        return keys
    pairs = [(h, s) for h, s in sorted(map(hour_and_symbol, stored)) if has_hour(h) and s in chosen]
    if newest_only and pairs:
        pairs = [pair for pair in pairs if pair[0] == pairs[-1][0]]
    if not pairs:
        raise ValueError("no stored shadow_iterations: run `make shadow-redis` (or shadow-pipeline shadow) first")
    return [partition_key(h, s) for h, s in pairs]


@main.command("audit")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--profiles-file", default=None, help="Gates from this profiles file (default: the current ones).")
@click.option("--snapshot-thresholds", is_flag=True, help="Re-check with the thresholds each run used instead.")
def audit_command(paths: tuple[Path, ...], profiles_file: str | None, snapshot_thresholds: bool) -> None:
    """Re-check the Go/No-Go gates on POST_SHADOW_SNAPSHOT.json files (default: all under the artifacts folder).

    Exit status: 0 all Go, 1 any No-Go, 2 unreadable input."""
    from shadow_pipeline.domain.kpis.gates import GO
    from shadow_pipeline.domain.strategies.profiles import ProfileError
    from shadow_pipeline.reporting.audit import audit
    from shadow_pipeline.reporting.snapshot import SnapshotError

    roots = list(paths) or [settings.artifacts_dir() / "shadow"]
    try:
        table = audit(roots, profiles_file, snapshot_thresholds)
    except (SnapshotError, ProfileError) as exc:
        _fail(str(exc))
        return
    if table.empty:
        _fail(f"no {', '.join(map(str, roots))}/**/POST_SHADOW_SNAPSHOT.json: run make shadow-redis first")
    _print_table(table.drop(columns=["snapshot"]))
    no_go = int((table["verdict"] != GO).sum())
    click.echo(f"{len(table) - no_go} Go, {no_go} No-Go")
    sys.exit(1 if no_go else 0)


@main.command("export")
@click.option(
    "--src",
    "snapshots",
    multiple=True,
    type=click.Path(path_type=Path),
    help="POST_SHADOW_SNAPSHOT.json files (hash mode; repeat). Default: the stored partitions, through exported_kpis.",
)
@click.option("--hour", "hours", multiple=True, help="Hourly partition (repeat). Default: every stored partition.")
@click.option("--symbols", default="", help="Comma-separated; default: the configured partitions.")
@click.option("--mode", type=_choice(ExportConfig, "mode"), default=default(ExportConfig, "mode"), show_default=True)
@click.option(
    "--per-symbol/--no-per-symbol",
    default=default(ExportConfig, "per_symbol"),
    show_default=True,
    help="Hash mode: also shadow:kpi:{symbol}, one field per KPI.",
)
@click.option(
    "--ttl",
    "ttl_seconds",
    type=_config_range(ExportConfig, "ttl_seconds"),
    default=default(ExportConfig, "ttl_seconds"),
    show_default=True,
    help="Hash expiry (s).",
)
@click.option(
    "--maxlen",
    type=_config_range(ExportConfig, "maxlen"),
    default=default(ExportConfig, "maxlen"),
    show_default=True,
    help="Stream MAXLEN ~.",
)
@click.option(
    "--textfile-dir",
    default=None,
    help="Also write the KPI metrics there (an existing node_exporter textfile directory; docs/metrics.md).",
)
@click.option("--pushgateway", default=None, help="Also push the KPI metrics to this pushgateway (http://host:port).")
@click.option("--data-dir", default=None, callback=_folder, help="Asset store (default: $SHADOW_DATA_DIR).")
def export_command(
    snapshots: tuple[Path, ...],
    hours: tuple[str, ...],
    symbols: str,
    mode: ExportMode,
    per_symbol: bool,
    ttl_seconds: int,
    maxlen: int,
    textfile_dir: str | None,
    pushgateway: str | None,
    data_dir: str | None,
) -> None:
    """Write shadow KPIs to Redis: hashes (latest per symbol, TTL) and/or streams (one entry per window).

    Stored partitions go through the exported_kpis asset (validated against the shipped JSON Schema first;
    re-exporting adds no stream entry). With --textfile-dir or --pushgateway the partitions' KPIs, thresholds
    and verdicts also go to Prometheus, after Redis; a sink that fails fails the run. Exit status: 0 written,
    2 an error."""
    from shadow_pipeline.launch import Placement, crash_summary, crashed, project_instance, run_export
    from shadow_pipeline.reporting.kpi_metrics import check_sinks

    try:
        config = ExportConfig(
            mode=mode,
            per_symbol=per_symbol,
            ttl_seconds=ttl_seconds,
            maxlen=maxlen,
            textfile_dir=textfile_dir,
            pushgateway=pushgateway,
        )
        check_sinks(textfile_dir, pushgateway)  # a bad directory or URL (a ValueError), before anything is written
        connect()  # fail fast, with the reason, before any run
        if snapshots:
            _export_snapshots(list(snapshots), config)
            return
        with project_instance() as instance:
            keys = _stored_keys(instance, hours, symbols, newest_only=False)
            table = run_export(keys, config, Placement(data_dir=data_dir), instance, console_level())
    except (*_SETUP_ERRORS, ValueError) as exc:
        _fail(_error_text(exc))
        return
    _print_table(table)
    _exit_for_runs(2 if crashed(table).any() else 0, crash_summary(table, "keys"))


def _export_snapshots(paths: list[Path], config: ExportConfig) -> None:
    from shadow_pipeline.domain.kpis.records import KpiRecordError, report_record
    from shadow_pipeline.redis_io.kpi_export import write_hashes
    from shadow_pipeline.reporting.snapshot import SnapshotError, read_snapshot

    if config.mode != "hash":
        raise ValueError(
            "a snapshot holds the partition aggregate only: use --mode hash, or export the stored partitions"
        )
    if config.textfile_dir or config.pushgateway:
        raise ValueError("--textfile-dir and --pushgateway export stored partitions, not snapshots (--src)")
    try:
        snapshots = [read_snapshot(path) for path in paths]
        records = [report_record(snapshot, snapshot["kpis"]) for snapshot in snapshots]
        result = write_hashes(connect(decode_responses=True), records, config.per_symbol, config.ttl_seconds)
    except (KpiRecordError, SnapshotError) as exc:
        raise ValueError(str(exc)) from None
    click.echo(f"hash: {result.written} records -> {', '.join(result.keys)}")


@main.command("dryrun")
@click.option("--symbols", default="", help="Comma-separated; default: the configured partitions.")
@click.option(
    "--iterations",
    type=_config_range(DryRunConfig, "iterations"),
    default=default(DryRunConfig, "iterations"),
    help="Compare the newest N windows (default: all).",
)
@click.option(
    "--duration",
    type=_config_range(ShadowConfig, "window_seconds"),
    default=default(ShadowConfig, "window_seconds"),
    show_default=True,
    help="Window length (s).",
)
@click.option("--hour", "hours", multiple=True, help="Hourly partition (repeat). Default: every hour the stream spans.")
@click.option("--profile", default=default(ShadowConfig, "profile"), show_default=True)
@click.option("--profiles-file", default=None, help="Default: $SHADOW_PROFILES, else the packaged profiles.")
@click.option(
    "--reality",
    type=_choice(DryRunConfig, "reality"),
    default=default(DryRunConfig, "reality"),
    show_default=True,
    help="auto: hftbacktest for a queue-model shadow, our queue engine for a dwell shadow.",
)
@click.option(
    "--queue-model",
    type=_choice(DryRunConfig, "queue_model"),
    default=default(DryRunConfig, "queue_model"),
    show_default=True,
    help="hftbacktest's queue model.",
)
@click.option(
    "--depth",
    type=_choice(DryRunConfig, "depth"),
    default=default(DryRunConfig, "depth"),
    show_default=True,
    help="hftbacktest's book: auto: the full L2 book of lob:depth:{symbol} when it has the hour, else top of book.",
)
@_override_options
@_placement_options
def dryrun_command(
    symbols: str,
    iterations: int | None,
    duration: float,
    hours: tuple[str, ...],
    profile: str,
    profiles_file: str | None,
    reality: Reality,
    queue_model: QueueModel,
    depth: Depth,
    touch_dwell_ms: float | None,
    min_lot: float | None,
    stream: str,
    data_dir: str | None,
    artifacts_dir: str | None,
) -> None:
    """Ingest, shadow, export to Redis, then validate the predictions read back against reality (MAPE gate).

    Exit status: 0 every partition PASS or WARN (KPIs with too few events, NO DATA, are counted apart and do not
    warn), 1 any FAIL or a partition with no KPI judged (NO DATA vouches for nothing), 2 an error (bad input,
    Redis refused or unreachable, a run crashed)."""
    from shadow_pipeline.launch import Placement, crash_summary, project_instance, run_dryrun, verdict_exit_code

    try:
        shadow = ShadowConfig(
            profile=profile,
            window_seconds=duration,
            profiles_file=profiles_file,
            touch_dwell_ms=touch_dwell_ms,
            min_lot=min_lot,
        )
        dryrun = DryRunConfig(reality=reality, queue_model=queue_model, depth=depth, iterations=iterations)
        _check_profile(shadow, symbols)
        keys = _partitions(hours, symbols, stream)
        placement = Placement(stream=stream, data_dir=data_dir, artifacts_dir=artifacts_dir)
        with project_instance() as instance:
            table = run_dryrun(keys, shadow, dryrun, placement, instance, console_level())
    except (*_SETUP_ERRORS, ValueError) as exc:
        _fail(_error_text(exc))
        return
    _print_table(table)
    _exit_for_runs(verdict_exit_code(table, "status", ["PASS", "WARN"]), crash_summary(table, "report", "status"))


class _ProgressBar(logging.Handler):
    """The tuner's (done, total) records as a bar on stderr: redrawn in place on a terminal, a line per tenth
    of the way elsewhere (CI logs)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.terminal = sys.stderr.isatty()
        self.shown = -1

    def emit(self, record: logging.LogRecord) -> None:
        done, total = int(getattr(record, "done", 0)), max(int(getattr(record, "total", 1)), 1)
        tenth = 10 * done // total
        if self.terminal:
            bar = "#" * (30 * done // total)
            click.echo(f"\r{record.getMessage()} [{bar:<30}] {done}/{total} sets", err=True, nl=done == total)
        elif tenth > self.shown:
            click.echo(f"{record.getMessage()}: {done}/{total} sets", err=True)
        self.shown = -1 if done == total else tenth


@main.command("tune")
@click.option("--symbols", default="", help="Comma-separated; default: the configured partitions ($SHADOW_SYMBOLS).")
@click.option(
    "--hours",
    "hours",
    multiple=True,
    help=f"Hourly partitions to tune and judge on, e.g. 2024-08-09-00:00 (repeat; at most {TUNING_HOURS} in a row). "
    "Default: every hour the stream's ticks span.",
)
@click.option("--profile", default=default(TuneConfig, "profile"), show_default=True, help="The base profile.")
@click.option("--profiles-file", default=None, help="Default: $SHADOW_PROFILES, else the packaged profiles.")
@click.option(
    "--space",
    default=None,
    help="JSON merged over the profile's tune.space, e.g. '{\"quote_offset_ticks\": [0, 1, 2]}'.",
)
@click.option(
    "--objective", type=click.Choice(list(OBJECTIVES)), default=None, help="Default: the profile's tune.objective."
)
@click.option(
    "--max-sets",
    type=_config_range(TuneConfig, "max_sets"),
    default=None,
    help="Sets per fold (default: the profile's).",
)
@click.option(
    "--seed", type=_config_range(TuneConfig, "seed"), default=None, help="Sampler seed (default: the profile's)."
)
@click.option(
    "--train-hours",
    type=_config_range(TuneConfig, "train_hours"),
    default=default(TuneConfig, "train_hours"),
    show_default=True,
    help="Hours each walk-forward fold tunes on; the next hour judges it.",
)
@click.option(
    "--window-seconds",
    type=_config_range(TuneConfig, "window_seconds"),
    default=default(TuneConfig, "window_seconds"),
    show_default=True,
    help="Window.",
)
@click.option(
    "--min-windows",
    type=_config_range(ShadowConfig, "min_windows"),
    default=None,
    help="Valid windows a Go needs (default: the profile's).",
)
@click.option(
    "--workers", type=_config_range(TuneConfig, "workers"), default=None, help="Processes (default: every core)."
)
@_override_options
@_placement_options
def tune_command(
    symbols: str,
    hours: tuple[str, ...],
    profile: str,
    profiles_file: str | None,
    space: str | None,
    objective: str | None,
    max_sets: int | None,
    seed: int | None,
    train_hours: int,
    window_seconds: float,
    min_windows: int | None,
    workers: int | None,
    touch_dwell_ms: float | None,
    min_lot: float | None,
    stream: str,
    data_dir: str | None,
    artifacts_dir: str | None,
) -> None:
    """Auto-tune the profile per symbol through Dagster, walk-forward: ingest the hours, tune on k hours, judge
    the winner on the next, and write STEP1_BASELINE_SUMMARY.md and TUNED_PROFILES.json.

    Exit status: 0 every symbol Go out of sample, 1 any No-Go, 2 an error (bad input, Redis, a run crashed)."""
    from shadow_pipeline.defs.shadow.assets import strategy_for
    from shadow_pipeline.defs.tune.assets import period_of, search_of
    from shadow_pipeline.domain.kpis.gates import GO
    from shadow_pipeline.launch import Placement, crash_summary, project_instance, run_tune, verdict_exit_code

    bar = _ProgressBar()
    progress = logging.getLogger(PROGRESS_LOGGER)
    try:
        tune = TuneConfig(
            profile=profile,
            profiles_file=profiles_file,
            space=space,
            objective=objective,
            max_sets=max_sets,
            seed=seed,
            train_hours=train_hours,
            window_seconds=window_seconds,
            min_windows=min_windows,
            workers=workers,
            touch_dwell_ms=touch_dwell_ms,
            min_lot=min_lot,
        )
        for symbol in _symbols(symbols):  # a bad profile or search fails here, before any hour is ingested
            search_of(tune, strategy_for(tune, symbol)[0], symbol)
        keys = _partitions(hours, symbols, stream)
        period_of([key.keys_by_dimension["hour"] for key in keys])
        placement = Placement(stream=stream, data_dir=data_dir, artifacts_dir=artifacts_dir)
        progress.addHandler(bar)
        progress.setLevel(logging.DEBUG)
        progress.propagate = False
        with project_instance() as instance:
            table = run_tune(keys, tune, placement, instance, console_level())
    except dg.Failure as exc:
        _fail(str(exc.description))
        return
    except (*_SETUP_ERRORS, ValueError) as exc:
        _fail(_error_text(exc))
        return
    finally:
        progress.removeHandler(bar)
    _print_table(table.drop(columns=["run"]))
    _exit_for_runs(verdict_exit_code(table, "verdict", [GO]), crash_summary(table, "reasons", "verdict"))


@main.command("with-redis", context_settings={"ignore_unknown_options": True})
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def with_redis(command: tuple[str, ...]) -> None:
    """Run COMMAND with REDIS_URL set: yours if set, else an embedded server stopped when COMMAND ends.

    Example: shadow-pipeline with-redis -- dagster dev
    """
    try:
        url = resolve_url()
        connect(url).close()  # a refused password or an unreachable server is this command's error, not COMMAND's
    except _SETUP_ERRORS as exc:
        _fail(_error_text(exc))
        return
    log.info("REDIS_URL=%s for: %s", redact(url), " ".join(command))
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        # The command shuts down first; Redis stops after it, when this process exits.
        if child is not None:
            child.send_signal(signum)

    # Installed before the fork: a handled signal is reset to its default in the child, whereas an ignored one
    # (SIGINT in a background job) would stay ignored and `dagster dev` could never be stopped gracefully.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    child = subprocess.Popen(list(command), env={**os.environ, REDIS_URL_ENV: url})
    sys.exit(child.wait())


@main.command("demo")
@click.option(
    "--minutes", type=_config_range(FeedConfig, "minutes"), default=20.0, show_default=True, help="Synthetic minutes."
)
@click.option("--symbols", default="", help="Comma-separated; default: the configured partitions.")
@click.option("--seed", type=_config_range(FeedConfig, "seed"), default=default(FeedConfig, "seed"), show_default=True)
@click.option("--profile", default=default(ShadowConfig, "profile"), show_default=True)
def demo(minutes: float, symbols: str, seed: int, profile: str) -> None:
    """Replay the synthetic market and run it through Dagster to the shadow report, on the embedded default.

    Exit status: 0 when every run completed (whatever the verdicts), 2 when a run crashed or setup failed."""
    from shadow_pipeline.demo import run_demo

    try:
        report, completed = run_demo(minutes, _symbols(symbols), seed, profile)
    except (*_SETUP_ERRORS, ValueError) as exc:
        _fail(_error_text(exc))
        return
    click.echo(report)
    _exit_for_runs(0 if completed else 2, "a run failed: its reason is in the table above")


def _paper_keys(hours: tuple[str, ...], symbols: str) -> list[tuple[str, str]]:
    """(hour, symbol) pairs, checked as partitions (a malformed hour or an unknown symbol is this command's error)."""
    from shadow_pipeline.launch import partition_keys

    keys = partition_keys(list(hours), _symbols(symbols))
    return [(k.keys_by_dimension["hour"], k.keys_by_dimension["symbol"]) for k in keys]


@main.command("bot")
@click.option("--hour", "hours", multiple=True, required=True, help="Hourly partition, e.g. 2024-08-09-00:00 (repeat).")
@click.option("--symbols", default="", help="Comma-separated; default: the configured partitions.")
@click.option("--profile", default="moderate", show_default=True, help="A profile with a built-in strategy.")
@click.option("--profiles-file", default=None, help="Default: $SHADOW_PROFILES, else the packaged profiles.")
@click.option("--stream", default=DEFAULT_STREAM, show_default=True, help="The tick stream the bot decides on.")
def bot_command(hours: tuple[str, ...], symbols: str, profile: str, profiles_file: str | None, stream: str) -> None:
    """The example bot: the profile's strategy decides on each hour's ticks from the tick stream and publishes the
    orders it would send to bot:orders:{symbol} (docs/bot-orders.md). Exit status: 0 published, 2 an error."""
    from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
    from shadow_pipeline.paper.bot import run_bot, stream_ticks

    try:
        keys = _paper_keys(hours, symbols)
        client = connect(decode_responses=True)
        profiles = load_profiles(profiles_file)
        for hour, symbol in keys:
            params, _ = resolve(profiles, profile, symbol)
            ticks = stream_ticks(client, stream, symbol, hour)
            published = run_bot(client, ticks, params, hour)
            click.echo(f"{hour} {symbol}: {len(ticks)} ticks, {published} intents published to bot:orders:{symbol}")
    except (*_SETUP_ERRORS, ValueError) as exc:
        _fail(_error_text(exc))


@main.command("venue")
@click.option("--hour", "hours", multiple=True, required=True, help="Hourly partition, e.g. 2024-08-09-00:00 (repeat).")
@click.option("--symbols", default="", help="Comma-separated; default: the configured partitions.")
@click.option("--profile", default="external", show_default=True, help="Grid, fees and latency of the order path.")
@click.option("--profiles-file", default=None, help="Default: $SHADOW_PROFILES, else the packaged profiles.")
@click.option("--stream", default=DEFAULT_STREAM, show_default=True, help="The tick stream (the market).")
@click.option(
    "--queue-model",
    type=_choice(DryRunConfig, "queue_model"),
    default="risk_averse",
    show_default=True,
    help="hftbacktest's queue model.",
)
@click.option(
    "--entry-latency-ms",
    type=_ranged(0.0, 60_000.0, integer=False),
    default=None,
    help="The venue's order entry latency, when it is not the profile's.",
)
def venue_command(
    hours: tuple[str, ...],
    symbols: str,
    profile: str,
    profiles_file: str | None,
    stream: str,
    queue_model: str,
    entry_latency_ms: float | None,
) -> None:
    """The paper venue: the bot's orders of each hour matched by hftbacktest (on the full book when
    lob:depth:{symbol} has the hour), fills with client order ids to dryrun:fills:{symbol}, never twice
    (docs/paper-venue.md). Exit status: 0 matched, 2 an error."""
    from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
    from shadow_pipeline.domain.validation.hftbacktest_engine import HftbacktestMissing
    from shadow_pipeline.paper.bot import stream_ticks
    from shadow_pipeline.paper.venue import run_venue

    try:
        keys = _paper_keys(hours, symbols)
        client = connect(decode_responses=True)
        profiles = load_profiles(profiles_file)
        for hour, symbol in keys:
            params, _ = resolve(profiles, profile, symbol)
            ticks = stream_ticks(client, stream, symbol, hour)
            result, _ = run_venue(client, ticks, params, hour, queue_model, entry_latency_ms)
            click.echo(
                f"{hour} {symbol}: {result.orders} orders, {result.fills} fills ({result.published} new) to "
                f"dryrun:fills:{symbol}; market {result.market}"
            )
    except (*_SETUP_ERRORS, ValueError, HftbacktestMissing) as exc:
        _fail(_error_text(exc))


@main.command("loop")
@click.option(
    "--minutes", type=_config_range(FeedConfig, "minutes"), default=20.0, show_default=True, help="Synthetic minutes."
)
@click.option("--symbols", default="BTCUSDT", show_default=True, help="Comma-separated instruments.")
@click.option("--seed", type=_config_range(FeedConfig, "seed"), default=7, show_default=True)
@click.option(
    "--bot-profile", default="moderate", show_default=True, help="The built-in strategy the example bot runs."
)
@click.option("--shadow-profile", default="external", show_default=True, help="A profile with strategy external.")
@click.option(
    "--queue-model",
    type=_choice(DryRunConfig, "queue_model"),
    default="risk_averse",
    show_default=True,
    help="The paper venue's hftbacktest queue model.",
)
@click.option(
    "--recording",
    "recordings",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A Binance USD-M recording (repeat): its ticks and full book instead of the synthetic market.",
)
def loop_command(
    minutes: float,
    symbols: str,
    seed: int,
    bot_profile: str,
    shadow_profile: str,
    queue_model: str,
    recordings: tuple[str, ...],
) -> None:
    """Bot -> orders -> shadow, venue -> fills -> reconciliation, on the embedded default (docs/reconciliation.md).

    Exit status: 0 when every step ran (whatever the gates say), 2 when a run crashed or setup failed."""
    from shadow_pipeline.paper.loop import LoopSettings, run_loop

    chosen = LoopSettings(minutes, tuple(_symbols(symbols)), seed, bot_profile, shadow_profile, queue_model, recordings)
    try:
        report, completed = run_loop(chosen)
    except (*_SETUP_ERRORS, ValueError) as exc:
        _fail(_error_text(exc))
        return
    click.echo(report)
    _exit_for_runs(0 if completed else 2, "a run failed: its reason is in the tables above")


main.add_command(ci_dryrun_command)
main.add_command(compare_command)
main.add_command(feed_command)
main.add_command(fills_command)
main.add_command(instance)
main.add_command(feed_server_command)
main.add_command(live_shadow_command)
main.add_command(live_validate_command)
main.add_command(reshard_command)

if __name__ == "__main__":
    main()
