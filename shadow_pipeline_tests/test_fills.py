"""shadow_fills through Dagster on three minutes of the synthetic market: the table against the window KPIs, the
ITER_SUMMARY files, the pictures in the report, and the CSV export with its refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
import redis
from click.testing import CliRunner

from shadow_pipeline.cli_fills import fills_command
from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.shadow.assets import shadow_iterations, shadow_report
from shadow_pipeline.defs.shadow.fills import PREVIEW_ROWS
from shadow_pipeline.domain.kpis.fills import COLUMNS
from shadow_pipeline.parquet import read_frame
from shadow_pipeline.reporting.iter_summary import summary_file
from shadow_pipeline.reporting.pnl_plots import FILL_PLOTS, INLINE_MARKDOWN_CHARS
from shadow_pipeline.reporting.snapshot import PLOT_FILE, REPORT_FILE
from shadow_pipeline_tests.ingest_helpers import pipeline_resources, replay_synthetic
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.shadow_helpers import shadow_run_config

HOUR, SYMBOL = "2024-08-09-00:00", "BTCUSDT"
WINDOW_S = 10.0


@dataclass(frozen=True)
class Stored:
    folder: Path
    result: dg.ExecuteInProcessResult

    @property
    def data_dir(self) -> str:
        return str(self.folder)  # the asset store is its assets/ folder, as --data-dir means everywhere

    @property
    def artifacts(self) -> Path:
        return self.folder / "artifacts/shadow" / HOUR / SYMBOL

    def frame(self, asset: str) -> pd.DataFrame:
        return read_frame(str(self.folder / "assets" / asset / HOUR / f"{SYMBOL}.parquet"))


@pytest.fixture(scope="module")
def stored(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    client = redis.Redis.from_url(redis_url)
    stream = "test:fills:ticks"
    client.delete(stream)
    replay_synthetic(client, stream, seconds=180, symbols=(SYMBOL,), start="2024-08-09T00:00:00Z")
    folder = tmp_path_factory.mktemp("fills")
    stale = folder / "artifacts/shadow" / HOUR / SYMBOL / summary_file(9999)
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")  # a window of an earlier run with other windows: the run removes it
    with dagster_instance() as instance:
        result = dg.materialize(
            [landing_zone, raw_ticks, normalized_ticks, shadow_iterations, shadow_report],
            partition_key=partition_key(HOUR, SYMBOL),
            resources=pipeline_resources(redis_url, stream, folder, "fills"),
            run_config=shadow_run_config(window_seconds=WINDOW_S),
            instance=instance,
        )
    yield Stored(folder, result)
    client.delete(stream)


def _int(value: dg.MetadataValue) -> int:
    assert isinstance(value, dg.IntMetadataValue) and value.value is not None
    return value.value


def test_fills_are_the_fills_the_window_kpis_count_and_weigh(stored: Stored) -> None:
    fills, windows = stored.frame("shadow_fills"), stored.frame("shadow_iterations")
    assert list(fills.columns) == list(COLUMNS)
    assert len(fills) == windows["total_fills"].sum() > 20
    assert (fills["liquidity"] == "maker").sum() == windows["maker_count"].sum()
    metadata = stored.result.asset_materializations_for_node("shadow_iterations")
    [meta] = [m.metadata for m in metadata if m.asset_key == dg.AssetKey("shadow_fills")]
    assert _int(meta["dagster/row_count"]) == _int(meta["maker_fills"]) + _int(meta["taker_fills"]) == len(fills)
    preview = meta["preview"]
    assert isinstance(preview, dg.TableMetadataValue) and len(preview.records) == PREVIEW_ROWS
    assert preview.records[0].data["order_id"] == fills["order_id"].iloc[0]
    assert [c.name for c in preview.schema.columns] == list(COLUMNS)
    for line in ("net_pnl_line", "inventory_line"):  # short enough for the UI to draw in the metadata table
        assert str(meta[line].value).startswith("![") and len(str(meta[line].value)) < INLINE_MARKDOWN_CHARS
    assert pd.to_datetime(fills["time"]).astype("int64").tolist() == fills["ts"].tolist()  # ISO says the same ns
    # the table's edges rebuild each window's net_bps: notional-weighted markout less the fee (fee > 0 is paid)
    notional = fills["price"] * fills["qty"]
    known = fills["markout_bps"].notna()
    edge = (fills["markout_bps"] - fills["fee"] / notional * 1e4) * notional
    window = (fills["ts"] - windows["window_start"].iloc[0]) // round(WINDOW_S * 1e9)
    net = edge[known].groupby(window[known]).sum() / notional[known].groupby(window[known]).sum()
    assert np.allclose(net.to_numpy(), windows.loc[net.index, "net_bps"].to_numpy(), rtol=1e-9)


def test_one_iter_summary_per_window_with_its_fills(stored: Stored) -> None:
    windows, fills = stored.frame("shadow_iterations"), stored.frame("shadow_fills")
    files = sorted(stored.artifacts.glob("ITER_SUMMARY_*.json"))
    assert len(files) == len(windows)  # and the stale window of the earlier run is gone
    for row in windows.to_dict(orient="records"):
        summary = json.loads((stored.artifacts / summary_file(row["iteration"])).read_text())
        inside = fills["ts"].between(row["window_start"], row["window_end"] - 1)
        assert summary["iteration"] == row["iteration"] and summary["fills"] == inside.sum() == row["total_fills"]
        assert pd.Timestamp(summary["window_start"]).value == row["window_start"]
        assert pd.Timestamp(summary["window_end"]).value == row["window_end"]
        assert summary["valid"] == row["valid"] and summary["scope"] == "iteration"
        assert summary["net_bps"] == (None if np.isnan(row["net_bps"]) else pytest.approx(row["net_bps"]))


def test_report_shows_every_picture_beside_it(stored: Stored) -> None:
    report = (stored.artifacts / REPORT_FILE).read_text()
    pictures = report[report.index("## Pictures") :]
    for file in (PLOT_FILE, *(plot.file for plot in FILL_PLOTS)):
        assert f"]({file})" in pictures
        assert (stored.artifacts / file).read_bytes().startswith(b"\x89PNG")
    [meta] = [
        m.metadata
        for m in stored.result.asset_materializations_for_node("shadow_iterations")
        if m.asset_key == dg.AssetKey("shadow_fills")
    ]
    for plot in FILL_PLOTS:
        name = plot.file.removesuffix(".png")
        assert str(meta[name].value).startswith(f"![{plot.alt}](data:image/png;base64,")
        assert meta[f"{name}_file"].value == str(stored.artifacts / plot.file)


def _export(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "shadow_pipeline.cli_fills", "--hour", HOUR, "--symbol", SYMBOL, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_csv_round_trips_every_row_and_column(stored: Stored, tmp_path: Path) -> None:
    out = tmp_path / "fills.csv"
    done = _export("--profile", "moderate", "--data-dir", stored.data_dir, "--csv", str(out))
    assert done.returncode == 0, done.stderr
    stored_fills = stored.frame("shadow_fills")
    stored_fills.attrs = {}
    back = pd.read_csv(out, keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(back, stored_fills, check_exact=True)
    piped = CliRunner().invoke(
        fills_command, ["--hour", HOUR, "--symbol", SYMBOL, "--data-dir", stored.data_dir, "--csv", "-"]
    )
    assert piped.exit_code == 0 and piped.stdout == out.read_text()


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--hour", "2024-13-01-00:00", "--symbol", SYMBOL], "not an hourly partition key"),
        (["--hour", "yesterday", "--symbol", SYMBOL], "not an hourly partition key"),
        (["--hour", "nan", "--symbol", SYMBOL], "not an hourly partition key"),
        (["--hour", "1999-01-01-00:00", "--symbol", SYMBOL], "before the hourly partitions"),
        (["--hour", "", "--symbol", SYMBOL], "not an hourly partition key"),
        (["--hour", HOUR, "--symbol", ""], "is not an instrument id"),
        (["--hour", HOUR, "--symbol", SYMBOL, "--data-dir", "/etc/hostname"], "materialize shadow_fills"),
        (["--hour", HOUR, "--symbol", SYMBOL, "--data-dir", "s3://no-bucket/x"], "s3"),
        (["--hour", HOUR, "--symbol", "DOGEUSDT"], "has no partitions"),
        (["--hour", HOUR, "--symbol", "BTC/USDT;rm"], "BTC/USDT"),
        (["--hour", "2024-08-09-05:00", "--symbol", SYMBOL], "materialize shadow_fills"),
        (["--hour", HOUR, "--symbol", SYMBOL, "--profile", "aggressive"], "of profile moderate, not aggressive"),
        (["--hour", HOUR, "--symbol", SYMBOL, "--csv", "/dev/full"], "No space left on device"),
        (["--hour", HOUR, "--symbol", SYMBOL, "--csv", "{tmp}"], "is a folder"),
        (["--hour", HOUR, "--symbol", SYMBOL, "--csv", "{tmp}/no/such/fills.csv"], "does not exist"),
    ],
)
def test_hostile_inputs_give_one_error_line(stored: Stored, tmp_path: Path, args: list[str], reason: str) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    if "--csv" not in args:
        args += ["--csv", str(tmp_path / "fills.csv")]
    result = CliRunner().invoke(fills_command, ["--data-dir", stored.data_dir, *args])  # a later option wins
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and reason in lines[0], lines
    assert not (tmp_path / "fills.csv").exists()


def test_a_missing_option_is_one_error_line_from_the_module(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shadow_pipeline.cli_fills", "--hour", HOUR, "--symbol", SYMBOL],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2 and done.stderr.splitlines() == ["error: Missing option '--csv'. (see fills -h)"], (
        done.stderr
    )
