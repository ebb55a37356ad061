"""The auto-tuner end to end through Dagster: ticks replayed into a real Redis, ingested, tuned walk-forward, and
the tuned profiles file rerun by the shadow, which must give the out-of-sample KPIs the tuner reported."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import redis

from shadow_pipeline.defs.ingest.jobs import INGEST_JOB
from shadow_pipeline.defs.partitions import has_hour, partition_key
from shadow_pipeline.defs.shadow.assets import ShadowConfig
from shadow_pipeline.defs.tune.assets import LIVE_READY_FILE, TuneConfig
from shadow_pipeline.defs.tune.checks import OUT_OF_SAMPLE_GATES
from shadow_pipeline.defs.tune.jobs import TUNE_JOB
from shadow_pipeline.domain.kpis.gates import GO, NO_GO
from shadow_pipeline.domain.kpis.run_notes import params_digest
from shadow_pipeline.domain.market.instruments import load_registry
from shadow_pipeline.domain.market.synthetic import generate
from shadow_pipeline.domain.market.ticks import VENUE_FIELD
from shadow_pipeline.domain.strategies.profiles import Thresholds, load_profiles, resolve
from shadow_pipeline.domain.tuning.search_space import point_of
from shadow_pipeline.feed.replay import ReplayOptions, replay
from shadow_pipeline.feed.sources import open_source
from shadow_pipeline.io_managers import ParquetIOManager
from shadow_pipeline.launch import (
    TUNE_ASSET,
    Placement,
    definitions,
    partition_keys,
    run_config,
    run_shadow,
    run_tune,
    stream_hours,
)
from shadow_pipeline.parquet import read_frame
from shadow_pipeline.reporting.snapshot import SNAPSHOT_FILE
from shadow_pipeline.reporting.tuning import FOLDS_FILE, HEATMAP_FILE, OUT_OF_SAMPLE_KPIS, SUMMARY_FILE, TUNED_FILE
from shadow_pipeline.resources import ArtifactsResource
from shadow_pipeline.settings import INSTRUMENTS_ENV, REDIS_URL_ENV
from shadow_pipeline_tests.conftest import market_file
from shadow_pipeline_tests.instance_helpers import dagster_instance

ROOT = Path(__file__).resolve().parents[1]  # this checkout: the CLI subprocesses run its code, not an install's
TUNED = "moderate_tuned"
WINDOW_S = 5.0
MAX_SETS = 12
# The recordings run 23:54 to 00:05 UTC (exchange time): two hourly partitions, the newer one judged.
BINANCE_HOURS = ("2024-08-08-23:00", "2024-08-09-00:00")
BINANCE_SYMBOLS = ("BTCUSDT", "ETHUSDT")
# Twelve minutes of the synthetic market across the 01:00 boundary: six minutes (72 windows of 5 s) in each hour.
SYNTHETIC_START = pd.Timestamp("2024-08-09 00:54", tz="UTC")
SYNTHETIC_SECONDS = 12 * 60
SYNTHETIC_HOURS = ("2024-08-09-00:00", "2024-08-09-01:00")
SYNTHETIC_SYMBOLS = ("BTCUSDT",)
EXACT_KPIS = ("valid_windows", "total_fills")  # counts: equal, not close
LOOSE_THRESHOLDS: dict[str, Any] = {
    "min_maker_share": 0.0,
    "min_net_bps": -1000.0,
    "max_p95_latency_ms": 1e6,
    "max_risk_ratio": 10.0,
    "min_windows": 1,
    "min_ticks_per_window": 50,
}


@dataclass(frozen=True)
class Market:
    """Ticks replayed into a stream of this module, and the data folder their partitions are stored in."""

    redis_url: str
    stream: str
    data_dir: str
    hours: tuple[str, ...]
    symbols: tuple[str, ...]

    @property
    def newest(self) -> str:
        return self.hours[-1]

    def placement(self, artifacts: Path) -> Placement:
        return Placement(stream=self.stream, data_dir=self.data_dir, artifacts_dir=str(artifacts))

    def partitions(self) -> list[dg.MultiPartitionKey]:
        return partition_keys(self.hours, self.symbols)


def tune_config(**fields: Any) -> TuneConfig:
    return TuneConfig(**{"window_seconds": WINDOW_S, "train_hours": 1, "max_sets": MAX_SETS, "workers": 2, **fields})


@pytest.fixture(scope="module")
def redis_env(redis_url: str) -> Iterator[str]:
    """$REDIS_URL for the module: the project's Dagster resources (and the CLI) read Redis from it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(REDIS_URL_ENV, redis_url)
        yield redis_url


