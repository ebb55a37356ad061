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

from shadow_pipeline.defs.dryrun import checks as dryrun_checks
from shadow_pipeline.defs.ingest import checks
from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.shadow import checks as shadow_checks
from shadow_pipeline.defs.shadow.assets import ShadowConfig
from shadow_pipeline.defs.shadow.jobs import SHADOW_JOB
from shadow_pipeline.defs.tune import checks as tune_checks
from shadow_pipeline.io_managers import ParquetIOManager
from shadow_pipeline.launch import definitions
from shadow_pipeline.resources import ArtifactsResource, LandingResource, RedisResource, TickStreamResource
from shadow_pipeline_tests.ingest_helpers import replay_synthetic
from shadow_pipeline_tests.instance_helpers import project_home

ASSETS_QUERY = """{ assetNodes { assetKey { path } groupName isPartitioned description
  assetChecksOrError { ... on AssetChecks { checks { name blocking } } } } }"""
MATERIALIZATION_QUERY = """{ assetOrError(assetKey: {path: ["%s"]}) { ... on Asset {
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
    # On PostgreSQL when $SHADOW_DAGSTER_PG_URL is set (a database of this test's own).
    with project_home(home, "telemetry:\n  enabled: false\n") as home_env:
        port = _port()
        command = [sys.executable, "-m", "dagster_webserver", "-m", "shadow_pipeline.definitions", "-p", str(port)]
        process = subprocess.Popen(
            command,
            env={**os.environ, **home_env},
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
            [landing_zone, raw_ticks, normalized_ticks],
            partition_key=partition_key("2024-08-09-00:00", "BTCUSDT"),
            resources={
                "redis": RedisResource(url=redis_url),
                "tick_stream": TickStreamResource(stream=stream),
                "landing": LandingResource(base_path=str(tmp_path / "landing")),
                "io_manager": ParquetIOManager(base_path=str(tmp_path / "assets")),
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
        checks.FITS_INSTRUMENT: True,
        checks.NO_SEQUENCE_GAPS: False,
        checks.REORDERED_SHARE_BELOW: False,
    }
    raw_checks = nodes[("raw_ticks",)]["assetChecksOrError"]["checks"]
    assert raw_checks == [{"name": checks.NON_EMPTY, "blocking": True}]
    for asset in ("shadow_iterations", "shadow_report"):
        assert nodes[(asset,)]["groupName"] == "shadow" and nodes[(asset,)]["isPartitioned"]
    gates = {c["name"]: c["blocking"] for c in nodes[("shadow_report",)]["assetChecksOrError"]["checks"]}
    assert gates == {shadow_checks.MIN_VALID_WINDOWS: False, shadow_checks.KPI_THRESHOLDS: False}  # verdicts
    assert nodes[("exported_kpis",)]["groupName"] == "export"
    accuracy = {c["name"]: c["blocking"] for c in nodes[("dryrun_accuracy_report",)]["assetChecksOrError"]["checks"]}
    assert accuracy == {dryrun_checks.ACCURACY_GATE: False, dryrun_checks.ACCURACY_WARN: False}
    tuned = nodes[("tuned_profile",)]
    assert tuned["groupName"] == "tune" and tuned["isPartitioned"] and tuned["description"]
    assert tuned["assetChecksOrError"]["checks"] == [{"name": tune_checks.OUT_OF_SAMPLE_GATES, "blocking": False}]
    latest = _graphql(port, MATERIALIZATION_QUERY % "normalized_ticks")["assetOrError"]["assetMaterializations"][0]
    assert latest["partition"] == "2024-08-09-00:00|BTCUSDT"
    entries = {e["label"]: e for e in latest["metadataEntries"]}
    assert entries["dagster/row_count"]["intValue"] == redis_client.xlen(stream)
    assert "preview" in set(entries)
    quality = _graphql(port, MATERIALIZATION_QUERY % "tick_quality")["assetOrError"]["assetMaterializations"][0]
    counts = {e["label"] for e in quality["metadataEntries"]}
    assert {"gaps", "duplicates", "reordered", "drops", "dead_letters", "quality"} <= counts
    assert "| symbol" in entries["preview"]["mdStr"]


RUNS_QUERY = """{ runsOrError { ... on Runs { results { runId jobName status } } } }"""
CHECK_QUERY = """{ assetCheckExecutions(assetKey: {path: ["shadow_report"]}, checkName: "%s", limit: 1) {
  runId status evaluation { severity } } }"""


def test_a_no_go_is_a_successful_run_with_failed_gates_and_a_crash_is_a_failure(
    webserver: tuple[int, Path], redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    port, home = webserver
    replay_synthetic(redis_client, stream, seconds=60, symbols=("BTCUSDT",))
    placement = {
        "redis": RedisResource(url=redis_url),
        "tick_stream": TickStreamResource(stream=stream),
        "landing": LandingResource(base_path=str(tmp_path / "landing")),
        "io_manager": ParquetIOManager(base_path=str(tmp_path / "assets")),
        "artifacts": ArtifactsResource(base_path=str(tmp_path / "artifacts")),
    }
    job = definitions().resolve_job_def(SHADOW_JOB)
    key = partition_key("2024-08-09-00:00", "BTCUSDT")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = {
            profile: job.execute_in_process(
                run_config=dg.RunConfig(
                    ops={"shadow_iterations": ShadowConfig(profile=profile, window_seconds=5)}, resources=placement
                ),
                partition_key=key,
                instance=instance,
                raise_on_error=False,
            )
            for profile in ("reckless", "moderate")  # an unknown profile: a crash; a minute of market: No-Go
        }
    no_go, crash = runs["moderate"], runs["reckless"]
    assert no_go.asset_materializations_for_node("shadow_report")[0].metadata["verdict"].value == "NO-GO"
    assert not no_go.asset_materializations_for_node("live_ready_profile")  # only a Go is promoted
    statuses = {r["runId"]: r["status"] for r in _graphql(port, RUNS_QUERY)["runsOrError"]["results"]}
    assert statuses[no_go.run_id] == "SUCCESS"
    assert statuses[crash.run_id] == "FAILURE"
    for check in (shadow_checks.MIN_VALID_WINDOWS, shadow_checks.KPI_THRESHOLDS):
        latest = _graphql(port, CHECK_QUERY % check)["assetCheckExecutions"][0]
        assert latest["runId"] == no_go.run_id
        assert latest["status"] == "FAILED" and latest["evaluation"]["severity"] == "ERROR"
