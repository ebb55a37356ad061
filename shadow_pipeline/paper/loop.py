"""`make loop`: bot -> orders -> shadow, and venue -> fills -> reconciliation, on the embedded default.

The demo's market (the synthetic feed replayed into the tick stream through Dagster), then per (hour, symbol):
the built-in strategy's own shadow (which also ingests the hour), the example bot publishing that strategy's
orders to its order stream, the paper venue matching them with hftbacktest and publishing fills with client ids,
and ``reconcile_job``: the shadow of the bot's orders (profile ``external``), its KPIs exported, the per-window
dry-run against the venue's fills and the per-order reconciliation. The loop owns its Redis keys (the order and
fills streams of its symbols are emptied first) and its data folder (``<data dir>/loop``), so a rerun starts
clean. Agreement with the paper venue is agreement with another model, not with a live venue.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pandas as pd
import redis
from upath import UPath

from shadow_pipeline import settings
from shadow_pipeline.defs.dryrun.assets import DryRunConfig
from shadow_pipeline.defs.feed.assets import FeedConfig
from shadow_pipeline.defs.feed.jobs import FEED_REPLAY_JOB
from shadow_pipeline.defs.shadow.assets import ShadowConfig
from shadow_pipeline.demo import DEMO_WINDOW_SECONDS, demo_hours, stream_summary
from shadow_pipeline.domain.simulation.shadow import is_external
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.feed.replay import ReplayOptions, replay, replay_depth
from shadow_pipeline.feed.sources import open_depth, open_source
from shadow_pipeline.launch import (
    Placement,
    console_level,
    default,
    definitions,
    partition_keys,
    project_instance,
    run_config,
    run_reconcile,
    run_shadow,
    stream_hours,
)
from shadow_pipeline.paper.bot import partition_ticks, read_stream_ticks, run_bot
from shadow_pipeline.paper.venue import run_venue
from shadow_pipeline.redis_io.connect import connect
from shadow_pipeline.redis_io.keys import append_index, dead_letter_stream, depth_stream, fills_stream, order_stream
from shadow_pipeline.resources import TickStreamResource


@dataclass(frozen=True)
class LoopSettings:
    minutes: float = 20.0
    symbols: tuple[str, ...] = ("BTCUSDT",)
    seed: int = 7
    bot_profile: str = "moderate"  # the built-in strategy the example bot runs
    shadow_profile: str = "external"  # the shadow of the bot's orders
    queue_model: str = "risk_averse"  # the paper venue's hftbacktest queue model
    recordings: tuple[str, ...] = ()  # Binance USD-M recordings (ticks and full depth) instead of the synthetic feed


def _forget(client: redis.Redis, symbols: Sequence[str]) -> None:
    """Empty the loop's order and fills streams, so ids of an earlier loop are not read as reused."""
    for symbol in symbols:
        orders, fills = order_stream(symbol), fills_stream(symbol)
        client.delete(orders, dead_letter_stream(orders), append_index(dead_letter_stream(orders)))
        client.delete(fills, append_index(fills))


def _replay_recordings(client: redis.Redis, stream: str, recordings: Sequence[str], symbols: Sequence[str]) -> str:
    """The recordings' ticks into the tick stream and their books into the depth streams (a fresh stream)."""
    files = [Path(r) for r in recordings]
    client.delete(stream, *(depth_stream(key) for key in symbols))
    replay(
        client, open_source("binance", files=files).chunks, ReplayOptions(stream=stream, maxlen=None, progress=False)
    )
    written = replay_depth(client, open_depth(files))
    return ", ".join(f"{key} {count} entries" for key, count in written.items())


def _hour_symbol(key: dg.MultiPartitionKey) -> tuple[str, str]:
    return key.keys_by_dimension["hour"], key.keys_by_dimension["symbol"]


def _span_s(ticks: pd.DataFrame) -> float:
    """Seconds of exchange time the ticks cover (0 without ticks)."""
    return (int(ticks["ts_server"].iloc[-1]) - int(ticks["ts_server"].iloc[0])) / 1e9 if len(ticks) else 0.0