def _drop_stream(client: redis.Redis, key: str) -> None:
    for pattern in (f"{key}*", f"shadow:guard:{{{key}*"):  # the stream, its dead letters, its guard state
        for name in client.scan_iter(match=pattern):
            client.delete(name)


def _ingest(market: Market) -> None:
    """ingest_job for every partition of ``market``, so that each test finds them stored whatever ran before."""
    job = definitions().resolve_job_def(INGEST_JOB)
    with dagster_instance() as instance:
        for key in market.partitions():
            result = job.execute_in_process(
                run_config=run_config(market.placement(Path(market.data_dir) / "artifacts")),
                partition_key=key,
                instance=instance,
                raise_on_error=False,
            )
            assert result.success, key


@contextmanager
def spot_as_perpetual(folder: Path) -> Iterator[None]:
    """The Binance spot recordings (the only real data spanning two hours) are shadowed under the bare symbols,
    the USD-M perpetual's keys: while they run, a user registry gives those instruments spot's grid and lots, so
    that the data fits the instrument it is shadowed as (docs/instruments.md)."""
    registry = load_registry()
    override = {
        "instruments": {
            f"{symbol}.binance-usdm": {
                "tick_size": spot.tick_size,
                "lot_step": spot.lot_step,
                "min_qty": spot.min_qty,
                "source": "test: Binance spot recordings shadowed as the perpetual",
            }
            for symbol in BINANCE_SYMBOLS
            for spot in [registry.get(f"{symbol}.binance-spot")]
        }
    }
    path = folder / "spot_as_perpetual.json"
    path.write_text(json.dumps(override), encoding="utf-8")
    before = os.environ.get(INSTRUMENTS_ENV)
    os.environ[INSTRUMENTS_ENV] = str(path)
    try:
        yield
    finally:
        if before is None:
            del os.environ[INSTRUMENTS_ENV]
        else:
            os.environ[INSTRUMENTS_ENV] = before


