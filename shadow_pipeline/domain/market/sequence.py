"""Per-symbol sequence accounting: which arrivals are duplicates, which came late, which seqs never came.

The replayer's fault report and the ingest's gap guard both use these definitions, so "as injected" and
"as detected" mean the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class SequenceCounts:
    """Counts for one symbol over an arrival sequence."""

    arrivals: int
    duplicates: int  # arrivals whose seq had already arrived
    late: int  # first arrivals of a seq lower than one that arrived before it (reordered)
    missing: int  # seqs between the expected first and the highest seen that never arrived


def classify_arrivals(symbols: pd.Series, seqs: pd.Series) -> pd.DataFrame:
    """Flag each arrival (in arrival order) as ``duplicate`` and/or ``late``."""
    codes, names = pd.factorize(symbols)
    seq = seqs.to_numpy(dtype=np.int64)
    by_seq = np.lexsort((seq, codes))  # stable: the arrivals of one (symbol, seq) stay in arrival order
    again = (np.diff(codes[by_seq]) == 0) & (np.diff(seq[by_seq]) == 0)
    duplicate = np.zeros(len(seq), dtype=bool)
    duplicate[by_seq[1:][again]] = True
    highest_before = np.full(len(seq), np.iinfo(np.int64).min)
    for code in range(len(names)):
        at = np.flatnonzero(codes == code)
        highest_before[at[1:]] = np.maximum.accumulate(seq[at])[:-1]
    late = ~duplicate & (seq < highest_before)
    return pd.DataFrame({"duplicate": duplicate, "late": late}, index=symbols.index)


def count_by_symbol(
    symbols: pd.Series, seqs: pd.Series, first_expected: dict[str, int] | None = None
) -> dict[str, SequenceCounts]:
    """Exact duplicate, late and missing counts per symbol; a symbol's seqs are expected from 1 by default."""
    flags = classify_arrivals(symbols, seqs)
    frame = pd.DataFrame({"symbol": symbols.to_numpy(), "seq": seqs.to_numpy(dtype="int64")})
    frame[["duplicate", "late"]] = flags.to_numpy()
    result: dict[str, SequenceCounts] = {}
    for symbol, group in frame.groupby("symbol", sort=True):
        first = (first_expected or {}).get(str(symbol), 1)
        seen = group.loc[group["seq"] >= first, "seq"]
        highest = int(seen.max()) if len(seen) else first - 1
        result[str(symbol)] = SequenceCounts(
            arrivals=len(group),
            duplicates=int(group["duplicate"].sum()),
            late=int(group["late"].sum()),
            missing=max(highest - first + 1 - seen.nunique(), 0),
        )
    return result
