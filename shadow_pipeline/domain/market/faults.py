"""Feed faults for tests: drop, duplicate, reorder and malformed entries, at given rates, reproducibly.

Faults apply to a source frame that already has its ``seq`` (the producer numbers ticks before the network
loses or shuffles them). Malformed entries are *extra* junk entries, each a copy of a real tick with one
defect, so that dead letters and sequence gaps can be counted independently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from shadow_pipeline.domain.market.sequence import count_by_symbol

DEFECTS = ("missing field", "non-numeric price", "non-positive price", "crossed book", "unknown side")


@dataclass(frozen=True)
class FaultSpec:
    """Rates are per tick, in [0, 1]; ``jitter_ms`` is the largest delay given to a reordered tick."""

    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    jitter_ms: float = 40.0
    malformed: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("drop", "duplicate", "reorder", "malformed"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate {name}={rate} is outside [0, 1]")
        if not 0.0 <= self.jitter_ms <= 3_600_000:  # NaN fails the comparison too
            raise ValueError(f"fault jitter_ms={self.jitter_ms} is outside [0, 3600000] (an hour)")
        if self.reorder and self.jitter_ms <= 0:
            raise ValueError("reorder needs jitter_ms > 0")
        if not 0 <= self.seed <= 2**32 - 1:
            raise ValueError(f"fault seed={self.seed} is outside [0, 2**32 - 1]")

    @property
    def any(self) -> bool:
        return bool(self.drop or self.duplicate or self.reorder or self.malformed)


@dataclass(frozen=True)
class FaultReport:
    """What was injected. ``reordered`` counts delayed ticks that really arrived after a higher seq."""

    dropped: int = 0
    duplicated: int = 0
    delayed: int = 0
    reordered: int = 0
    malformed: int = 0
    malformed_by_defect: dict[str, int] = field(default_factory=dict)
    dropped_by_symbol: dict[str, int] = field(default_factory=dict)

    def __add__(self, other: FaultReport) -> FaultReport:
        def merged(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
            return {k: a.get(k, 0) + b.get(k, 0) for k in sorted({*a, *b})}

        return FaultReport(
            dropped=self.dropped + other.dropped,
            duplicated=self.duplicated + other.duplicated,
            delayed=self.delayed + other.delayed,
            reordered=self.reordered + other.reordered,
            malformed=self.malformed + other.malformed,
            malformed_by_defect=merged(self.malformed_by_defect, other.malformed_by_defect),
            dropped_by_symbol=merged(self.dropped_by_symbol, other.dropped_by_symbol),
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "dropped": self.dropped,
            "duplicated": self.duplicated,
            "delayed": self.delayed,
            "reordered": self.reordered,
            "malformed": self.malformed,
            "malformed_by_defect": dict(self.malformed_by_defect),
            "dropped_by_symbol": dict(self.dropped_by_symbol),
        }


def _corrupt(rows: pd.DataFrame, defects: np.ndarray) -> pd.DataFrame:
    rows = rows.copy()
    for defect in DEFECTS:
        hit = defects == defect
        if not hit.any():
            continue
        if defect == "missing field":
            rows.loc[hit, "ask"] = None
        elif defect == "non-numeric price":
            rows.loc[hit, "bid"] = "n/a"
        elif defect == "non-positive price":
            rows.loc[hit, "bid"] = "-" + rows.loc[hit, "bid"].astype(str)
        elif defect == "crossed book":
            bid = rows.loc[hit, "bid"]
            rows.loc[hit, "bid"] = rows.loc[hit, "ask"]
            rows.loc[hit, "ask"] = bid
        else:
            rows.loc[hit, "last_side"] = "sideways"
    return rows


def inject(frame: pd.DataFrame, spec: FaultSpec) -> tuple[pd.DataFrame, FaultReport]:
    """Return the entries to emit (in emission order; None = field absent) and an exact report."""
    if not spec.any:
        return frame, FaultReport()
    rng = np.random.default_rng(spec.seed)
    n = len(frame)
    keep = rng.random(n) >= spec.drop
    dropped = frame.loc[~keep, "symbol"].value_counts().sort_index()
    work = frame.loc[keep].copy()
    work["_key"] = work["ts_local"].astype("int64")
    delayed = rng.random(len(work)) < spec.reorder
    work.loc[delayed, "_key"] += (rng.uniform(0.001, spec.jitter_ms, delayed.sum()) * 1e6).astype("int64")

    dup = rng.random(len(work)) < spec.duplicate
    copies = work.loc[dup]
    work["_order"] = np.arange(len(work)) * 2
    copies = copies.assign(_order=work.loc[dup, "_order"] + 1)  # right behind its original
    work = pd.concat([work, copies]).sort_values(["_key", "_order"], kind="stable")

    malformed = int(rng.binomial(len(work), spec.malformed)) if spec.malformed else 0
    clean = work.drop(columns=["_key", "_order"]).astype(object).reset_index(drop=True)
    defects = np.array(DEFECTS)[np.arange(malformed) % len(DEFECTS)]
    junk = _corrupt(clean.iloc[rng.integers(0, len(clean), malformed)], defects)
    # Slot keys: clean row i sits at 2i+1, a junk row inserted before clean row p at 2p.
    slots = np.concatenate([np.arange(len(clean)) * 2 + 1, rng.integers(0, len(clean) + 1, malformed) * 2])
    emitted = pd.concat([clean, junk], ignore_index=True)
    emitted = emitted.iloc[np.argsort(slots, kind="stable")].reset_index(drop=True)

    clean_part = work.reset_index(drop=True)
    counts = count_by_symbol(clean_part["symbol"], clean_part["seq"])
    report = FaultReport(
        dropped=int((~keep).sum()),
        duplicated=int(dup.sum()),
        delayed=int(delayed.sum()),
        reordered=sum(c.late for c in counts.values()),
        malformed=malformed,
        malformed_by_defect={str(d): int(n) for d, n in zip(*np.unique(defects, return_counts=True), strict=True)},
        dropped_by_symbol={str(k): int(v) for k, v in dropped.items()},
    )
    return emitted, report
