"""`shadow-pipeline feed-server`: a local stand-in for a venue's market-data endpoints (docs/venue-server.md).

Kept apart from ``cli.py`` so that it starts without Dagster: a test or ``make shadow-live-validate`` starts it
often. Its refusals have the command line's one format: one ``error:`` line, exit 2.
"""

from __future__ import annotations

import asyncio
import json
import signal
import typing
from pathlib import Path

import click

from shadow_pipeline.feed.venue_server import (
    VENUES,
    FrameSource,
    ServerFaults,
    VenueServer,
    recording_frames,
    synthetic_frames,
)

_SYNTHETIC_SYMBOLS = ("BTCUSDT", "ETHUSDT")


class _OneLineError(click.ClickException):
    exit_code = 2

    def show(self, file: typing.IO[typing.Any] | None = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class _Command(click.Command):
    """Usage errors as one ``error:`` line also when the command runs on its own, not under the group."""

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: typing.Any
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except click.UsageError as exc:
            raise _OneLineError(f"{exc.format_message()} (see shadow-pipeline {self.name} -h)") from None


class _Finite(click.FloatRange):
    """A finite number >= 0, or > 0 (FloatRange alone lets NaN and infinity through)."""

    def __init__(self, min_open: bool = False) -> None:
        super().__init__(0.0, None, min_open=min_open)

    def convert(self, value: typing.Any, param: click.Parameter | None, ctx: click.Context | None) -> typing.Any:
        number = super().convert(value, param, ctx)
        if not number < float("inf"):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


_INDEX = click.IntRange(0)


def _symbols(values: tuple[str, ...]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _source(
    venue: str, recordings: tuple[Path, ...], minutes: float | None, symbols: list[str], seed: int
) -> FrameSource:
    if bool(recordings) == (minutes is not None):
        raise _OneLineError("give recording files (--recording FILE ...) or --synthetic-minutes N, one of the two")
    try:
        if minutes is not None:
            return synthetic_frames(venue, symbols or _SYNTHETIC_SYMBOLS, minutes, seed)
        return recording_frames(venue, recordings, symbols)
    except ValueError as exc:  # RecordingError is one
        raise _OneLineError(str(exc)) from None


async def _serve(server: VenueServer, as_json: bool, where: str) -> None:
    """Serve until SIGTERM or SIGINT, after printing where."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await server.start()
    except OSError as exc:
        raise _OneLineError(f"cannot listen on {where}: {exc.strerror or exc}") from None
    urls = {"venue": server.venue, "ws_url": server.ws_url, "rest_url": server.rest_url}
    click.echo(json.dumps(urls) if as_json else f"{server.venue} ws {server.ws_url} rest {server.rest_url}")
    try:
        await stop.wait()
    finally:
        await server.stop()


@click.command("feed-server", cls=_Command, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--venue", type=click.Choice(VENUES), required=True)
@click.option(
    "--recording",
    "recordings",
    multiple=True,
    type=click.Path(path_type=Path),
    help="A recording (<local ns> <frame> lines); several play merged by their stamps.",
)
@click.option(
    "--synthetic-minutes", type=_Finite(min_open=True), default=None, help="Serve the synthetic market instead."
)
@click.option("--symbols", multiple=True, help="Comma-separated; recordings: all; synthetic: BTCUSDT,ETHUSDT.")
@click.option("--seed", type=int, default=0, show_default=True, help="The synthetic market's seed.")
@click.option("--speed", type=_Finite(), default=0.0, show_default=True, help="0: as fast as clients read; N: N x.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="0: any free port.")
@click.option("--ping-interval", type=_Finite(), default=None, help="Server pings (default: the venue's).")
@click.option("--drop-after", type=click.IntRange(1), default=None, help="Cut a connection after N market frames.")
@click.option("--lose-frames", type=_INDEX, default=0, show_default=True, help="Frames that pass while it is away.")
@click.option("--stall-after", type=_INDEX, default=None, help="Send nothing for --stall-seconds after N frames.")
@click.option("--stall-seconds", type=_Finite(), default=0.0, show_default=True)
@click.option("--gap-at", type=_INDEX, default=None, help="Skip the book delta with this index.")
@click.option("--restart-at", type=_INDEX, default=None, help="Bybit: a u=1 restart at this book delta.")
@click.option("--malformed-at", type=_INDEX, default=None, help="Send the market frame with this index as non-JSON.")
@click.option("--slow-reader-seconds", type=_Finite(), default=None, help="Close (1008) a client not reading.")
@click.option("--max-connection-seconds", type=_Finite(), default=None, help="Close (1000) connections this old.")
@click.option("--json", "as_json", is_flag=True, help="Print the URLs as one JSON line.")
def feed_server_command(
    venue: str,
    recordings: tuple[Path, ...],
    synthetic_minutes: float | None,
    symbols: tuple[str, ...],
    seed: int,
    speed: float,
    host: str,
    port: int,
    ping_interval: float | None,
    drop_after: int | None,
    lose_frames: int,
    stall_after: int | None,
    stall_seconds: float,
    gap_at: int | None,
    restart_at: int | None,
    malformed_at: int | None,
    slow_reader_seconds: float | None,
    max_connection_seconds: float | None,
    as_json: bool,
) -> None:
    """Serve recorded or synthetic market frames through a venue's WebSocket and REST protocols, with faults."""
    source = _source(venue, recordings, synthetic_minutes, _symbols(symbols), seed)
    try:
        faults = ServerFaults(
            drop_after=drop_after,
            lose_frames=lose_frames,
            stall_after=stall_after,
            stall_seconds=stall_seconds,
            gap_at=gap_at,
            restart_at=restart_at,
            malformed_at=malformed_at,
            slow_reader_seconds=slow_reader_seconds,
            max_connection_seconds=max_connection_seconds,
        )
        server = VenueServer(
            venue, source, speed=speed, faults=faults, host=host, port=port, ping_interval_s=ping_interval
        )
    except ValueError as exc:
        raise _OneLineError(str(exc)) from None
    asyncio.run(_serve(server, as_json, f"{host}:{port}"))