@pytest.fixture(scope="module")
def binance_market(redis_env: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    """The shared Binance spot recordings of both symbols (both days back to back) in one stream."""
    files = {
        s: [market_file(f"binance_hftbacktest/spot/{s.lower()}_{day}.gz") for day in ("20240808", "20240809")]
        for s in BINANCE_SYMBOLS
    }
    client = redis.Redis.from_url(redis_env, decode_responses=True)
    stream = f"test:{uuid.uuid4().hex[:12]}:tune:binance"
    try:
        for paths in files.values():
            source = open_source("binance", files=paths)
            # without their venue field (the reader says binance-spot): shadowed as the perpetual, see above
            chunks = (chunk.drop(columns=VENUE_FIELD) for chunk in source.chunks)
            replay(client, chunks, ReplayOptions(stream=stream, maxlen=None, progress=False))
        assert stream_hours(client, stream) == list(BINANCE_HOURS)
        market = Market(redis_env, stream, str(tmp_path_factory.mktemp("binance-data")), BINANCE_HOURS, BINANCE_SYMBOLS)
        with spot_as_perpetual(Path(market.data_dir)):
            _ingest(market)
        yield market
    finally:
        _drop_stream(client, stream)
        client.close()


@pytest.fixture(scope="module")
def synthetic_market(redis_env: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Market]:
    """Twelve minutes of the synthetic BTCUSDT market from 00:54 UTC: two partial hourly partitions."""
    assert all(has_hour(hour) for hour in SYNTHETIC_HOURS)  # inside the default partitions (from 2020)
    client = redis.Redis.from_url(redis_env, decode_responses=True)
    stream = f"test:{uuid.uuid4().hex[:12]}:tune:synthetic"
    try:
        chunks = generate(list(SYNTHETIC_SYMBOLS), SYNTHETIC_SECONDS, seed=7, start=SYNTHETIC_START)
        replay(client, chunks, ReplayOptions(stream=stream, maxlen=None, progress=False), SYNTHETIC_SECONDS)
        assert stream_hours(client, stream) == list(SYNTHETIC_HOURS)
        market = Market(
            redis_env, stream, str(tmp_path_factory.mktemp("synthetic-data")), SYNTHETIC_HOURS, SYNTHETIC_SYMBOLS
        )
        _ingest(market)
        yield market
    finally:
        _drop_stream(client, stream)
        client.close()


def stored_folds(market: Market, symbol: str) -> pd.DataFrame:
    """The fold table tuned_profile stored for (newest hour, symbol), read back from the project's asset store."""
    path = ParquetIOManager.under(market.data_dir).base() / TUNE_ASSET.path[-1] / market.newest / f"{symbol}.parquet"
    return read_frame(str(path))


def tune_metadata(instance: dg.DagsterInstance, hour: str, symbol: str) -> dict[str, Any]:
    """The metadata of the newest tuned_profile materialization of (hour, symbol) in ``instance``."""
    key = str(partition_key(hour, symbol))
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=TUNE_ASSET, asset_partitions=[key]), limit=1
    ).records
    assert records, f"no tuned_profile materialization of {key}"
    materialization = records[0].asset_materialization
    assert materialization is not None
    return {name: value.value for name, value in materialization.metadata.items()}


def _same(shadow: Any, tuned: Any) -> bool:
    """A KPI of the shadow's snapshot (JSON: None for NaN) against the tuner's (NaN when not computable)."""
    if tuned is None or (isinstance(tuned, float) and math.isnan(tuned)):
        return shadow is None or (isinstance(shadow, float) and math.isnan(shadow))
    if shadow is None:
        return False
    return math.isclose(float(shadow), float(tuned), rel_tol=1e-9, abs_tol=1e-12)


def assert_reproduced(snapshot: Mapping[str, Any], fold: Mapping[Any, Any]) -> None:
    """The shadow's KPIs of the judged hour are the tuner's out-of-sample KPIs of that hour."""
    for name in OUT_OF_SAMPLE_KPIS:
        tuned, shadow = fold[f"out_of_sample_{name}"], snapshot["kpis"][name]
        if name in EXACT_KPIS:
            assert int(shadow) == int(tuned), (name, shadow, tuned)
        else:
            assert _same(shadow, tuned), (name, shadow, tuned)


def _winner(text: str) -> dict[str, float]:
    """The fold table's ``winner`` ("hedge.target=0.5, max_inventory=10, ...") as numbers."""
    return {name: float(value) for name, value in (item.split("=") for item in text.split(", "))}


def _snapshot(artifacts: Path, hour: str, symbol: str) -> dict[str, Any]:
    path = ArtifactsResource(base_path=str(artifacts)).shadow_folder(hour, symbol) / SNAPSHOT_FILE
    snapshot: dict[str, Any] = json.loads(path.read_text())
    return snapshot