def run_loop(loop: LoopSettings) -> tuple[str, bool]:
    """What the loop prints, and whether every step ran (a failed gate is a verdict, not a failed step)."""
    profiles = load_profiles()
    for symbol in loop.symbols:  # the profiles' roles, checked before anything runs
        bot_params, _ = resolve(profiles, loop.bot_profile, symbol)
        shadow_params, _ = resolve(profiles, loop.shadow_profile, symbol)
        if is_external(bot_params) or not is_external(shadow_params):
            raise ValueError(
                f"the loop's bot runs a built-in strategy and its shadow fills the bot's orders: --bot-profile "
                f"{loop.bot_profile} runs {bot_params.strategy}, --shadow-profile {loop.shadow_profile} runs "
                f"{shadow_params.strategy} (want a built-in strategy and external)"
            )
    client = connect(decode_responses=True)
    _forget(client, loop.symbols)
    folder = UPath(settings.data_dir()) / "loop"
    if folder.exists():
        shutil.rmtree(folder.path)
    placement = Placement(data_dir=str(folder))
    stream = default(TickStreamResource, "stream")
    lines: list[str] = []
    with project_instance() as instance:
        if loop.recordings:
            fed = _replay_recordings(client, stream, loop.recordings, loop.symbols)
            keys = partition_keys(stream_hours(client, stream), loop.symbols)
            lines += [f"replayed {len(loop.recordings)} recordings with their books ({fed})"]
        else:
            feed = (
                definitions()
                .resolve_job_def(FEED_REPLAY_JOB)
                .execute_in_process(
                    run_config=run_config(
                        placement,
                        {"replayed_feed": FeedConfig(minutes=loop.minutes, symbols=list(loop.symbols), seed=loop.seed)},
                        console_level(),
                    ),
                    instance=instance,
                )
            )
            keys = partition_keys(demo_hours(loop.minutes), loop.symbols)
            lines += [f"{FEED_REPLAY_JOB}: {'success' if feed.success else 'FAILED'}"]
            if not feed.success:
                return "\n".join(lines), False
        lines += [stream_summary(client, stream), ""]
        everything = read_stream_ticks(client, stream)  # one read of the stream for every partition
        ticks_of = {
            key: partition_ticks(everything, key.keys_by_dimension["symbol"], key.keys_by_dimension["hour"])
            for key in keys
        }
        short = [key for key, ticks in ticks_of.items() if _span_s(ticks) < DEMO_WINDOW_SECONDS]
        keys = [key for key in keys if key not in short]
        lines += [
            f"skipped {hour} {symbol}: {len(ticks_of[key])} ticks over {_span_s(ticks_of[key]):.3g} s, less than one "
            f"{DEMO_WINDOW_SECONDS:g} s window"
            for key in short
            for hour, symbol in [_hour_symbol(key)]
        ]
        own = run_shadow(
            keys,
            ShadowConfig(profile=loop.bot_profile, window_seconds=DEMO_WINDOW_SECONDS),
            placement,
            instance,
            console_level(),
        )
        rows = []
        for key in keys:
            hour, symbol = _hour_symbol(key)
            bot_params, _ = resolve(profiles, loop.bot_profile, symbol)
            shadow_params, _ = resolve(profiles, loop.shadow_profile, symbol)
            ticks = ticks_of[key]
            intents = run_bot(client, ticks, bot_params, hour)
            venue, _ = run_venue(client, ticks, shadow_params, hour, loop.queue_model)
            rows.append(
                {
                    "hour": hour,
                    "symbol": symbol,
                    "ticks": len(ticks),
                    "intents": intents,
                    "orders": venue.orders,
                    "venue_fills": venue.fills,
                    "published": venue.published,
                    "venue_market": venue.market,
                }
            )
        reconciled = run_reconcile(
            keys,
            ShadowConfig(profile=loop.shadow_profile, window_seconds=DEMO_WINDOW_SECONDS),
            DryRunConfig(reality="fills"),
            placement,
            instance,
            console_level(),
        )
    number = lambda v: f"{v:.4g}"  # noqa: E731
    lines += [
        f"1. the built-in strategy's shadow (profile {loop.bot_profile}):",
        own[["hour", "symbol", "run", "verdict", "total_fills", "net_bps"]].to_string(index=False, float_format=number),
        "",
        f"2. the example bot's orders ({order_stream('<symbol>')}) and the paper venue's fills "
        f"({fills_stream('<symbol>')}, hftbacktest {loop.queue_model.replace('_', '-')} queue):",
        pd.DataFrame(rows).to_string(index=False),
        "",
        f"3. the shadow of the bot's orders (profile {loop.shadow_profile}) reconciled order by order with the "
        f"venue's fills (reports under {settings.artifacts_dir() / 'dryrun'}):",
        reconciled.drop(columns=["report"]).to_string(index=False, float_format=number),
        "",
        "Agreement with the paper venue is agreement with another model (hftbacktest), not with a live venue.",
    ]
    completed = bool((own["run"] == "success").all()) and bool((reconciled["run"] == "success").all())
    return "\n".join(lines), completed
