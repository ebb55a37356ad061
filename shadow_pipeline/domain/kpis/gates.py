"""Go/No-Go gates: each KPI of a report against its threshold, and the minimum number of valid windows.

A gate on a KPI that could not be computed (no fills: maker share is null) fails: the shadow run cannot vouch
for a value it did not observe. Every outcome says by how much it missed, in the KPI's own unit, or why its KPI
is unknown: a latency gate on a source without a receive stamp says so, since more fills or windows would not help.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shadow_pipeline.domain.kpis.catalogue import GATED, VALID_WINDOWS, Kpi
from shadow_pipeline.domain.kpis.per_window import FEED_UNSTAMPED, UNSTAMPED_KPIS
from shadow_pipeline.domain.strategies.profiles import Thresholds

GO, NO_GO = "GO", "NO-GO"  # the verdicts as reports, snapshots and the CLI spell them
NO_WINDOWS = "no fills or no valid window"
UNSTAMPED = FEED_UNSTAMPED.replace(": ", " ", 1)  # "latency not measured (source has no receive stamp)"


@dataclass(frozen=True)
class Gate:
    kpi: str  # column of the per-symbol report
    threshold: float
    at_least: bool  # True: value >= threshold passes; False: value <= threshold passes
    unit: str = ""

    @property
    def rule(self) -> str:
        return f"{self.kpi} {'>=' if self.at_least else '<='} {self.threshold:g}{self.unit}"


@dataclass(frozen=True)
class GateOutcome:
    gate: Gate
    value: float | None
    unknown_because: str = NO_WINDOWS  # why ``value`` is None, when it is

    @property
    def passed(self) -> bool:
        if self.value is None:
            return False
        return self.value >= self.gate.threshold if self.gate.at_least else self.value <= self.gate.threshold

    @property
    def shortfall(self) -> float | None:
        """How far the value is on the wrong side of the threshold (0 when it passes, None when unknown)."""
        if self.value is None:
            return None
        miss = self.gate.threshold - self.value if self.gate.at_least else self.value - self.gate.threshold
        return max(miss, 0.0)

    @property
    def reason(self) -> str:
        gate = self.gate
        if self.value is None:
            return f"{gate.kpi} unknown: {self.unknown_because}; needs {gate.rule}"
        side, miss = ("<", "short") if gate.at_least else (">", "over")
        return (
            f"{gate.kpi} {self.value:.4g}{gate.unit} {side} {gate.threshold:g}{gate.unit} "
            f"({miss} by {self.shortfall:.4g}{gate.unit})"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "kpi": self.gate.kpi,
            "rule": self.gate.rule,
            "value": self.value,
            "threshold": self.gate.threshold,
            "passed": self.passed,
            "shortfall": self.shortfall,
        }


def _value(row: Mapping[str, Any], kpi: str) -> float | None:
    value = row.get(kpi)
    if value is None:
        return None
    number = float(value)
    return None if math.isnan(number) else number


def evaluate(row: Mapping[str, Any], gates: list[Gate], latency_notes: str = "") -> list[GateOutcome]:
    """``latency_notes``: the run notes' (``; ``-joined); they say when the latency KPIs were not measured."""
    unstamped = FEED_UNSTAMPED in latency_notes.split("; ")
    return [
        GateOutcome(gate, _value(row, gate.kpi), UNSTAMPED if unstamped and gate.kpi in UNSTAMPED_KPIS else NO_WINDOWS)
        for gate in gates
    ]


@dataclass(frozen=True)
class Verdict:
    """Go only when every gate passes; ``reasons`` are the failed gates' reasons, in gate order."""

    outcomes: list[GateOutcome]

    @property
    def reasons(self) -> list[str]:
        return [o.reason for o in self.outcomes if not o.passed]

    @property
    def go(self) -> bool:
        return all(o.passed for o in self.outcomes)

    @property
    def label(self) -> str:
        return GO if self.go else NO_GO


def _gate(kpi: Kpi, thresholds: Thresholds) -> Gate:
    """``kpi``'s catalogue gate at the profile's threshold, with the unit the reasons print."""
    if kpi.gate is None:
        raise ValueError(f"{kpi.name} has no gate in the KPI catalogue")
    threshold = getattr(thresholds, kpi.gate.threshold)
    if kpi.integer:  # a count's threshold is an int in the profile; its gate has always held a float
        threshold = float(threshold)
    return Gate(kpi.name, threshold, at_least=kpi.gate.at_least, unit=f" {kpi.unit}" if kpi.unit else "")


def kpi_gates(thresholds: Thresholds) -> list[Gate]:
    """The gates on per-window KPIs (what the plot shows per window), in the order the report shows them."""
    return [_gate(kpi, thresholds) for kpi in GATED if kpi is not VALID_WINDOWS]


def min_windows_gate(thresholds: Thresholds) -> Gate:
    return _gate(VALID_WINDOWS, thresholds)


def judge(kpis: Mapping[str, Any], thresholds: Thresholds, latency_notes: str = "") -> Verdict:
    """Min-windows first, then each KPI gate (a report row, or a snapshot's KPIs); ``latency_notes`` as in
    :func:`evaluate`."""
    return Verdict(evaluate(kpis, [min_windows_gate(thresholds), *kpi_gates(thresholds)], latency_notes))