def tune_then_reproduce(market: Market, tmp_path: Path) -> None:
    """run_tune on every hour and symbol of ``market``; check its files; then run_shadow with each symbol's tuned
    profiles file on the newest hour and compare the KPIs (and the base profile's, which the tuner also reports)."""
    tuned_dir, shadow_dir, base_dir = tmp_path / "tuned", tmp_path / "shadow", tmp_path / "base"
    packaged = load_profiles()
    with dagster_instance() as instance:
        table = run_tune(market.partitions(), tune_config(), market.placement(tuned_dir), instance)
        assert table["symbol"].tolist() == list(market.symbols)
        assert table["run"].tolist() == ["success"] * len(market.symbols), table.get("reasons")
        assert (table["hour"] == market.newest).all() and (table["hours"] == len(market.hours)).all()
        for row in table.to_dict(orient="records"):
            symbol, verdict = str(row["symbol"]), str(row["verdict"])
            assert verdict in (GO, NO_GO)
            folder = ArtifactsResource(base_path=str(tuned_dir)).tune_folder(market.newest, symbol)
            metadata = tune_metadata(instance, market.newest, symbol)
            assert metadata["verdict"] == verdict and metadata["live_ready"] == (verdict == GO)
            assert metadata["tuned_profile"] == TUNED
            assert metadata["tuned_profiles_file"] == str(folder / TUNED_FILE)
            for name in (FOLDS_FILE, HEATMAP_FILE):
                assert (folder / name).read_bytes().startswith(b"\x89PNG"), name
            assert (folder / LIVE_READY_FILE).exists() == (verdict == GO)

            # One fold per hour after the first (train_hours 1), the newest hour judged last.
            folds = stored_folds(market, symbol)
            assert folds["test_hour"].tolist() == list(market.hours[1:])
            assert folds["train_hours"].tolist() == list(market.hours[:-1])
            assert folds["out_of_sample_valid_windows"].iloc[-1] == metadata["out_of_sample_valid_windows"] > 0

            # The summary names the decision (with its reasons on a No-Go), every fold, and the shadow command.
            summary = (folder / SUMMARY_FILE).read_text()
            assert metadata["summary"] == str(folder / SUMMARY_FILE)
            assert f"**Decision: {verdict}** on {len(folds)} out-of-sample hour(s)" in summary
            assert ("Why not:" in summary) == (verdict == NO_GO)
            for reason in str(metadata["reasons"]).splitlines() if verdict == NO_GO else []:
                assert reason in summary, reason
            for fold in folds.to_dict(orient="records"):
                cells = [re.escape(str(fold[column])) for column in ("fold", "train_hours", "test_hour")]
                pattern = r"^\|" + "".join(rf"\s*{cell}\s*\|" for cell in cells)
                assert re.search(pattern, summary, re.M), (fold, summary)
            assert str(metadata["reproduce"]) in summary

            # The tuned set's PBO beside its objective, per fold and in the summary; at or above max_pbo, a reason.
            pbo = float(metadata["pbo"])
            assert 0 <= pbo <= 1 and metadata["max_pbo"] == 0.5 and folds["pbo"].iloc[-1] == pytest.approx(pbo)
            assert f"Overfitting: PBO {pbo:.2f}" in summary
            assert (pbo >= 0.5) == any("PBO" in r for r in str(metadata["reasons"]).splitlines())

            # TUNED_PROFILES.json: the newest fold's winner as profile moderate_tuned, under the base's gates.
            params, thresholds = resolve(load_profiles(folder / TUNED_FILE), TUNED, symbol)
            newest = folds.iloc[-1].to_dict()
            winner = _winner(str(newest["winner"]))
            assert params.profile == TUNED
            assert {k: float(v) for k, v in point_of(params, list(winner)).items()} == winner
            assert thresholds == resolve(packaged, "moderate", symbol)[1]

            # What the tuner says reproduces it is the run below.
            command = shlex.split(str(metadata["reproduce"]))
            options = dict(zip(command[2::2], command[3::2], strict=True))
            assert command[:2] == ["shadow-pipeline", "shadow"]
            assert options == {
                "--profiles-file": str(folder / TUNED_FILE),
                "--profile": TUNED,
                "--hour": market.newest,
                "--symbols": symbol,
                "--window-seconds": f"{WINDOW_S:g}",
                "--stream": market.stream,
                "--data-dir": market.data_dir,
            }
            key = [partition_key(market.newest, symbol)]
            shadow = ShadowConfig(profile=TUNED, window_seconds=WINDOW_S, profiles_file=options["--profiles-file"])
            shadowed = run_shadow(key, shadow, market.placement(shadow_dir), instance)
            assert shadowed["run"].tolist() == ["success"], shadowed.get("reasons")
            snapshot = _snapshot(shadow_dir, market.newest, symbol)
            assert snapshot["profile"] == TUNED and snapshot["params_digest"] == params_digest(params)
            assert snapshot["window_seconds"] == WINDOW_S
            assert snapshot["kpis"]["total_fills"] > 0
            assert_reproduced(snapshot, newest)
            # the report's metadata carries the same numbers as the snapshot, and its verdict is the fold's
            assert shadowed["net_bps"].iloc[0] == pytest.approx(newest["out_of_sample_net_bps"], rel=1e-9)
            assert shadowed["verdict"].iloc[0] == newest["out_of_sample_verdict"]

            # The base profile's out-of-sample objective, which the tuner compares against, is the shadow's too.
            base = run_shadow(key, ShadowConfig(window_seconds=WINDOW_S), market.placement(base_dir), instance)
            assert base["run"].tolist() == ["success"]
            base_snapshot = _snapshot(base_dir, market.newest, symbol)
            assert base_snapshot["profile"] == "moderate"
            assert _same(base_snapshot["kpis"]["net_bps"], newest["base_out_of_sample_net_bps"])
            assert _same(base_snapshot["kpis"]["net_bps"], metadata["base_out_of_sample_net_bps"])


