"""Per-window KPIs of a simulation and their per-symbol aggregate (the gates are in ``gates.py``).

Definitions follow ``/work/shared/reference/market-making-kpis.md`` (``docs/shadow-simulation.md`` gives every
formula). Shares and bps are notional-weighted because that is what exchange programmes and PnL weigh; counts
stand beside them. A window is an aligned span of exchange time, so windows of different runs line up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np
import pandas as pd

from shadow_pipeline.domain.kpis.catalogue import KPIS, names
from shadow_pipeline.domain.kpis.fills import fill_edges
from shadow_pipeline.domain.kpis.prefix_quantile import prefix_quantiles
from shadow_pipeline.domain.simulation.models import latency_model_of
from shadow_pipeline.domain.simulation.simulator import Simulation, same_ticks
from shadow_pipeline.domain.strategies.profiles import StrategyParams, Thresholds

_NS = 1_000_000_000
_MS = 1_000_000
CLOCK_OFFSET_QUANTILE = 0.005  # a low quantile of (receive - exchange time) stands for the clock offset
REPLAY_OFFSET_NS = 60 * _NS  # broker times this far from receive time were not written by the live feed
REPLAY_SPEED_TOLERANCE = 0.10  # nor were broker times whose clock runs this much faster or slower than receive time
MIN_SPEED_SPAN_NS = _NS  # shorter frames are too short to compare clock speeds
WINSOR = (0.01, 0.99)
BROKER_REPLAYED = "broker leg not measured: replayed stream"
BROKER_UNTIMED = "broker leg not measured: no broker times (ts_broker)"
FEED_UNSTAMPED = "latency: not measured (source has no receive stamp)"
# The KPIs a source without a receive stamp leaves null: every one that includes the feed or broker leg.
UNSTAMPED_KPIS = ("p95_latency_ms", "p95_raw_ms", "p99_ms", "feed_p95_ms", "broker_p95_ms")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0 (a share of nothing is undefined, not 0 or 1)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


@numba.njit(cache=True)
def _order_statistics(values: np.ndarray, ends: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
    """``(low[j, w], high[j, w])``: the values of rank ``lo[j, w]`` and ``hi[j, w]`` (0-based, ascending; ``lo``
    ascending in ``j``, ``hi`` is ``lo`` or ``lo + 1``) among window ``w``'s values, NaN for an empty window.
    Windows are consecutive runs of ``values`` ending at ``ends``.

    One partial sort per window (``np.partition`` at the ``lo`` ranks, each narrowing to what lies above the
    previous one), not a sort of the whole frame by (window, value), which was most of the KPI stage's time.
    Rank ``lo + 1`` is then the smallest value between ``lo`` and the next larger partition point.
    """
    low = np.full(lo.shape, np.nan)
    high = np.full(lo.shape, np.nan)
    start = 0
    for w in range(len(ends)):
        end = ends[w]
        if end > start:
            part = np.partition(values[start:end], lo[:, w])
            for j in range(lo.shape[0]):
                k = lo[j, w]
                low[j, w] = part[k]
                if hi[j, w] == k:
                    high[j, w] = part[k]
                    continue
                bound = end - start
                for later in range(j + 1, lo.shape[0]):
                    if lo[later, w] > k:
                        bound = lo[later, w] + 1
                        break
                high[j, w] = part[k + 1 : bound].min()
        start = end
    return low, high


def _quantiles(values: np.ndarray, counts: np.ndarray, qs: tuple[float, ...]) -> list[np.ndarray]:
    """Per-window linear-interpolation quantiles (numpy's default) of values in window order.

    Returns, per q (ascending), the (low, high, fraction) pieces so a caller can clip before interpolating.
    """
    pos = np.array(qs)[:, None] * np.maximum(counts - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.ceil(pos).astype(np.int64)
    low, high = _order_statistics(values, np.cumsum(counts), lo, hi)
    return [np.stack([low[i], high[i], pos[i] - lo[i]]) for i in range(len(qs))]


def _interp(piece: np.ndarray) -> np.ndarray:
    low, high, frac = piece
    return low + (high - low) * frac


def _broker_times(ticks: pd.DataFrame) -> np.ndarray | None:
    """``ts_broker`` (ns, the broker's clock when the tick reached it; set at ingest), or None when ticks lack it:
    landed before ingest recorded it (no column), or a partition landed partly before (missing values)."""
    if "ts_broker" not in ticks.columns or ticks.empty:
        return None
    column = ticks["ts_broker"]
    if column.isna().any():
        return None
    return column.to_numpy(dtype=np.int64)


@dataclass(frozen=True)
class LatencyLegs:
    """Measured legs per tick (ms); ``note`` says why the broker leg is all 0 when it cannot be measured, or
    why no leg is (both all NaN: the source had no receive stamp, see ``latency_legs``). ``feed_offset_ms`` is
    the offset fitted on the whole frame (the last window's)."""

    feed_ms: np.ndarray
    broker_ms: np.ndarray
    feed_offset_ms: float
    note: str | None


def _per_tick(offsets: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Each window's offset repeated over its ticks (windows are runs of rows ending at ``ends``)."""
    return np.repeat(offsets, np.diff(ends, prepend=0))


def latency_legs(ticks: pd.DataFrame, ends: np.ndarray | None = None) -> LatencyLegs:
    """Feed and broker legs of each tick; ``ends``: the windows' row ends (default: one window, the frame).

    Both legs cross two clocks, so each is taken relative to a fitted offset (a low quantile), i.e. it is the
    latency above the fastest observed, not an absolute one. A window's offsets are fitted on the ticks from the
    frame's start through that window's end (an expanding fit, converging to the frame's), and the broker leg's
    "replayed stream" decision, like the "no receive stamp" one, is taken on the frame's first window: so that a
    live shadow reaches the same figures when the window closes as the hourly batch does (docs/live-shadow.md).
    ``ts_local`` = ``ts_server`` on every tick of that window is how a source without a receive stamp says so
    (docs/tick-schema.md): no leg is measured then, rather than a feed leg of 0 that nobody observed. Missing
    ``ts_broker`` on any tick (a partition landed partly before ingest recorded it) leaves the broker leg
    unmeasured; a live shadow always has it (entry ids).
    """
    ends = np.array([len(ticks)], dtype=np.int64) if ends is None else np.asarray(ends, dtype=np.int64)
    first = int(ends[0]) if len(ends) else 0
    ts_server = ticks["ts_server"].to_numpy(dtype=np.int64)
    ts_local = ticks["ts_local"].to_numpy(dtype=np.int64)
    raw_feed = ts_local - ts_server
    if len(raw_feed) and not raw_feed[:first].any():
        unmeasured = np.full(len(ticks), np.nan)
        return LatencyLegs(unmeasured, unmeasured, float("nan"), FEED_UNSTAMPED)
    offsets = prefix_quantiles(raw_feed, ends, CLOCK_OFFSET_QUANTILE)
    feed = (raw_feed - _per_tick(offsets, ends)) / _MS
    offset_ms = float(offsets[-1]) / _MS if len(offsets) else float("nan")
    ts_broker = _broker_times(ticks)
    if ts_broker is None:
        return LatencyLegs(feed, np.zeros(len(ticks)), offset_ms, BROKER_UNTIMED)
    raw_broker = ts_broker - ts_local
    span_local = int(ts_local[:first].max() - ts_local[:first].min())
    span_broker = int(ts_broker[:first].max() - ts_broker[:first].min())
    other_speed = span_local >= MIN_SPEED_SPAN_NS and abs(span_broker / span_local - 1) > REPLAY_SPEED_TOLERANCE
    if abs(np.median(raw_broker[:first])) > REPLAY_OFFSET_NS or other_speed:
        return LatencyLegs(feed, np.zeros(len(ticks)), offset_ms, BROKER_REPLAYED)
    broker = (raw_broker - _per_tick(prefix_quantiles(raw_broker, ends, CLOCK_OFFSET_QUANTILE), ends)) / _MS
    return LatencyLegs(feed, broker, offset_ms, None)


def _latency(counts: np.ndarray, legs: LatencyLegs, decision_ms: float) -> dict[str, np.ndarray]:
    """Tick-to-decision latency = feed + broker + decision; the gated p95 is taken after clipping at p1/p99."""
    feed, broker = legs.feed_ms, legs.broker_ms
    decision = np.where(counts > 0, decision_ms, np.nan)
    if legs.note == FEED_UNSTAMPED:  # a total of the decision leg alone would pass for a measured latency
        unmeasured = np.full(len(counts), np.nan)
        return {name: unmeasured for name in UNSTAMPED_KPIS} | {"decision_p95_ms": decision}
    total = feed + broker + decision_ms
    p1, p95, p99 = _quantiles(total, counts, (WINSOR[0], 0.95, WINSOR[1]))
    floor, ceiling = _interp(p1), _interp(p99)
    clipped = np.stack([np.clip(p95[0], floor, ceiling), np.clip(p95[1], floor, ceiling), p95[2]])
    return {
        "p95_latency_ms": _interp(clipped),
        "p95_raw_ms": _interp(p95),
        "p99_ms": ceiling,
        "feed_p95_ms": _interp(_quantiles(feed, counts, (0.95,))[0]),
        "broker_p95_ms": _interp(_quantiles(broker, counts, (0.95,))[0]),
        "decision_p95_ms": decision,
    }


@numba.njit(cache=True)
def _time_weighted(ts: np.ndarray, use: np.ndarray, first: int, dur: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per window: time covered by ticks' states (ns) and that time weighted by ``use``. Each tick's state lasts
    until the next tick; a state that spans a window edge is split there. One pass in tick order, which adds
    the pieces in the order a sort of ticks and edges would give them."""
    covered = np.zeros(n)
    weighted = np.zeros(n)
    w, edge = 0, (first + 1) * dur  # the window of tick i and its end (ticks are in ts order: no division)
    for i in range(len(ts) - 1):
        begin, stop, weight = ts[i], ts[i + 1], use[i]
        while edge < stop:
            covered[w] += float(edge - begin)
            weighted[w] += float(edge - begin) * weight
            begin, w, edge = edge, w + 1, edge + dur
        covered[w] += float(stop - begin)
        weighted[w] += float(stop - begin) * weight
        if stop == edge:  # the next tick opens the next window
            w, edge = w + 1, edge + dur
    return covered, weighted


def _risk(ts: np.ndarray, counts: np.ndarray, first: int, dur: int, use: np.ndarray) -> dict[str, np.ndarray]:
    """Time-weighted inventory use: each tick's state lasts until the next tick, split at window edges."""
    n = len(counts)
    covered, weighted = _time_weighted(ts, use, first, dur, n)
    last = np.cumsum(counts) - 1  # last tick at or before each window's end
    carry = np.concatenate(([0.0], use[last[:-1]]))
    nonempty = counts > 0
    inside = np.full(n, 0.0)
    inside[nonempty] = np.maximum.reduceat(use, (last - counts + 1)[nonempty])
    return {"risk_ratio": _ratio(weighted, covered), "risk_max": np.maximum(inside, carry), "covered_s": covered / _NS}


def _fill_sums(fills: pd.DataFrame, fill_window: np.ndarray, n: int) -> dict[str, np.ndarray]:
    edges = fill_edges(fills)
    side, notional, known = edges.side, edges.notional, edges.known
    markout, capture, fee_bps = edges.markout_bps, edges.capture_bps, edges.fee_bps
    maker = fills["is_maker"].to_numpy(dtype=bool)
    weight = notional * known

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(fill_window, weights=values, minlength=n)

    marked = total(weight)
    return {
        "maker_count": total(maker).astype(np.int64),
        "taker_count": total(~maker).astype(np.int64),
        "maker_notional": total(notional * maker),
        "taker_notional": total(notional * ~maker),
        "markout_notional": marked,
        "markout_missing": total(~known).astype(np.int64),
        "net_bps": _ratio(total(weight * (markout - fee_bps)), marked),
        "spread_capture_bps": _ratio(total(weight * capture), marked),
        "adverse_selection_bps": _ratio(total(weight * (capture - markout)), marked),
        "fees_bps": _ratio(total(weight * fee_bps), marked),
        "cash": total(-side * notional - fills["fee"].to_numpy(dtype=np.float64)),
    }


@dataclass(frozen=True)
class TickWindows:
    """What the KPI pass reads of the ticks alone: the windows (runs of rows), their tick and trade counts, and
    the latency legs. A search over strategy parameters builds it once per partition; the latency KPIs depend
    on the decision leg only, so they are kept per ``decision_ms``."""

    duration_s: float
    ts: np.ndarray
    first: int
    ends: np.ndarray
    counts: np.ndarray
    trades: np.ndarray
    legs: LatencyLegs
    _latency: dict[float, dict[str, np.ndarray]] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, ticks: pd.DataFrame, duration_s: float) -> TickWindows:
        if ticks.empty:
            raise ValueError("no ticks: KPIs need at least one tick")
        dur = round(duration_s * _NS)
        ts = ticks["ts_server"].to_numpy(dtype=np.int64)
        first = int(ts[0] // dur)
        n = int(ts[-1] // dur) - first + 1
        ends = np.searchsorted(ts, (first + np.arange(1, n + 1, dtype=np.int64)) * dur)  # ticks are in ts order
        trades = np.diff(np.cumsum(ticks["is_trade"].to_numpy(dtype=bool))[ends - 1], prepend=0)
        return cls(duration_s, ts, first, ends, np.diff(ends, prepend=0), trades, latency_legs(ticks, ends))

    @property
    def dur(self) -> int:
        return round(self.duration_s * _NS)

    def latency(self, decision_ms: float) -> dict[str, np.ndarray]:
        if decision_ms not in self._latency:
            self._latency[decision_ms] = _latency(self.counts, self.legs, decision_ms)
        return {name: column.copy() for name, column in self._latency[decision_ms].items()}


def iteration_kpis(
    ticks: pd.DataFrame,
    simulation: Simulation,
    params: StrategyParams,
    thresholds: Thresholds,
    duration_s: float,
    windows: TickWindows | None = None,
) -> pd.DataFrame:
    """One row per ``duration_s`` window of exchange time, aligned to the epoch, from the first tick's window to
    the last's (empty windows included, so a gap in the feed shows as invalid windows). ``ticks`` are in
    exchange-time order, as ``normalized_ticks`` holds them: windows are then runs of rows, which is what keeps
    this pass linear (5 M+ ticks/s, ``make bench``). ``windows``: the ticks' windows when already built.

    ``attrs["notes"]`` lists caveats (e.g. an unmeasurable broker leg); ``attrs["feed_offset_ms"]`` the fitted
    recorder clock offset.
    """
    if windows is None:
        windows = TickWindows.of(ticks, duration_s)
    if windows.duration_s != duration_s or not same_ticks(windows.ts, ticks):
        raise ValueError(f"windows of {windows.duration_s:g} s over {len(windows.ts)} ticks do not fit this run")
    dur, ts, first, ends, counts = windows.dur, windows.ts, windows.first, windows.ends, windows.counts
    n = len(ends)
    fills = simulation.fills
    sums = _fill_sums(fills, fills["ts"].to_numpy(dtype=np.int64) // dur - first, n)
    value = simulation.inventory["position"].to_numpy(dtype=np.float64) * simulation.inventory["mid"].to_numpy()
    value_end = value[ends - 1]
    pnl = value_end - np.concatenate(([0.0], value_end[:-1])) + sums.pop("cash")
    use = np.abs(simulation.inventory["position"].to_numpy(dtype=np.float64)) / params.max_position
    legs = windows.legs
    latency = windows.latency(latency_model_of(params).decision_ms)  # the leg the simulator delays by
    total_fills = sums["maker_count"] + sums["taker_count"]
    traded = sums["maker_notional"] + sums["taker_notional"]
    start = (first + np.arange(n, dtype=np.int64)) * dur
    frame = pd.DataFrame(
        {
            "profile": params.profile,
            "symbol": params.symbol,
            "iteration": np.arange(n, dtype=np.int64),
            "window_start": start,
            "window_end": start + dur,
            "ticks": counts,
            "trades": windows.trades,
            "maker_count": sums.pop("maker_count"),
            "taker_count": sums.pop("taker_count"),
            "total_fills": total_fills,
            "maker_notional": sums.pop("maker_notional"),
            "taker_notional": sums.pop("taker_notional"),
            "traded_notional": traded,
        }
    )
    frame["maker_taker_ratio"] = _ratio(frame["maker_notional"].to_numpy(), traded)
    frame["maker_count_share"] = _ratio(frame["maker_count"].to_numpy(dtype=np.float64), total_fills)
    for name, column in {**sums, "pnl": pnl, **latency, **_risk(ts, counts, first, dur, use)}.items():
        frame[name] = column
    frame["broker_measured"] = legs.note is None
    frame["valid"] = (counts >= thresholds.min_ticks_per_window) & (total_fills >= 1)
    frame.attrs["notes"] = [legs.note] if legs.note else []
    frame.attrs["feed_offset_ms"] = legs.feed_offset_ms
    return frame


def _weighted(group: pd.DataFrame, column: str, weight: str) -> float:
    w = group[weight].to_numpy(dtype=np.float64)
    v = group[column].to_numpy(dtype=np.float64)
    keep = (w > 0) & ~np.isnan(v)
    return float(np.sum(v[keep] * w[keep]) / np.sum(w[keep])) if keep.any() else float("nan")


# Report columns that roll up alike (the catalogue's ``rollup``; a test checks each KPI's against ``aggregate``).
_SUMMED_COUNTS = names(kpi for kpi in KPIS if kpi.integer and kpi.rollup.how == "sum")
_BY_MARKOUT = names(kpi for kpi in KPIS if kpi.rollup.weight == "markout_notional")
_MEDIANS = names(kpi for kpi in KPIS if kpi.rollup.how == "median")


def _summary(group: pd.DataFrame) -> dict[str, object]:
    """One symbol's report: flow-weighted KPIs over valid windows, window medians beside them."""
    valid = group[group["valid"]]
    sums = valid[list(_SUMMED_COUNTS)].sum()
    maker, traded = valid["maker_notional"].sum(), valid["traded_notional"].sum()
    return {
        "profile": group["profile"].iloc[0],
        "symbol": group["symbol"].iloc[0],
        "windows": len(group),
        "valid_windows": len(valid),
        **{str(name): int(value) for name, value in sums.items()},
        "maker_notional": maker,
        "taker_notional": valid["taker_notional"].sum(),
        "traded_notional": traded,
        "maker_taker_ratio": maker / traded if traded > 0 else float("nan"),
        "maker_count_share": sums["maker_count"] / sums["total_fills"] if sums["total_fills"] else float("nan"),
        **{name: _weighted(valid, name, "markout_notional") for name in _BY_MARKOUT},
        "pnl": group["pnl"].sum(),
        **{name: float(valid[name].median()) if len(valid) else float("nan") for name in _MEDIANS},
        "risk_ratio": _weighted(group, "risk_ratio", "covered_s"),  # inventory held while not trading counts
        "risk_max": float(valid["risk_max"].max()) if len(valid) else float("nan"),
        "net_bps_median": float(valid["net_bps"].median()) if len(valid) else float("nan"),
        "maker_taker_ratio_median": float(valid["maker_taker_ratio"].median()) if len(valid) else float("nan"),
        "broker_measured": bool(group["broker_measured"].all()),
    }


def aggregate(iterations: pd.DataFrame) -> pd.DataFrame:
    """One row per (profile, symbol). ``pnl`` sums all windows (PnL does not depend on validity); the latency
    columns are the median of the valid windows' values; ``risk_ratio`` is time-weighted over valid windows."""
    return pd.DataFrame([_summary(group) for _, group in iterations.groupby(["profile", "symbol"], sort=True)])


def window_medians(iterations: pd.DataFrame, columns: tuple[str, ...]) -> dict[str, float]:
    """Median of each per-window KPI over the valid windows (NaN when none is valid), beside the aggregate."""
    valid = iterations[iterations["valid"]]
    return {name: float(valid[name].median()) if len(valid) and name in valid else float("nan") for name in columns}
