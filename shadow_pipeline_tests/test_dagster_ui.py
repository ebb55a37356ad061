"""The Dagster UI (webserver GraphQL, as the browser sees it) shows the assets, their metadata and checks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import redis

from shadow_pipeline.assets.ingest import normalized_ticks, raw_ticks
from shadow_pipeline.checks import dryrun as dryrun_checks
from shadow_pipeline.checks import ingest as checks
from shadow_pipeline.checks import shadow as shadow_checks
from shadow_pipeline.io_managers import ParquetIOManager
from shadow_pipeline.partitions import partition_key
from shadow_pipeline.resources import LandingResource, RedisResource, TickStreamResource
from shadow_pipeline_tests.ingest_helpers import replay_synthetic

ASSETS_QUERY = """{ assetNodes { assetKey { path } groupName isPartitioned description
  assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } }"""
MATERIALIZATION_QUERY = """{ assetOrError(assetKey: {path: ["normalized_ticks"]}) { ... on Asset {
  assetMaterializations(limit: 1) { partition metadataEntries { label
    ... on IntMetadataEntry { intValue } ... on MarkdownMetadataEntry { mdStr } } } } } }"""


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _graphql(port: int, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload: dict[str, Any] = json.loads(response.read())
    assert "errors" not in payload, payload
    return payload["data"]


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = _port()
    command = [sys.executable, "-m", "dagster_webserver", "-m", "shadow_pipeline.definitions", "-p", str(port)]
    process = subprocess.Popen(
        command,
        env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2).close()
                break
            except OSError:
                time.sleep(0.3)
        yield port, home
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def test_ui_shows_ingest_assets_with_metadata_and_checks(
    webserver: tuple[int, Path], redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    port, home = webserver
    replay_synthetic(redis_client, stream, seconds=20, symbols=("BTCUSDT",))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        result = dg.materialize(
            [raw_ticks, normalized_ticks],
            partition_key=partition_key("2024-08-09-00:00", "BTCUSDT"),
            resources={
                "redis": RedisResource(url=redis_url),
                "tick_stream": TickStreamResource(stream=stream),
                "landing": LandingResource(base_path=str(tmp_path / "landing")),
                "parquet_io_manager": ParquetIOManager(base_path=str(tmp_path / "assets")),
            },
            instance=instance,
        )
    assert result.success
    nodes = {tuple(n["assetKey"]["path"]): n for n in _graphql(port, ASSETS_QUERY)["assetNodes"]}
    for asset in ("raw_ticks", "normalized_ticks"):
        assert nodes[(asset,)]["groupName"] == "ingest" and nodes[(asset,)]["isPartitioned"]
        assert nodes[(asset,)]["description"]
    shown = {c["name"]: c["blocking"] for c in nodes[("normalized_ticks",)]["assetChecksOrError"]["checks"]}
    assert shown == {
        checks.NO_BACKPRESSURE_DROPS: True,
        checks.NO_SEQUENCE_GAPS: False,
        checks.REORDERED_SHARE_BELOW: False,
    }
    raw_checks = nodes[("raw_ticks",)]["assetChecksOrError"]["checks"]
    assert raw_checks == [{"name": checks.NON_EMPTY, "blocking": True}]
    for asset in ("shadow_iterations", "shadow_report"):
        assert nodes[(asset,)]["groupName"] == "shadow" and nodes[(asset,)]["isPartitioned"]
    gates = {c["name"]: c["blocking"] for c in nodes[("shadow_report",)]["assetChecksOrError"]["checks"]}
    assert gates == {shadow_checks.MIN_VALID_WINDOWS: True, shadow_checks.KPI_THRESHOLDS: True}
    assert nodes[("exported_kpis",)]["groupName"] == "export"
    accuracy = {c["name"]: c["blocking"] for c in nodes[("dryrun_accuracy_report",)]["assetChecksOrError"]["checks"]}
    assert accuracy == {dryrun_checks.ACCURACY_GATE: True, dryrun_checks.ACCURACY_WARN: False}
    latest = _graphql(port, MATERIALIZATION_QUERY)["assetOrError"]["assetMaterializations"][0]
    assert latest["partition"] == "2024-08-09-00:00|BTCUSDT"
    entries = {e["label"]: e for e in latest["metadataEntries"]}
    assert entries["dagster/row_count"]["intValue"] == redis_client.xlen(stream)
    assert {"gaps", "duplicates", "reordered", "drops", "dead_letters", "quality", "preview"} <= set(entries)
    assert "| symbol" in entries["preview"]["mdStr"]