def test_shadow_with_the_tuned_profiles_file_reproduces_the_out_of_sample_kpis_on_binance_spot(
    binance_market: Market, tmp_path: Path
) -> None:
    with spot_as_perpetual(tmp_path):
        tune_then_reproduce(binance_market, tmp_path)


def test_shadow_with_the_tuned_profiles_file_reproduces_the_out_of_sample_kpis_on_the_synthetic_market(
    synthetic_market: Market, tmp_path: Path
) -> None:
    tune_then_reproduce(synthetic_market, tmp_path)


def _loose_profiles(tmp_path: Path) -> str:
    """The packaged profiles with gates every tuned set of the synthetic hour passes."""
    data = json.loads(resources.files("shadow_pipeline.profiles").joinpath("shadow_profiles.json").read_text())
    data["profiles"]["moderate"]["thresholds"] = LOOSE_THRESHOLDS
    data.pop("$schema", None)
    path = tmp_path / "loose_profiles.json"
    path.write_text(json.dumps(data))
    return str(path)


def _tune_job(market: Market, artifacts: Path, config: TuneConfig) -> dg.ExecuteInProcessResult:
    """tune_job on (newest hour, BTCUSDT) of the stored partitions, as run_tune launches it."""
    with dagster_instance() as instance:
        return (
            definitions()
            .resolve_job_def(TUNE_JOB)
            .execute_in_process(
                run_config=run_config(market.placement(artifacts), {"tuned_profile": config}),
                partition_key=partition_key(market.newest, "BTCUSDT"),
                instance=instance,
                raise_on_error=False,
            )
        )


def _gate(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == OUT_OF_SAMPLE_GATES]
    return evaluation


