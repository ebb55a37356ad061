"""An open hour of one instrument, as the live shadow holds it: its ticks as received (entry order, as the landing
zone holds them) and how many of its windows are published."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MERGE_PARTS = 16


@dataclass
class HourTicks:
    first_entry: str  # where a restart re-reads the hour from
    parts: list[pd.DataFrame] = field(default_factory=list)
    first_ts: int = int(np.iinfo(np.int64).max)
    last_ts: int = int(np.iinfo(np.int64).min)
    published: int = 0

    def add(self, part: pd.DataFrame) -> None:
        """Keep a batch's ticks; small batches (a slow stream is read a few ticks at a time) are merged as they
        come, so that a close concatenates a handful of frames, not thousands."""
        self.parts.append(part)
        self.first_ts = min(self.first_ts, int(part["ts_server"].min()))
        self.last_ts = max(self.last_ts, int(part["ts_server"].max()))
        if len(self.parts) > MERGE_PARTS:
            self.parts[1:] = [pd.concat(self.parts[1:], ignore_index=True)]

    def received(self) -> pd.DataFrame:
        """The hour's ticks as received, kept as one frame from now on."""
        self.parts = [pd.concat(self.parts, ignore_index=True)]
        return self.parts[0]
