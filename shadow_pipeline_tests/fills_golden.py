"""Golden fills of the shadow's two fill models and of the hftbacktest reality, recorded before the quoting rule
moved behind the strategy interface (commit ``dad5646``): the interface must not change one decision.

The cases are ``kpis_golden.CASES`` (the shared Binance recordings and the stored synthetic markets) under three
packaged profiles, which between them cover an offset of 0 and 1, hedge targets 0 and 0.5 and three inventory
limits. To regenerate from that commit (this file only imports ``shadow_pipeline``)::

    git worktree add /tmp/fills-reference dad5646
    PYTHONPATH=/tmp/fills-reference python shadow_pipeline_tests/fills_golden.py
    git worktree remove /tmp/fills-reference
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from shadow_pipeline.domain.simulation.simulator import simulate
from shadow_pipeline.domain.strategies.profiles import StrategyParams, load_profiles, resolve
from shadow_pipeline.domain.validation.hftbacktest_engine import hftbacktest_replay
from shadow_pipeline.parquet import write_frame
from shadow_pipeline_tests.kpis_golden import CASES, Case, case_ticks, recording_path

GOLDEN = Path(__file__).resolve().parent / "fixtures/fills_golden"
PROFILES = ("conservative", "moderate", "aggressive")
ENGINES = ("queue", "dwell", "hftbacktest")
# One case per recording and seed (the window length does not change fills).
FILL_CASES = tuple({(c.recording, c.seed): c for c in CASES}.values())


def golden_path(case: Case, profile: str, engine: str) -> Path:
    return GOLDEN / f"{case.name.rsplit('_', 1)[0]}_{profile}_{engine}.parquet"


def engine_fills(ticks: pd.DataFrame, params: StrategyParams, engine: str) -> pd.DataFrame:
    """The fills, with a digest of the position after every tick in their attrs."""
    if engine == "hftbacktest":
        simulation = hftbacktest_replay(ticks, params)
    else:
        simulation = simulate(ticks, replace(params, fill_model=engine))
    fills = simulation.fills.astype({"kind": str})
    positions = simulation.inventory["position"].to_numpy(dtype=np.float64)
    fills.attrs = {"positions": hashlib.sha256(positions.tobytes()).hexdigest()[:16], "ticks": len(ticks)}
    return fills


def main() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for case in FILL_CASES:
        path = recording_path(case)
        if path is not None and not path.exists():
            raise SystemExit(f"recording not found: {path} (set SHADOW_MARKET_DATA to the market folder)")
        ticks = case_ticks(case)
        for profile in PROFILES:
            params, _ = resolve(load_profiles(), profile, case.symbol)
            for engine in ENGINES:
                fills = engine_fills(ticks, params, engine)
                write_frame(fills, str(golden_path(case, profile, engine)))
                print(f"{golden_path(case, profile, engine).name}: {len(fills)} fills")


if __name__ == "__main__":
    main()
