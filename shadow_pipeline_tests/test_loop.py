"""`shadow-pipeline loop` (`make loop`) as a user runs it: bot -> orders -> shadow, venue -> fills ->
reconciliation, on an embedded Redis it starts itself, exit 0, every order accounted for."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shadow_pipeline.domain.validation.hftbacktest_engine import hftbacktest_available
from shadow_pipeline.settings import REDIS_URL_ENV
from shadow_pipeline_tests.conftest import market_file

HOUR = "2024-08-09-00:00"


@pytest.mark.skipif(not hftbacktest_available(), reason="the paper venue needs the hbt extra")
def test_the_loop_runs_end_to_end_on_the_embedded_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != REDIS_URL_ENV}
    env.update(
        DAGSTER_HOME=str(tmp_path),
        SHADOW_DATA_DIR=str(tmp_path / "data"),
        SHADOW_ARTIFACTS_DIR=str(tmp_path / "artifacts"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "shadow_pipeline.cli", "loop", "--minutes", "3"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [published] = re.findall(
        rf"^{HOUR} BTCUSDT\s+\d+\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+top of book: the tick stream", done.stdout, re.M
    )
    intents, orders, fills, added = (int(n) for n in published)
    assert intents > 0 and 0 < orders <= intents and 0 < fills == added
    report = json.loads((tmp_path / "artifacts/dryrun" / HOUR / "BTCUSDT/ORDER_RECONCILIATION.json").read_text())
    confusion = {row["group"]: row["orders"] for row in report["confusion"]}
    assert sum(confusion.values()) == orders  # every order of the bot is in exactly one group
    assert "another model" in done.stdout


@pytest.mark.skipif(not hftbacktest_available(), reason="the paper venue needs the hbt extra")
def test_the_loop_on_the_recorded_days_reconciles_every_order_against_the_full_depth_venue(tmp_path: Path) -> None:
    """The acceptance run of the order reconciliation: the default shadow's orders (moderate's touch_offset, as a
    bot publishes them) against the paper venue on the recordings' full books, through Dagster. The figures are
    printed (pytest -s); what must hold is asserted: every order in one group, the venue on full depth."""
    files = [market_file(f"binance_hftbacktest/usdm/{s}usdt_20240808.gz") for s in ("btc", "eth")]
    env = {k: v for k, v in os.environ.items() if k != REDIS_URL_ENV}
    env.update(
        DAGSTER_HOME=str(tmp_path),
        SHADOW_DATA_DIR=str(tmp_path / "data"),
        SHADOW_ARTIFACTS_DIR=str(tmp_path / "artifacts"),
    )
    command = [sys.executable, "-m", "shadow_pipeline.cli", "loop", "--symbols", "BTCUSDT,ETHUSDT"]
    for path in files:
        command += ["--recording", str(path)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "skipped 2024-08-09-00:00 BTCUSDT" in done.stdout  # a tick past midnight is no hour to judge
    for symbol in ("BTCUSDT", "ETHUSDT"):
        assert re.search(rf"^2024-08-08-23:00 {symbol} .*full depth: lob:depth:{symbol}, 1 snapshot", done.stdout, re.M)
        folder = tmp_path / "artifacts/dryrun/2024-08-08-23:00" / symbol
        report = json.loads((folder / "ORDER_RECONCILIATION.json").read_text())
        summary = report["summary"]
        groups = ("both", "shadow_only", "real_only", "neither")
        assert sum(summary[f"orders_{group}"] for group in groups) == summary["orders"] > 0
        assert summary["orders_both"] > 0 and report["self_calibration"]["fit"]["summary"]
        assert (folder / "FITTED_PROFILE.json").exists() and (folder / "fill_reliability_by_model.png").exists()
        print(
            f"\n{symbol}: precision {summary['precision']:.3f}, recall {summary['recall']:.3f}, net_bps gap "
            f"{summary['net_bps_gap']:.3f} bp, Brier {summary['brier']:.3f}; "
            f"fit {report['self_calibration']['fit']['summary']}"
        )
