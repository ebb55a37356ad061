"""`shadow-pipeline live-validate`: the seed's Step 7 as one command (``live.validate`` runs the services)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path

import click
import pydantic

from shadow_pipeline import settings
from shadow_pipeline.cli_errors import fail as _fail
from shadow_pipeline.defs.dryrun.assets import DryRunConfig
from shadow_pipeline.defs.shadow.assets import ShadowConfig
from shadow_pipeline.domain.market.instruments import SYMBOL_PATTERN
from shadow_pipeline.feed.live.venues import PROTOCOLS
from shadow_pipeline.launch import (
    Placement,
    console_level,
    crash_summary,
    partition_keys,
    project_instance,
    run_dryrun,
    stream_hours,
    verdict_exit_code,
)
from shadow_pipeline.live.validate import LiveValidation, ValidationError, run_services
from shadow_pipeline.redis_io.connect import connect, resolve_url


def _checked_symbols(raw: str) -> tuple[str, ...]:
    chosen = tuple(s.strip() for s in raw.split(",") if s.strip())
    bad = [s for s in chosen if SYMBOL_PATTERN.fullmatch(s) is None]
    if not chosen or bad:
        raise ValueError(f"--symbols {raw!r}: want comma-separated symbols of A-Z0-9 (e.g. BTCUSDT,ETHUSDT)")
    return chosen


def _finite(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not math.isfinite(value):
        raise click.BadParameter(f"{value} is not a finite number")
    return value


def _progress(want: int) -> Callable[[dict[str, int]], None]:
    shown: dict[str, int] = {}

    def show(counts: dict[str, int]) -> None:
        if counts != shown:
            shown.update(counts)
            click.echo("live windows: " + ", ".join(f"{k} {v}/{want}" for k, v in counts.items()), err=True)

    return show


@click.command("live-validate")
@click.option("--venue", type=click.Choice(sorted(PROTOCOLS)), default=LiveValidation.venue, show_default=True)
@click.option(
    "--symbols",
    default=",".join(LiveValidation.symbols),
    show_default=True,
    help="Comma-separated instruments of the venue.",
)
@click.option("--windows", type=click.IntRange(1, 10_000), default=LiveValidation.windows, show_default=True)
@click.option(
    "--window-seconds",
    type=click.FloatRange(0.1, 3600),
    default=LiveValidation.window_seconds,
    show_default=True,
    help="Window length (s).",
)
@click.option("--profile", default=LiveValidation.profile, show_default=True)
@click.option(
    "--stream", default=LiveValidation.stream, show_default=True, help="Tick stream (a fresh one: see docs/live.md)."
)
@click.option("--network", is_flag=True, help="The venue's own endpoints (default: the local venue server).")
@click.option(
    "--speed",
    type=click.FloatRange(0.01, 1000),
    default=LiveValidation.speed,
    show_default=True,
    callback=_finite,
    help="Local server's pace (x real time). Above 1 the feed leg of latency is not real: the market's clock then "
    "runs faster than the receive clock.",
)
@click.option(
    "--recording",
    "recordings",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The local server plays these recordings (default: the synthetic market).",
)
@click.option("--timeout", type=click.FloatRange(1, 86_400), default=LiveValidation.timeout_seconds, show_default=True)
@click.option(
    "--logs",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder of the services' logs (default: <artifacts>/live-validate).",
)
def live_validate_command(
    venue: str,
    symbols: str,
    windows: int,
    window_seconds: float,
    profile: str,
    stream: str,
    network: bool,
    speed: float,
    recordings: tuple[Path, ...],
    timeout: float,
    logs: Path | None,
) -> None:
    """Feed, ingest and live shadow for WINDOWS windows, then the dry-run's accuracy report and Go/No-Go.

    Exit status: 0 Go, 1 a KPI FAIL or live windows that differ from the batch's, 2 an error (a service failed,
    the windows never came, bad input)."""

    try:
        chosen = _checked_symbols(symbols)
        options = LiveValidation(
            venue=venue,
            symbols=chosen,
            windows=windows,
            window_seconds=window_seconds,
            profile=profile,
            stream=stream,
            network=network,
            speed=speed,
            recordings=recordings,
            timeout_seconds=timeout,
        )
        if logs is not None:
            options = dataclasses.replace(options, logs=logs)
        shadow = ShadowConfig(profile=profile, window_seconds=window_seconds)
        for instrument in options.instruments():  # a bad profile is refused before any service starts
            shadow.strategy(instrument)
        url = resolve_url()
        client = connect(url)
        run_services(options, settings.services_environment(url), client, _progress(windows))
        keys = partition_keys(stream_hours(connect(url, decode_responses=True), stream), options.instruments())
        with project_instance() as instance:
            table = run_dryrun(
                keys, shadow, DryRunConfig(iterations=windows), Placement(stream=stream), instance, console_level()
            )
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        _fail(f"{'.'.join(map(str, first['loc']))}: {first['msg']}")
        return
    except (ValidationError, ValueError, OSError, ConnectionError) as exc:  # ProfileError is a ValueError
        _fail(str(exc))
        return
    click.echo(table.to_markdown(index=False))
    crash = crash_summary(table, "report", "status")
    if crash:
        click.echo(f"error: {crash}", err=True)
    code = verdict_exit_code(table, "status", ["PASS", "WARN"])
    if code == 0 and table["live_vs_batch"].str.contains("DIFFER").any():
        click.echo("No-Go: the live windows differ from the batch's (check live_windows_match_batch)", err=True)
        code = 1
    raise SystemExit(code)