def test_only_a_go_writes_the_live_ready_profile_and_a_no_go_withdraws_it(
    synthetic_market: Market, tmp_path: Path
) -> None:
    artifacts = tmp_path / "artifacts"
    folder = ArtifactsResource(base_path=str(artifacts)).tune_folder(synthetic_market.newest, "BTCUSDT")
    loose = _loose_profiles(tmp_path)

    go = _tune_job(synthetic_market, artifacts, tune_config(profiles_file=loose))
    assert go.success
    [materialization] = go.asset_materializations_for_node(TUNE_ASSET.path[-1])
    assert materialization.metadata["verdict"].value == GO and materialization.metadata["live_ready"].value is True
    gate = _gate(go)
    assert gate.passed and gate.metadata["failed"].value == "none"
    live = folder / LIVE_READY_FILE
    assert live.read_bytes() == (folder / TUNED_FILE).read_bytes()
    params, thresholds = resolve(load_profiles(live), TUNED, "BTCUSDT")
    assert params.profile == TUNED
    assert thresholds == Thresholds(**LOOSE_THRESHOLDS)  # the gates it was judged by travel with it
    assert "Go, live-ready" in json.loads(live.read_text())["description"]
    assert "**Decision: GO**" in (folder / SUMMARY_FILE).read_text()

    # The same partition again, judged by the packaged (strict) gates: a No-Go that withdraws the promotion.
    no_go = _tune_job(synthetic_market, artifacts, tune_config())
    assert no_go.success  # a No-Go is a verdict: the run itself succeeded
    [materialization] = no_go.asset_materializations_for_node(TUNE_ASSET.path[-1])
    assert materialization.metadata["verdict"].value == NO_GO
    assert materialization.metadata["live_ready"].value is False
    gate = _gate(no_go)
    assert not gate.passed and gate.severity == dg.AssetCheckSeverity.ERROR
    assert gate.metadata["failed"].value != "none" and gate.description
    assert not live.exists()
    tuned = json.loads((folder / TUNED_FILE).read_text())  # still written, for inspection
    assert "No-Go, NOT live-ready" in tuned["description"]
    assert (
        resolve(load_profiles(folder / TUNED_FILE), TUNED, "BTCUSDT")[1]
        == resolve(load_profiles(), "moderate", "BTCUSDT")[1]
    )
    assert "**Decision: NO-GO**" in (folder / SUMMARY_FILE).read_text()


# Strategies other than the packaged default, tuned through Dagster over their own parameters.
# Per strategy: its base parameters (each a point of the space, so whichever set wins carries the space's values)
# and a small tune.space over them; with max_sets 4, a grid of 6 is sampled and one of 4 searched whole.
STRATEGY_SPACES: dict[str, tuple[dict[str, float], dict[str, list[float]]]] = {
    "shadow_pipeline_tests.example_strategy:TRADE_FADE": (
        {"fade_ticks": 3, "fade_ms": 250},
        {"strategy_params.fade_ticks": [0, 1, 3], "strategy_params.fade_ms": [250, 1000]},
    ),
    "inventory_skew": (
        {"risk_aversion": 1e-4, "min_half_spread_ticks": 0.5},
        {"strategy_params.risk_aversion": [1e-4, 1e-3], "strategy_params.min_half_spread_ticks": [0.5, 1.0]},
    ),
}
STRATEGY_MAX_SETS = 4


def _strategy_profiles(tmp_path: Path, strategy: str) -> str:
    """The packaged profiles with moderate quoting through ``strategy``, its tune section over that strategy's
    own parameters only (the packaged space's quote_offset_ticks is touch_offset's, and the symbols' min_lot
    spaces are left out) with a budget of 4 sets."""
    own, space = STRATEGY_SPACES[strategy]
    data = json.loads(resources.files("shadow_pipeline.profiles").joinpath("shadow_profiles.json").read_text())
    data.pop("$schema", None)
    moderate = data["profiles"]["moderate"]
    moderate["params"].update(strategy=strategy, strategy_params=own)
    moderate["tune"] = {"objective": "net_bps", "max_sets": STRATEGY_MAX_SETS, "seed": 0, "space": space}
    for entry in data["symbols"].values():
        entry.pop("tune", None)
    path = tmp_path / "strategy_profiles.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("strategy", list(STRATEGY_SPACES), ids=["desk-strategy-by-path", "inventory-skew"])
