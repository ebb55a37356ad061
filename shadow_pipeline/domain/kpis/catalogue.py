"""Every KPI of a shadow run, defined once: its wire name, meaning, unit, roll-up, gate and dry-run metric.

Gates, exported records, the dry-run accuracy table, the snapshot and CLI summaries select from ``KPIS`` rather
than spelling names, so adding or retiring a KPI is one edit here (plus ``schemas/kpi_record.schema.json`` for
an exported one; a test holds the two together). Names are what downstream consumers read: never rename one.
Formulas live in ``per_window.py``; docs/shadow-simulation.md spells them out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

Metric = Literal[
    "mape", "wpe", "mae"
]  # dry-run error gated on; see domain/validation/accuracy.py (mae: in the KPI's bps)
QUOTE = "quote"  # quote currency of the symbol (USDT on the Binance USD-M recordings)
# Decimals a person reads per unit: a hundredth of a bp or of a quote unit, a tenth of a ms, a thousandth of a share
# or ratio; counts are integers. Only what people read is rounded (metadata, Markdown); data keeps full precision.
DECIMALS = MappingProxyType({"bps": 2, "ms": 1, QUOTE: 2, "": 3})


@dataclass(frozen=True)
class Bound:
    """A Go/No-Go gate: ``min`` passes at value >= the threshold, ``max`` at value <= it."""

    direction: Literal["min", "max"]
    threshold: str  # field of profiles.Thresholds

    @property
    def at_least(self) -> bool:
        return self.direction == "min"

    def __str__(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.threshold}"


@dataclass(frozen=True)
class Rollup:
    """How a partition's value follows from its windows' (what ``per_window.aggregate`` computes; a test checks it)."""

    how: Literal["count", "sum", "mean", "median", "max"]
    over: Literal["valid", "all"] = "valid"
    weight: str | None = None  # the per-window column a mean is weighted by

    def __str__(self) -> str:
        if self.how == "count":
            return f"count of {self.over} windows"
        weighted = f" weighted by {self.weight}" if self.weight else ""
        return f"{self.how}{weighted} over {self.over} windows"


@dataclass(frozen=True)
class Kpi:
    """One KPI. The flags say where it goes; the module's selections (``GATED``, ``EXPORTED``, ...) read them."""

    name: str  # on the wire: record fields, snapshot keys, report columns
    meaning: str
    unit: str  # printed after a value; "" for shares, ratios and counts
    per_window: str | None  # how one window's value is formed; None: a partition-level KPI only
    rollup: Rollup
    integer: bool = False  # a count: 0 (never null) without fills
    needs_fills: bool = False  # null without fills: the dry-run compares it where both sides have min_fills
    gate: Bound | None = None
    accuracy: Metric | None = None
    exported: bool = False  # a field of the KPI records (Redis hash and stream)
    reported: bool = False  # in POST_SHADOW_SNAPSHOT.json and SHADOW_REPORT.md
    summary: bool = False  # a column of the CLI's per-run tables

    @property
    def decimals(self) -> int:
        return 0 if self.integer else DECIMALS[self.unit]

    def rounded(self, value: float | None) -> float | int | None:
        """``value`` to the decimals a person reads (an int for a count); None when unknown (None, NaN, inf)."""
        if value is None or not math.isfinite(value):
            return None
        if self.integer and float(value).is_integer():
            return int(value)
        return round(float(value), self.decimals or 1) + 0.0  # a count's median may fall between counts; no -0.0

    def text(self, value: float | None) -> str:
        """``value`` for a table: rounded, thousands separated, ``n/a`` when unknown."""
        shown = self.rounded(value)
        if shown is None:
            return "n/a"
        return f"{shown:,}" if isinstance(shown, int) else f"{shown:,.{self.decimals or 1}f}"


_SUM = Rollup("sum")
_MEDIAN = Rollup("median")
_BY_MARKOUT = Rollup("mean", weight="markout_notional")
_MARKED = "notional-weighted mean over the fills with a known markout"
_NOTIONAL = "sum of price * qty over the fills"

