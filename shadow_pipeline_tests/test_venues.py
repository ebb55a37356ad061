"""One symbol on two venues through one stream: different partitions, sequence spaces and KPI keys, end to end
through Dagster on a real Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import redis

from shadow_pipeline.defs.ingest.checks import LANDING_ZONE_CHECKS, NORMALIZED_TICKS_CHECKS, RAW_TICKS_CHECKS
from shadow_pipeline.defs.partitions import PartitionOutOfRange, instrument_keys, partition_key
from shadow_pipeline.feed.replay import number_ticks
from shadow_pipeline.ingest.dead_letters import record
from shadow_pipeline.settings import SYMBOLS_ENV

ROOT = Path(__file__).resolve().parents[1]
INGEST_CHECKS = {spec.name for spec in (*LANDING_ZONE_CHECKS, *RAW_TICKS_CHECKS, *NORMALIZED_TICKS_CHECKS)}


def test_two_venues_of_one_symbol_land_in_their_own_partitions_and_kpi_keys(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        SYMBOLS_ENV: "BTCUSDT,ETHUSDT,btcusdt.Bybit-Linear",  # any case: the partitions normalize ids
        "DAGSTER_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
    }
    command = [sys.executable, "-m", "shadow_pipeline_tests.venue_pipeline", redis_url, stream, str(tmp_path)]
    try:
        run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, check=False)
        assert run.returncode == 0, run.stderr[-3000:]
        out = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        for key in ("BTCUSDT", "BTCUSDT.bybit-linear"):
            redis_client.delete(f"shadow:kpi:{key}", f"shadow:kpi:stream:{key}", f"shadow:kpi:stream:{key}:ids")
        redis_client.hdel("shadow:kpi:all", "BTCUSDT", "BTCUSDT.bybit-linear")
    perp, bybit = out["BTCUSDT"], out["BTCUSDT.bybit-linear"]
    for result in (perp, bybit):
        assert result["success"] and set(result["checks"]) >= INGEST_CHECKS, result["checks"]
        assert all(result["checks"][name] for name in INGEST_CHECKS), result["checks"]  # the gates may say No-Go
        # each venue numbered its ticks from 1: one shared sequence space would make half of them duplicates
        assert result["rows"] > 1000 and result["duplicates"] == result["gaps"] == 0
        assert result["guard_keys"] >= 1 and result["kpi_stream_length"] > 0
    assert perp["rows"] != bybit["rows"]  # two markets (two seeds), not one partition read twice
    assert (perp["kpi_hash"]["symbol"], perp["kpi_hash"]["instrument"], perp["kpi_hash"]["venue"]) == (
        "BTCUSDT",
        "BTCUSDT.binance-usdm",
        "binance-usdm",
    )
    assert (bybit["kpi_hash"]["symbol"], bybit["kpi_hash"]["instrument"], bybit["kpi_hash"]["venue"]) == (
        "BTCUSDT.bybit-linear",
        "BTCUSDT.bybit-linear",
        "bybit-linear",
    )
    assert bybit["kpi_hash"]["partition"] == f"{out['hour']}|BTCUSDT.bybit-linear"
    assert perp["kpi_all"]["venue"] == "binance-usdm" and bybit["kpi_all"]["venue"] == "bybit-linear"
    assert perp["kpi_hash"]["params_digest"] != bybit["kpi_hash"]["params_digest"]  # bybit's own fees


def test_partition_keys_take_any_spelling_of_an_instrument_and_bare_symbols_stay_bare() -> None:
    assert instrument_keys(["ethusdt", "BTCUSDT.binance-usdm", "btcusdt.BYBIT-linear", "BTCUSDT"]) == [
        "BTCUSDT",
        "BTCUSDT.bybit-linear",
        "ETHUSDT",
    ]
    assert partition_key("2024-08-08-23:00", "btcusdt.binance-usdm").keys_by_dimension["symbol"] == "BTCUSDT"
    with pytest.raises(PartitionOutOfRange, match="not an instrument id"):
        partition_key("2024-08-08-23:00", "BTC/USDT")


def test_a_dead_letter_counts_in_its_venue_partition() -> None:
    fields = [b"symbol", b"BTCUSDT", b"venue", b"bybit-linear", b"ts_server", b"1723161256313000000", b"bid", b"x"]
    assert record("1-0", "s", "non-numeric bid", fields)["partition"] == "2024-08-08-23:00|BTCUSDT.bybit-linear"
    assert record("1-0", "s", "non-numeric bid", fields[:2] + fields[4:])["partition"] == "2024-08-08-23:00|BTCUSDT"
    assert record("1-0", "s", "bad venue", [b"venue", b"Bybit", *fields[:2], *fields[4:]])["partition"] == ""


def test_a_replay_numbers_each_venue_in_its_own_sequence() -> None:
    frame = pd.DataFrame(
        {"symbol": ["BTCUSDT"] * 5, "venue": [None, "bybit-linear", None, "bybit-linear", "binance-usdm"]}
    )
    following: dict[str, int] = {}
    assert number_ticks(frame, following)["seq"].tolist() == [1, 1, 2, 2, 3]
    assert following == {"BTCUSDT": 4, "BTCUSDT.bybit-linear": 3}
    assert number_ticks(frame.drop(columns="venue"), following)["seq"].tolist() == [4, 5, 6, 7, 8]