def test_tuned_profile_tunes_a_strategys_own_parameters(
    synthetic_market: Market, tmp_path: Path, strategy: str
) -> None:
    artifacts = tmp_path / "artifacts"
    folder = ArtifactsResource(base_path=str(artifacts)).tune_folder(synthetic_market.newest, "BTCUSDT")
    profiles_file = _strategy_profiles(tmp_path, strategy)
    result = _tune_job(synthetic_market, artifacts, tune_config(profiles_file=profiles_file, max_sets=None))
    assert result.success
    [materialization] = result.asset_materializations_for_node(TUNE_ASSET.path[-1])
    # the profile's budget: its 4 sets, plus the base profile unless it was among them
    evaluated = materialization.metadata["sets_evaluated"].value
    assert isinstance(evaluated, int) and STRATEGY_MAX_SETS <= evaluated <= STRATEGY_MAX_SETS + 1
    params, _ = resolve(load_profiles(folder / TUNED_FILE), TUNED, "BTCUSDT")
    assert params.profile == TUNED and params.strategy == strategy
    _, space = STRATEGY_SPACES[strategy]
    tuned = point_of(params, list(space))
    assert all(tuned[name] in values for name, values in space.items()), tuned
    # the values are the newest fold's winner, the tuner's pick among this strategy's sets
    winner = _winner(str(stored_folds(synthetic_market, "BTCUSDT").iloc[-1]["winner"]))
    assert {name: float(value) for name, value in tuned.items()} == winner


# The command line, in a subprocess as a user runs it.


def _cli_env(redis_url: str, tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # no first-run banner on stderr
    python_path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, REDIS_URL_ENV: redis_url, "DAGSTER_HOME": str(home), "PYTHONPATH": python_path}


