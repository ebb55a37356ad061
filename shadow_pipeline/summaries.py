"""What each stage's asset tells the CLI, typed: a dataclass the asset emits as one metadata entry.

The UI's metadata entries are for people and may change with the page; the CLI's tables (launch.py) read
these instead, parsed back in one place (``StageSummary.of``), so that renaming a metadata entry can never
silently empty a column or crash a command.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import dagster as dg

SUMMARY_KEY = "stage_summary"


def finite(value: object) -> float | None:
    """A number JSON can hold: None for a missing or non-finite one."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class StageSummary:
    ASSET: ClassVar[str]

    def metadata(self) -> dict[str, dg.MetadataValue]:
        return {SUMMARY_KEY: dg.MetadataValue.json(dataclasses.asdict(self))}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Self:
        entry = metadata[SUMMARY_KEY]
        return cls(**(entry.value if isinstance(entry, dg.MetadataValue) else entry))

    @classmethod
    def of(cls, result: dg.ExecuteInProcessResult) -> Self | None:
        """The summary of the run's materialization of ``ASSET``; None when it did not materialize."""
        done = result.asset_materializations_for_node(cls.ASSET)
        return cls.from_metadata(done[0].metadata) if done else None


@dataclass(frozen=True)
class ShadowSummary(StageSummary):
    ASSET: ClassVar[str] = "shadow_report"

    verdict: str
    reasons: list[str]
    kpis: dict[str, float | None]
    knob_flips: bool | None  # would the verdict change across the fill model's knob (None: not measured)


@dataclass(frozen=True)
class ExportSummary(StageSummary):
    ASSET: ClassVar[str] = "exported_kpis"

    written: dict[str, int]  # records written per mode (hash, stream)
    keys: dict[str, str]  # the Redis keys written per mode


@dataclass(frozen=True)
class DryRunSummary(StageSummary):
    ASSET: ClassVar[str] = "dryrun_accuracy_report"

    status: str
    windows: int
    predicted_fills: int
    actual_fills: int
    report: str  # the report file
    no_data: list[str] = dataclasses.field(default_factory=list)  # KPIs with too few events to judge
    not_judged: list[str] = dataclasses.field(default_factory=list)  # KPIs the reality does not measure


@dataclass(frozen=True)
class TuneSummary(StageSummary):
    ASSET: ClassVar[str] = "tuned_profile"

    verdict: str
    live_ready: bool
    reasons: list[str]
    objective: str
    base_out_of_sample: float | None
    in_sample: float | None
    out_of_sample: float | None
    pbo: float | None  # probability of backtest overfitting of the tuned set's choice (None: not measured)
    max_pbo: float
    judged_hours: str
    folds: int
    out_of_sample_valid_windows: int
    sets_evaluated: int
    sets_per_second: float | None
    summary: str  # the summary file


@dataclass(frozen=True)
class ReconcileSummary(StageSummary):
    ASSET: ClassVar[str] = "order_reconciliation"

    numbers: dict[str, float | None]  # Reconciliation.summary(): counts, precision, recall, net_bps gap, Brier
    failed: list[str]  # the gates that fail, as their rules read
    report: str  # ORDER_RECONCILIATION.md
