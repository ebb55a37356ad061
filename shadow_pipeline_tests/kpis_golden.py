"""Golden ``iteration_kpis`` results: the inputs of each case, and the recipe that wrote ``fixtures/kpis_golden``.

The fixtures hold what the implementation before the vectorized rewrite (commit ``ac60efa``) computed, so the
test compares today's code with recorded values rather than with a second copy of itself. To regenerate them
from that commit (this file only imports ``shadow_pipeline``, so it runs against any checkout of it)::

    git worktree add /tmp/kpis-reference ac60efa
    PYTHONPATH=/tmp/kpis-reference python shadow_pipeline_tests/kpis_golden.py
    git worktree remove /tmp/kpis-reference

The synthetic cases read their ticks from ``fixtures/kpis_golden/*.ticks.parquet`` (the market that ``generate``
produced at ``ac60efa``; ``--inputs`` rewrites them from today's generator), so a refit of the synthetic market
does not change what these cases test. The fill model is touch + dwell, the shadow's model at that commit.
The Binance cases need the shared recordings (``SHADOW_MARKET_DATA`` or ``../shared/data/market``); the three
broker-leg branches are all covered: measured (BTCUSDT, ``ts_broker`` as ingest derives it), untimed (ETHUSDT,
no ``ts_broker``) and replayed (the second synthetic seed, broker times an hour off; it also has a gap in
the feed, so empty windows).

The latency KPIs' clock offsets are fitted causally since the fixtures were written (on the ticks through each
window's end, so that a live shadow gets the batch's figures): test_kpis_golden.py compares their recorded values
on the last window only, where the fit spans the frame as before; test_latency_causal.py tests the others.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from shadow_pipeline import settings
from shadow_pipeline.domain.kpis.per_window import iteration_kpis
from shadow_pipeline.domain.market.synthetic import generate
from shadow_pipeline.domain.market.ticks import FIELDS, parse_table
from shadow_pipeline.domain.simulation.simulator import FeeModel, LatencyModel, TouchDwell, run
from shadow_pipeline.domain.strategies.profiles import load_profiles, resolve
from shadow_pipeline.feed.recordings import read_binance
from shadow_pipeline.feed.replay import number_ticks
from shadow_pipeline.parquet import read_frame, write_frame

GOLDEN = Path(__file__).resolve().parent / "fixtures/kpis_golden"
MARKET_DATA = settings.market_data_dir(Path(__file__).resolve().parents[2] / "shared/data/market")
PROFILE = "moderate"
SYNTHETIC_SECONDS = 240
BROKER_DELAY_NS = 2_000_000  # ts_broker as ingest derives it from live entry ids: the receive ms plus 2 ms
REPLAYED_NS = 3600 * 1_000_000_000  # broker times an hour after receive time: a replayed stream


@dataclass(frozen=True)
class Case:
    name: str
    symbol: str
    window_s: float
    recording: str | None = None  # relative to the market data folder; None: the synthetic market
    seed: int = 0
    broker: str | None = None  # "live", "replayed" or None (no ts_broker column)
    gap_s: tuple[float, float] | None = None  # seconds after the first tick without ticks: empty windows

    @property
    def golden(self) -> Path:
        return GOLDEN / f"{self.name}.parquet"

    @property
    def stored_ticks(self) -> Path:
        return GOLDEN / f"{self.name}.ticks.parquet"


CASES = (
    Case("binance_btcusdt_5s", "BTCUSDT", 5.0, "binance_hftbacktest/usdm/btcusdt_20240808.gz", broker="live"),
    Case("binance_btcusdt_60s", "BTCUSDT", 60.0, "binance_hftbacktest/usdm/btcusdt_20240808.gz", broker="live"),
    Case("binance_ethusdt_5s", "ETHUSDT", 5.0, "binance_hftbacktest/usdm/ethusdt_20240808.gz"),
    Case("binance_ethusdt_60s", "ETHUSDT", 60.0, "binance_hftbacktest/usdm/ethusdt_20240808.gz"),
    Case("synthetic_btcusdt_seed1_5s", "BTCUSDT", 5.0, seed=1, broker="live"),
    Case("synthetic_btcusdt_seed2_5s", "BTCUSDT", 5.0, seed=2, broker="replayed", gap_s=(61.5, 82.0)),
)


def recording_path(case: Case) -> Path | None:
    return None if case.recording is None else MARKET_DATA / case.recording


def case_ticks(case: Case) -> pd.DataFrame:
    """Typed ticks of one symbol in (ts_server, seq) order, as normalized_ticks stores them."""
    if case.recording is None and case.stored_ticks.exists():
        return read_frame(str(case.stored_ticks))
    return generated_ticks(case)


def generated_ticks(case: Case) -> pd.DataFrame:
    path = recording_path(case)
    if path is None:
        source = pd.concat(list(generate([case.symbol], SYNTHETIC_SECONDS, seed=case.seed)), ignore_index=True)
    else:
        source = read_binance([path])
    numbered = number_ticks(source[source["symbol"] == case.symbol].reset_index(drop=True), {})
    ticks = parse_table({c: numbered[c].astype(str).to_numpy(dtype=object) for c in FIELDS}).ticks
    ticks = ticks.sort_values(["ts_server", "seq"], kind="stable").reset_index(drop=True)
    if case.gap_s is not None:
        since = (ticks["ts_server"] - ticks["ts_server"].iloc[0]) / 1e9
        ticks = ticks[(since < case.gap_s[0]) | (since >= case.gap_s[1])].reset_index(drop=True)
    if case.broker == "live":
        ticks["ts_broker"] = (ticks["ts_local"] // 1_000_000) * 1_000_000 + BROKER_DELAY_NS
    elif case.broker == "replayed":
        ticks["ts_broker"] = ticks["ts_local"] + REPLAYED_NS
    return ticks


def case_kpis(case: Case) -> pd.DataFrame:
    ticks = case_ticks(case)
    params, thresholds = resolve(load_profiles(), PROFILE, case.symbol)
    simulation = run(ticks, params, TouchDwell.of(params), LatencyModel.of(params), FeeModel.of(params))
    return iteration_kpis(ticks, simulation, params, thresholds, case.window_s)


def main() -> None:
    GOLDEN.mkdir(parents=True, exist_ok=True)
    if "--inputs" in sys.argv:
        for case in CASES:
            if case.recording is None:
                write_frame(generated_ticks(case), str(case.stored_ticks))
        return
    for case in CASES:
        path = recording_path(case)
        if path is not None and not path.exists():
            raise SystemExit(f"recording not found: {path} (set SHADOW_MARKET_DATA to the market folder)")
        frame = case_kpis(case)
        write_frame(frame, str(case.golden))
        print(f"{case.golden.name}: {len(frame)} windows, {int(frame['total_fills'].sum())} fills")


if __name__ == "__main__":
    main()