# In report order: the gates, the snapshot and the records list their KPIs in this order.
KPIS: tuple[Kpi, ...] = (
    Kpi(
        "maker_taker_ratio",
        "Maker share of traded notional, maker / (maker + taker); a share in [0, 1], not a maker:taker ratio",
        "",
        "maker_notional / traded_notional",
        Rollup("mean", weight="traded_notional"),
        needs_fills=True,
        gate=Bound("min", "min_maker_share"),
        accuracy="mape",
        exported=True,
        reported=True,
        summary=True,
    ),
    Kpi(
        "maker_count_share",
        "Maker share of fills by count, beside the notional share",
        "",
        "maker_count / total_fills",
        Rollup("mean", weight="total_fills"),
        needs_fills=True,
        reported=True,
    ),
    Kpi(
        "net_bps",
        "Net edge of the fills: markout at markout_horizon_s minus fees, per notional traded",
        "bps",
        _MARKED,
        _BY_MARKOUT,
        needs_fills=True,
        gate=Bound("min", "min_net_bps"),
        accuracy="mae",
        exported=True,
        reported=True,
        summary=True,
    ),
    Kpi(
        "spread_capture_bps",
        "Fill price against the mid just before the fill",
        "bps",
        _MARKED,
        _BY_MARKOUT,
        needs_fills=True,
        reported=True,
    ),
    Kpi(
        "adverse_selection_bps",
        "Spread capture minus markout: the mid moving against the fills",
        "bps",
        _MARKED,
        _BY_MARKOUT,
        needs_fills=True,
        reported=True,
    ),
    Kpi(
        "fees_bps",
        "Fees paid (negative: rebates received)",
        "bps",
        _MARKED,
        _BY_MARKOUT,
        needs_fills=True,
        reported=True,
    ),
    Kpi(
        "p95_latency_ms",
        "Tick-to-decision latency (feed + broker + decision legs), p95 after winsorizing at p1/p99",
        "ms",
        "p95 of the window's ticks, clipped at their p1/p99",
        _MEDIAN,
        gate=Bound("max", "max_p95_latency_ms"),
        accuracy="mape",
        exported=True,
        reported=True,
        summary=True,
    ),
    Kpi(
        "p95_raw_ms",
        "Tick-to-decision latency, p95 without winsorizing",
        "ms",
        "p95 of the window's ticks",
        _MEDIAN,
        reported=True,
    ),
    Kpi(
        "p99_ms",
        "Tick-to-decision latency, p99 (the winsorizing ceiling)",
        "ms",
        "p99 of the window's ticks",
        _MEDIAN,
        reported=True,
    ),
    Kpi(
        "feed_p95_ms",
        "Feed leg: receive minus exchange time, above the fitted clock offset",
        "ms",
        "p95 of the window's ticks",
        _MEDIAN,
    ),
    Kpi(
        "broker_p95_ms",
        "Broker leg: Redis entry id minus receive time (0 when not measurable)",
        "ms",
        "p95 of the window's ticks",
        _MEDIAN,
    ),
    Kpi(
        "decision_p95_ms",
        "Decision leg: the profile's modelled decision_latency_ms",
        "ms",
        "the profile's constant (null without ticks)",
        _MEDIAN,
    ),
    Kpi(
        "risk_ratio",
        "Inventory use: time-weighted |position| / max_position, inventory held through idle windows included",
        "",
        "time-weighted mean (each tick's position lasts until the next tick)",
        Rollup("mean", over="all", weight="covered_s"),
        gate=Bound("max", "max_risk_ratio"),
        accuracy="mape",
        exported=True,
        reported=True,
        summary=True,
    ),
    Kpi(
        "risk_max",
        "Peak inventory use, max |position| / max_position",
        "",
        "max over the ticks and the position carried in",
        Rollup("max"),
        reported=True,
    ),
    Kpi("ticks", "Ticks received (quotes and trades)", "", "ticks with ts_server in the window", _SUM, integer=True),
    Kpi("trades", "Trade ticks received", "", "ticks with ts_server in the window", _SUM, integer=True),
    Kpi(
        "maker_count",
        "Maker fills: our resting quotes filled",
        "",
        "fills in the window",
        _SUM,
        integer=True,
        accuracy="wpe",
        exported=True,
        reported=True,
    ),
    Kpi(
        "taker_count",
        "Taker fills (in the shadow: the inventory hedges)",
        "",
        "fills in the window",
        _SUM,
        integer=True,
        accuracy="wpe",
        exported=True,
        reported=True,
    ),
    Kpi(
        "total_fills",
        "All fills, maker + taker",
        "",
        "fills in the window",
        _SUM,
        integer=True,
        accuracy="wpe",
        exported=True,
        reported=True,
        summary=True,
    ),
    Kpi(
        "markout_missing",
        "Fills whose markout horizon is past the data, left out of the bps KPIs",
        "",
        "fills in the window",
        _SUM,
        integer=True,
    ),
    Kpi("maker_notional", "Notional of maker fills", QUOTE, _NOTIONAL, _SUM),
    Kpi("taker_notional", "Notional of taker fills", QUOTE, _NOTIONAL, _SUM),
    Kpi("traded_notional", "Notional of all fills, maker + taker", QUOTE, _NOTIONAL, _SUM, reported=True),
    Kpi(
        "pnl",
        "Mark-to-market PnL after fees: position value at the mid plus cash",
        QUOTE,
        "change of position * mid over the window plus its fills' cash and fees",
        Rollup("sum", over="all"),
        reported=True,
    ),
    Kpi(
        "windows",
        "Windows of the partition, empty ones included",
        "",
        None,
        Rollup("count", over="all"),
        integer=True,
        reported=True,
    ),
    Kpi(
        "valid_windows",
        "Windows with min_ticks_per_window ticks and a fill: the windows most KPIs aggregate over",
        "",
        None,
        Rollup("count"),
        integer=True,
        gate=Bound("min", "min_windows"),
        reported=True,
        summary=True,
    ),
)

BY_NAME: Mapping[str, Kpi] = MappingProxyType({kpi.name: kpi for kpi in KPIS})
GATED = tuple(kpi for kpi in KPIS if kpi.gate)
EXPORTED = tuple(kpi for kpi in KPIS if kpi.exported)
ACCURACY = tuple(kpi for kpi in KPIS if kpi.accuracy)
REPORTED = tuple(kpi for kpi in KPIS if kpi.reported)
SUMMARY = tuple(kpi for kpi in KPIS if kpi.summary)
VALID_WINDOWS = BY_NAME["valid_windows"]  # gated before the others: too few windows make the rest moot
TOTAL_FILLS = BY_NAME["total_fills"]  # the dry-run's min_fills is counted in it


def names(kpis: Iterable[Kpi]) -> tuple[str, ...]:
    return tuple(kpi.name for kpi in kpis)
