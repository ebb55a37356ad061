"""What one run of a consumer did, and the one line that says a drain was not complete."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shadow_pipeline.ingest.options import IngestOptions


@dataclass
class IngestReport:
    """What one run of a consumer did; counts are of entries and ticks."""

    read: int = 0
    redelivered: int = 0
    landed: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    reordered: dict[str, int] = field(default_factory=dict)
    gaps: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    out_of_order: dict[str, int] = field(default_factory=dict)
    dead_letters: int = 0
    reconnects: int = 0
    claimed: int = 0  # entries taken over from other consumers (included in read and redelivered)
    claimed_from_dead: int = 0  # ... of them from consumers found dead (idle past dead_after_ms)
    over_delivered: int = 0  # entries dead-lettered as poison: processing failed max_deliveries times (in dead_letters)
    forgotten: list[str] = field(default_factory=list)  # idle consumers without entries, deleted from the group
    complete: bool | None = None  # a drain: True once nothing delivered before its end is pending in the group
    held: dict[str, int] = field(default_factory=dict)  # a drain: entries live consumers still held at its end
    peak_buffered: int = 0  # most ticks the reorder buffer held at once (bounded by capacity per symbol)
    seconds: float = 0.0

    @property
    def landed_total(self) -> int:
        return sum(self.landed.values())

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "landed_total": self.landed_total}


def add_counts(target: dict[str, int], counts: dict[str, int]) -> None:
    for key, value in counts.items():
        if value:
            target[key] = target.get(key, 0) + int(value)


class IncompleteDrain(RuntimeError):
    """A drain ended while live consumers still held entries delivered before it ended."""


def incomplete_message(options: IngestOptions, report: IngestReport) -> str:
    owners = ", ".join(f"{name} ({count})" for name, count in sorted(report.held.items()))
    return (
        f"drain of {options.stream} (group {options.group}) is not complete: live consumers still hold "
        f"{sum(report.held.values())} entries delivered before it ended, after waiting {options.drain_wait_ms} ms: "
        f"{owners}. They are claimed once their owner stops reading for {options.dead_after_ms} ms or once idle "
        f"for {options.claim_idle_ms} ms; run the drain again then."
    )