def _tune_cli(market: Market, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    hour_options = [option for hour in market.hours for option in ("--hours", hour)]
    command = [
        *(sys.executable, "-m", "shadow_pipeline.cli", "tune", "--symbols", ",".join(market.symbols)),
        *hour_options,
        *("--window-seconds", f"{WINDOW_S:g}", "--max-sets", str(MAX_SETS), "--workers", "2"),
        *("--stream", market.stream, "--data-dir", market.data_dir, "--artifacts-dir", str(tmp_path / "artifacts")),
        *extra,
    ]
    env = _cli_env(market.redis_url, tmp_path)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def _table_row(stdout: str, symbol: str) -> dict[str, str]:
    """The printed table's row of ``symbol``, by the header's column names (the reasons, last, keep spaces)."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    header = lines[0].split()
    rows = [line.split(maxsplit=len(header) - 1) for line in lines[1:]]
    [row] = [dict(zip(header, values, strict=False)) for values in rows if symbol in values]
    return row


def test_the_tune_command_reports_a_no_go_with_exit_1_and_shows_its_progress(
    synthetic_market: Market, tmp_path: Path
) -> None:
    out = _tune_cli(synthetic_market, tmp_path)
    assert out.returncode == 1, out.stderr  # the packaged gates say No-Go on this market: a verdict, exit 1
    assert "Traceback" not in out.stderr and not _error_lines(out.stderr)
    row = _table_row(out.stdout, "BTCUSDT")
    assert row["hour"] == synthetic_market.newest and row["verdict"] == NO_GO and row["live_ready"] == "False"
    assert row["hours"] == str(len(synthetic_market.hours)) and row["judged_hours"] == synthetic_market.newest
    assert "run" not in row  # the run column is left out of the CLI's table
    assert 0 <= float(row["pbo"]) <= 1 and float(row["max_pbo"]) == 0.5
    progress = [(int(d), int(t)) for d, t in re.findall(r"^BTCUSDT tune: (\d+)/(\d+) sets$", out.stderr, re.M)]
    assert progress, out.stderr
    total = progress[-1][1]
    assert progress[-1] == (total, total) and total == int(row["sets_evaluated"])
    assert {t for _, t in progress} == {total} and [d for d, _ in progress] == sorted({d for d, _ in progress})
    assert MAX_SETS <= total <= MAX_SETS + 1  # the sampled sets plus the base profile (unless it was sampled)
    summary = Path(row["summary"])
    assert summary == tmp_path / "artifacts/tune" / synthetic_market.newest / "BTCUSDT" / SUMMARY_FILE
    assert "**Decision: NO-GO**" in summary.read_text()
    assert not (summary.parent / LIVE_READY_FILE).exists()


@pytest.mark.parametrize(
    ("space", "said"),
    [
        ("{quote_offset_ticks: [0, 1]}", "space: not JSON (line 1, column 2)"),
        ('{"foo": [1]}', "'foo' is not a tunable parameter"),
        ('{"min_lot": [0.0025]}', "min_lot: 0.0025 is not a positive multiple of BTCUSDT's lot_step 0.001"),
    ],
    ids=["not-json", "unknown-parameter", "min-lot-off-the-lot-step"],
)
def test_a_bad_search_space_is_one_error_line_and_exit_2_before_any_run(
    synthetic_market: Market, tmp_path: Path, space: str, said: str
) -> None:
    out = _tune_cli(synthetic_market, tmp_path, "--space", space)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    [error] = _error_lines(out.stderr)
    assert error.startswith("error: ") and said in error
    if space != "{quote_offset_ticks: [0, 1]}":  # where the space came from, for the instrument's rules
        assert "tune of profile 'moderate' for BTCUSDT in " in error and "with the run's space" in error
    assert out.stderr.rstrip().endswith(error)
    assert out.stdout == ""  # refused before any run: nothing ingested, no table
    assert not (tmp_path / "artifacts/tune").exists()  # nothing tuned, nothing written


def test_hours_beyond_one_tuning_period_are_refused_before_any_run(synthetic_market: Market, tmp_path: Path) -> None:
    late = "2024-08-09-07:00"  # 8 hours after the first: more than the 6 a period holds
    out = _tune_cli(synthetic_market, tmp_path, "--hours", late)
    assert out.returncode == 2 and "Traceback" not in out.stderr, (out.stdout, out.stderr)
    [error] = _error_lines(out.stderr)
    assert f"hours {synthetic_market.hours[0]} .. {late} span 8 hours; a tuning period holds 6" in error
    assert out.stdout == "" and not (tmp_path / "artifacts/tune").exists()


def test_fewer_hours_than_a_fold_needs_is_one_error_line_that_says_what_to_change(
    synthetic_market: Market, tmp_path: Path
) -> None:
    out = _tune_cli(synthetic_market, tmp_path, "--train-hours", "2")  # 2 hours given, 3 needed
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    [error] = _error_lines(out.stderr)
    assert "walk-forward needs 3 hours (2 to tune on, 1 to judge), got 2" in error
    assert error.endswith("use fewer training hours or more hours")
    assert not (tmp_path / "artifacts/tune").exists()


def test_the_command_line_prints_no_dagster_warnings(tmp_path: Path) -> None:
    env = _cli_env("redis://127.0.0.1:1/0", tmp_path)  # --help never reaches Redis
    out = subprocess.run(
        [sys.executable, "-m", "shadow_pipeline.cli", "tune", "--help"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 0 and "--train-hours" in out.stdout
    assert out.stderr == ""


def test_train_hours_beyond_the_tuning_period_is_refused_before_any_run(tmp_path: Path) -> None:
    """Refused with the range on one error line (as every ranged option): the period holds 6 hours, so at most
    5 train."""
    env = _cli_env("redis://127.0.0.1:1/0", tmp_path)  # rejected before Redis is reached
    args = ["tune", "--symbols", "BTCUSDT", "--hours", SYNTHETIC_HOURS[0], "--hours", SYNTHETIC_HOURS[1]]
    out = subprocess.run(
        [sys.executable, "-m", "shadow_pipeline.cli", *args, "--train-hours", "6"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: Invalid value for '--train-hours': 6 is not in the range 1<=x<=5"), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "artifacts").exists()


def test_an_unknown_objective_is_refused_by_the_run_config_as_by_the_cli() -> None:
    with pytest.raises(ValueError, match="unknown objective 'sharpe'; known: net_bps, pnl_bps"):
        TuneConfig(objective="sharpe")
