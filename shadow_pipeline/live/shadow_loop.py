"""The live shadow's loop: read the tick stream, keep each open hour's ticks per instrument, and publish each
window's KPIs when it closes (``closing``), computed by the batch's own code on the hour's ticks so far.

At a close the hour's received ticks go through the batch's path: ``normalize`` (``normalized_ticks``), ``shadow``
and ``iteration_kpis`` (``shadow_iterations``) with the profile resolved by ``ShadowConfig.strategy``. The KPIs are
causal, so a closed window's live row is the partition's row; the ``live_windows_match_batch`` check holds it to
that. Entries are parsed as the ingest parses them; invalid ones are skipped and counted (the ingest owns the
dead letters). Reading uses plain XREAD (no consumer group: the live shadow takes nothing from the ingest).

Where to resume is kept in Redis (``redis_io.live_position``): a restart re-reads the oldest open hour's ticks,
recomputes, and republishes nothing (records are appended once).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import redis

from shadow_pipeline.defs.shadow.assets import ShadowConfig
from shadow_pipeline.domain.kpis.per_window import iteration_kpis
from shadow_pipeline.domain.kpis.records import iteration_records
from shadow_pipeline.domain.kpis.run_notes import RunNotes
from shadow_pipeline.domain.market.quality import normalize
from shadow_pipeline.domain.market.reorder import DEFAULT_WATERMARK_NS
from shadow_pipeline.domain.market.windows import hour_bounds, hour_keys
from shadow_pipeline.domain.simulation.shadow import is_external, shadow
from shadow_pipeline.domain.strategies.external.intents import Grid
from shadow_pipeline.domain.strategies.external.plan import OrderPlan
from shadow_pipeline.domain.strategies.profiles import (
    ProfileError,
    StrategyParams,
    Thresholds,
    load_profiles,
)
from shadow_pipeline.ingest.deliveries import Delivery, from_reply
from shadow_pipeline.live.closing import Frontier, closing_arrivals, thresholds
from shadow_pipeline.live.hour_ticks import HourTicks
from shadow_pipeline.live.metrics import LiveMetrics
from shadow_pipeline.redis_io import live_kpis, live_position
from shadow_pipeline.redis_io.order_stream import load_intents
from shadow_pipeline.redis_io.raw_reply import read_raw
from shadow_pipeline.reporting.notes import commit_sha

log = logging.getLogger(__name__)
_NS = 1_000_000_000
RETRY_SECONDS = 1.0


class LiveShadowError(ValueError):
    """A configuration the live shadow cannot run (the CLI prints it as one ``error:`` line)."""


@dataclass(frozen=True)
class LiveOptions:
    stream: str
    config: ShadowConfig = field(default_factory=ShadowConfig)
    symbols: tuple[str, ...] | None = None  # None: every instrument seen
    watermark_ns: int = DEFAULT_WATERMARK_NS
    until_idle_s: float | None = None  # stop once no entry arrived for this long (None: until stopped)
    start_id: str = "0-0"  # read after this id on a first start ("0-0": the whole stream, "$": new entries only)
    block_ms: int = 100
    batch: int = 10_000
    source: str = ""  # the (redacted) Redis the ticks come from, for the run notes

    @property
    def position_field(self) -> str:
        return f"{self.config.profile}|{self.config.window_seconds:g}"


@dataclass
class LiveSummary:
    ticks: int = 0
    invalid: int = 0
    late: int = 0  # ticks of an hour already finished (closed by a later hour's tick)
    published: int = 0
    already: int = 0  # windows found published before (a restart)
    delays_ms: list[float] = field(default_factory=list)

    def line(self) -> str:
        delays = np.array(self.delays_ms)
        timing = (
            f", close to publish median {np.median(delays):.0f} ms, p99 {np.quantile(delays, 0.99):.0f} ms"
            if len(delays)
            else ""
        )
        return (
            f"live-shadow: {self.ticks} ticks read, {self.invalid} invalid entries skipped, {self.late} late ticks "
            f"of finished hours, {self.published} windows published ({self.already} published before){timing}"
        )


@dataclass
class _Instrument:
    params: StrategyParams
    thresholds: Thresholds
    frontier: Frontier
    hours: dict[str, HourTicks] = field(default_factory=dict)
    finished: str = ""  # the newest hour whose every window is published


def _check_profile(config: ShadowConfig) -> None:
    """A profile the live shadow cannot run fails before any read, whatever instruments the stream holds."""
    try:
        profiles = load_profiles(config.profiles_file)
    except ProfileError as exc:
        raise LiveShadowError(str(exc)) from None
    if config.profile not in profiles.names:
        raise LiveShadowError(
            f"{profiles.source}: unknown profile {config.profile!r}; known: {', '.join(profiles.names)}"
        )


class LiveShadow:
    """One live shadow over one stream and one configuration (profile, window length)."""

    def __init__(self, client: redis.Redis, options: LiveOptions, metrics: LiveMetrics | None = None) -> None:
        self.client = client
        self.options = options
        self.metrics = metrics or LiveMetrics()
        self.summary = LiveSummary()
        self.window_ns = round(options.config.window_seconds * _NS)
        self.commit = commit_sha()
        self._instruments: dict[str, _Instrument | None] = {}
        self._last_id = "0-0"
        self._finished: dict[str, str] = {}
        _check_profile(options.config)
        for symbol in options.symbols or ():
            self._instrument(symbol)  # a bad profile or symbol fails before anything is read

    def _instrument(self, symbol: str) -> _Instrument | None:
        if symbol not in self._instruments:
            try:
                params, gates = self.options.config.strategy(symbol)
            except ProfileError as exc:
                if self.options.symbols:
                    raise LiveShadowError(str(exc)) from None
                log.warning(f"{symbol}: not shadowed live: {exc}")
                self._instruments[symbol] = None
                return None
            instrument = _Instrument(params, gates, Frontier(self.options.watermark_ns))
            instrument.finished = self._finished.get(symbol, "")
            self._instruments[symbol] = instrument
        return self._instruments[symbol]

    # -- position ---------------------------------------------------------------------------------------------

    def resume(self) -> str:
        """Load the stored position (``redis_io.live_position``); returns the id to read after."""
        stored = live_position.load(self.client, self.options.stream, self.options.position_field)
        if stored is None:
            self._last_id = self._start_id()
            return self._last_id
        self._finished = stored.finished
        for symbol, instrument in self._instruments.items():
            if instrument is not None:
                instrument.finished = max(instrument.finished, self._finished.get(symbol, ""))
        self._last_id = stored.read_after()
        return self._last_id

    def _start_id(self) -> str:
        """The first start's id; ``$`` pinned to the stream's newest entry now (XREAD ``$`` at every call would miss
        the entries that arrive between two calls)."""
        if self.options.start_id != "$":
            return self.options.start_id
        newest: list[Any] = self.client.xrevrange(self.options.stream, count=1)  # type: ignore[assignment]
        if not newest:
            return "0-0"
        entry_id = newest[0][0]
        return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)

    def _save_position(self) -> None:
        open_firsts = [h.first_entry for i in self._instruments.values() if i for h in i.hours.values()]
        finished = {**self._finished, **{s: i.finished for s, i in self._instruments.items() if i and i.finished}}
        resume = min(open_firsts, key=live_position.id_key) if open_firsts else None
        position = live_position.Position(resume, None if resume else self._last_id, finished)
        live_position.save(self.client, self.options.stream, self.options.position_field, position)

    # -- the loop ---------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> LiveSummary:
        """Read and publish until ``stop`` is set or the stream has been idle ``until_idle_s``. A lost connection
        while reading is retried (the state is in memory); a failed publish ends the run with the error, and a
        restart resumes without republishing (``resume``)."""
        stop = stop or threading.Event()
        after = self.resume()
        idle_since = time.monotonic()
        while not stop.is_set():
            delivery = self._read(after, stop)
            if delivery is None or len(delivery) == 0:
                if self.options.until_idle_s is not None and time.monotonic() - idle_since >= self.options.until_idle_s:
                    break
                continue
            idle_since = time.monotonic()
            after = self._last_id = str(delivery.ids[-1])
            self.take(delivery)
            self._save_position()
        self._save_position()
        return self.summary

    def _read(self, after: str, stop: threading.Event) -> Delivery | None:
        command = ("XREAD", "COUNT", self.options.batch, "BLOCK", self.options.block_ms, "STREAMS")
        try:
            return from_reply(read_raw(self.client, *command, self.options.stream, after))
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
            log.warning(f"live shadow: reading {self.options.stream} failed ({exc}); retrying in {RETRY_SECONDS:g} s")
            stop.wait(RETRY_SECONDS)
            return None

    def take(self, delivery: Delivery) -> None:
        """One batch of entries: count, keep the ticks, and publish every window they close."""
        ticks, rejects = delivery.parsed.ticks, delivery.parsed.rejects
        self.summary.invalid += len(rejects)
        self.metrics.invalid.inc(len(rejects))
        self.summary.ticks += len(ticks)
        self.metrics.ticks.inc(len(ticks))
        if self.options.symbols:
            ticks = ticks[ticks["symbol"].isin(self.options.symbols)]
        for symbol, arrived in ticks.groupby("symbol", sort=False):
            instrument = self._instrument(str(symbol))
            if instrument is not None:
                self._advance(str(symbol), instrument, arrived.reset_index(drop=True))

    def _advance(self, symbol: str, instrument: _Instrument, arrived: pd.DataFrame) -> None:
        ts = arrived["ts_server"].to_numpy(dtype=np.int64)
        frontier = instrument.frontier.advance(ts)
        hours = hour_keys(ts)
        open_hours = hours > instrument.finished
        self.summary.late += int((~open_hours).sum())
        for hour, part in arrived[open_hours].groupby(hours[open_hours], sort=False):
            instrument.hours.setdefault(str(hour), HourTicks(str(part["entry_id"].iloc[0]))).add(part)
        for open_hour in sorted(instrument.hours):
            self._close(symbol, instrument, open_hour, frontier, arrived)

    def _close(
        self, symbol: str, instrument: _Instrument, hour: str, frontier: np.ndarray, arrived: pd.DataFrame
    ) -> None:
        """Publish the windows of ``hour`` that this batch closed (all that remain once a later hour's tick is
        released)."""
        state = instrument.hours[hour]
        end = hour_bounds(hour)[1]
        first = state.first_ts // self.window_ns
        known = int(state.last_ts // self.window_ns - first + 1)
        needed = thresholds(first, known, self.window_ns, self._horizon_ns(instrument), end)
        if len(needed) <= state.published or needed[state.published] > frontier[-1]:
            if frontier[-1] >= end:  # every window was published already (before a restart)
                self._finish(instrument, hour)
            return
        params, gates = instrument.params, instrument.thresholds
        plan = self._bot_orders(params, hour) if is_external(params) else None
        if plan is not None and not len(plan):
            return  # no order of the bot in the hour yet: nothing to shadow (the partition would fail likewise)
        ticks = normalize(state.received())
        rows = iteration_kpis(ticks, shadow(ticks, params, plan), params, gates, self.options.config.window_seconds)
        needed = thresholds(first, len(rows), self.window_ns, self._horizon_ns(instrument), end)
        closed = np.flatnonzero(needed <= frontier[-1])
        closed = closed[closed >= state.published]
        at = closing_arrivals(frontier, needed[closed])
        notes = RunNotes(
            hour=hour,
            symbol=symbol,
            profile=self.options.config.profile,
            window_seconds=float(self.options.config.window_seconds),
            commit=self.commit,
            source=f"{self.options.source} stream {self.options.stream} (live)",
            params=params,
            thresholds=gates,
            ingest="",
            latency_notes="; ".join(rows.attrs.get("notes", [])),
            feed_offset_ms=float(rows.attrs.get("feed_offset_ms", float("nan"))),
        )
        records = iteration_records(rows.iloc[closed], notes)
        entry_ids = arrived["entry_id"].to_numpy()[at]
        closed_ns = arrived["ts_broker"].to_numpy(dtype=np.int64)[at]
        published_ns = time.time_ns()
        for record, entry_id, close in zip(records, entry_ids, closed_ns, strict=True):
            record.update(source=live_kpis.LIVE, closed_by=str(entry_id), closed_ns=int(close))
            record["published_ns"] = published_ns
        added = live_kpis.publish(self.client, records)
        self.summary.published += added
        self.summary.already += len(records) - added
        if added:
            for record in records:
                self.metrics.published(record)
                self.summary.delays_ms.append((published_ns - int(record["closed_ns"])) / 1e6)
        state.published = int(closed[-1]) + 1 if len(closed) else state.published
        if frontier[-1] >= end:  # a later hour's tick is released: every window of the hour is closed
            self._finish(instrument, hour)

    def _bot_orders(self, params: StrategyParams, hour: str) -> OrderPlan:
        """The bot's orders decided in ``hour`` as its order stream holds them now (strategy ``external``), read
        and checked exactly as the partition reads them; rejected intents are dead-lettered once, by either."""
        loaded = load_intents(self.client, params.symbol, Grid(params.symbol, params.tick_size, params.lot_step))
        return loaded.checked.plan.decided_within(*hour_bounds(hour))

    @staticmethod
    def _finish(instrument: _Instrument, hour: str) -> None:
        """Forget a closed hour; its late ticks are counted, never shadowed."""
        del instrument.hours[hour]
        instrument.finished = max(instrument.finished, hour)

    @staticmethod
    def _horizon_ns(instrument: _Instrument) -> int:
        return round(instrument.params.markout_horizon_s * _NS)
