"""The seed's run notes: which code, data, profile, parameters and ingest quality produced a partition's numbers.

They describe the whole partition, so they are one typed object, stored once with the partition's windows (in
the frame's ``attrs``, which the Parquet store keeps in the file's metadata) and read back by
:func:`run_notes` alone, never as constant columns repeated on every row.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from shadow_pipeline.domain.simulation.simulator import fill_model_of
from shadow_pipeline.domain.strategies.profiles import FILL_DWELL, StrategyParams, Thresholds

NOTES_ATTR = "run_notes"


class RunNotesMissing(ValueError):
    """Windows stored without their notes (written by an older version): re-materialize shadow_iterations."""


def params_digest(params: StrategyParams) -> str:
    """A short fingerprint of the strategy parameters: predictions of different parameters never mix."""
    return hashlib.sha256(json.dumps(params.__dict__, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class RunNotes:
    hour: str
    symbol: str
    profile: str
    window_seconds: float
    commit: str
    source: str  # the (redacted) Redis and stream the ticks came from
    params: StrategyParams
    thresholds: Thresholds
    ingest: str  # the partition's data-quality counts, as the seed wrote them
    latency_notes: str  # why a latency leg could not be measured, when it could not
    feed_offset_ms: float  # the fitted clock offset of the feed leg

    @property
    def partition(self) -> str:
        return f"{self.hour}|{self.symbol}"

    @property
    def params_digest(self) -> str:
        return params_digest(self.params)

    @property
    def fill_model(self) -> str:
        """The fill model and its assumption, as reports and exported records name them."""
        return fill_model_of(self.params).label

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunNotes:
        fields = dict(data)
        # Notes written before the fill model was a setting ran touch + dwell: say so, never the new default.
        params = {"fill_model": FILL_DWELL, **fields["params"]}
        params.pop("requote_rule", None)  # notes written while requote.rule was a setting (it had one value)
        fields["params"] = StrategyParams(**params)
        fields["thresholds"] = Thresholds(**fields["thresholds"])
        return cls(**fields)


def with_notes(windows: pd.DataFrame, notes: RunNotes) -> pd.DataFrame:
    """``windows`` carrying ``notes`` (a copy: the caller's frame is left as it was)."""
    noted = windows.copy()
    noted.attrs = {NOTES_ATTR: notes.to_json()}  # the notes replace whatever loose attrs the windows carried
    return noted


def run_notes(windows: pd.DataFrame) -> RunNotes:
    """The notes a partition's windows were stored with."""
    stored = windows.attrs.get(NOTES_ATTR)
    if not stored:
        raise RunNotesMissing(
            "these shadow_iterations carry no run notes (written by an older version): materialize "
            "shadow_iterations again for this partition"
        )
    return RunNotes.from_json(stored)
