"""The shadow KPIs as Prometheus metrics: exported_kpis writes them through Dagster, the alert rules name only
exported metrics, promtool accepts the rules and their tests, and a bad sink is refused with its reason."""

from __future__ import annotations

import http.server
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import dagster as dg
import pandas as pd
import pytest
import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from shadow_pipeline.defs.export.assets import ExportConfig, exported_kpis
from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.shadow.assets import shadow_iterations, shadow_report
from shadow_pipeline.domain.kpis.run_notes import run_notes
from shadow_pipeline.parquet import read_frame
from shadow_pipeline.redis_io.keys import kpi_symbol_hash
from shadow_pipeline.redis_io.server import start_server
from shadow_pipeline.reporting.kpi_metrics import PREFIX, gates, kpi_metrics
from shadow_pipeline_tests.ingest_helpers import pipeline_resources, replay_synthetic
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.shadow_helpers import shadow_run_config, synthetic_iterations, synthetic_report

ALERTS = Path(__file__).resolve().parents[1] / "docs/alerts"
RULES = ALERTS / "shadow.rules.yml"
RULE_TESTS = ALERTS / "shadow.rules.test.yml"
HOUR = "2026-01-01-10:00"
SYMBOLS = ("BTCUSDT", "ETHUSDT")
UPSTREAM = [landing_zone, raw_ticks, normalized_ticks, shadow_iterations, shadow_report]
needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)"
)


@dataclass
class Stored:
    """Two partitions (one per symbol) stored up to shadow_report, on a Redis server of this module alone."""

    url: str
    folder: Path
    instance: dg.DagsterInstance
    resources: dict[str, Any]

    def export(self, symbol: str, **config: Any) -> dg.ExecuteInProcessResult:
        return dg.materialize(
            [*UPSTREAM, exported_kpis],
            selection=[exported_kpis],
            partition_key=partition_key(HOUR, symbol),
            resources=self.resources,
            run_config=dg.RunConfig(ops={"exported_kpis": ExportConfig(**config)}),
            instance=self.instance,
            raise_on_error=False,
        )

    def stored(self, asset: str, symbol: str) -> pd.DataFrame:
        return read_frame(str(self.folder / "assets" / asset / HOUR / f"{symbol}.parquet"))


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    server = start_server()  # the export keys are fixed names that other tests must not see
    folder = tmp_path_factory.mktemp("metrics")
    client = redis.Redis.from_url(server.url)
    replay_synthetic(client, "ticks", seconds=60, symbols=SYMBOLS, start="2026-01-01T10:00:00Z")
    resources = pipeline_resources(server.url, "ticks", folder, "metrics")
    try:
        with dagster_instance() as instance:
            for symbol in SYMBOLS:
                result = dg.materialize(
                    UPSTREAM,
                    partition_key=partition_key(HOUR, symbol),
                    resources=resources,
                    run_config=shadow_run_config(window_seconds=10),
                    instance=instance,
                )
                assert result.success, symbol
            yield Stored(server.url, folder, instance, resources)
    finally:
        client.close()
        server.stop()


@pytest.fixture(autouse=True)
def no_exports(request: pytest.FixtureRequest) -> None:
    """Each test starts with no KPI in Redis, so that one that must write nothing can tell."""
    if "stored" in request.fixturenames:
        client = redis.Redis.from_url(request.getfixturevalue("stored").url)
        for key in client.scan_iter(match="shadow:kpi:*"):
            client.delete(key)
        client.close()


def _families(path: Path) -> dict[str, tuple[dict[str, str], float]]:
    """Each metric of a textfile: its one sample's labels and value."""
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        [sample] = family.samples
        found[sample.name] = (sample.labels, sample.value)
    return found


def _failure(result: dg.ExecuteInProcessResult) -> str:
    failure = next(e for e in result.all_events if e.is_step_failure)
    error = failure.step_failure_data.error
    assert error is not None and error.cls_name == "Failure", error
    return error.message


def test_the_textfile_holds_the_report_s_kpis_thresholds_and_verdict(stored: Stored, tmp_path: Path) -> None:
    before = pd.Timestamp.now(tz="UTC").timestamp()
    for symbol in SYMBOLS:
        assert stored.export(symbol, mode="hash", textfile_dir=str(tmp_path)).success, symbol
    after = pd.Timestamp.now(tz="UTC").timestamp()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"shadow_kpis_{s}.binance-usdm_moderate.prom" for s in SYMBOLS]  # nothing temporary left
    for symbol in SYMBOLS:
        report = stored.stored("shadow_report", symbol).iloc[0]
        thresholds = run_notes(stored.stored("shadow_iterations", symbol)).thresholds
        metrics = _families(tmp_path / f"shadow_kpis_{symbol}.binance-usdm_moderate.prom")
        labels = {"instrument": f"{symbol}.binance-usdm", "venue": "binance-usdm", "profile": "moderate"}
        assert all(found == labels for found, _ in metrics.values())
        values = {name: value for name, (_, value) in metrics.items()}
        for gate in gates(thresholds):
            expected = report[gate.kpi]
            if pd.isna(expected):
                assert math.isnan(values[PREFIX + gate.kpi]), gate.kpi
            else:
                assert values[PREFIX + gate.kpi] == float(expected), gate.kpi
            assert values[f"{PREFIX}threshold_{gate.kpi}"] == gate.threshold
        assert values[f"{PREFIX}threshold_net_bps"] == thresholds.min_net_bps
        assert values[f"{PREFIX}total_fills"] == report["total_fills"] > 0
        assert values[f"{PREFIX}verdict"] == (1.0 if report["verdict"] == "GO" else 0.0)
        assert values[f"{PREFIX}window_end_timestamp_seconds"] == pd.Timestamp(report["as_of"]).timestamp()
        assert before <= values[f"{PREFIX}exported_timestamp_seconds"] <= after


def test_a_re_export_replaces_its_own_file_only(stored: Stored, tmp_path: Path) -> None:
    other = tmp_path / "shadow_kpis_ETHUSDT.binance-usdm_moderate.prom"
    other.write_text("# another partition's metrics\n")
    node_exporter_own = tmp_path / "node.prom"
    node_exporter_own.write_text("up 1\n")
    assert stored.export("BTCUSDT", mode="hash", textfile_dir=str(tmp_path)).success
    assert stored.export("BTCUSDT", mode="hash", textfile_dir=str(tmp_path)).success
    assert other.read_text() == "# another partition's metrics\n" and node_exporter_own.read_text() == "up 1\n"
    assert len(list(tmp_path.glob("shadow_kpis_BTCUSDT*"))) == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _a_file(tmp_path: Path) -> str:
    (tmp_path / "plain").write_text("")
    return str(tmp_path / "plain")


def _read_only(tmp_path: Path) -> str:
    if os.geteuid() == 0:
        pytest.skip("root writes into a read-only directory")
    (tmp_path / "ro").mkdir(mode=0o500)
    return str(tmp_path / "ro")


TEXTFILE_DIRS = [
    (lambda p: str(p / "missing"), "does not exist"),
    (_a_file, "is not a directory"),
    (_read_only, "is not writable"),
    (lambda p: str(p) + "\x00x", "holds a NUL byte"),
    (lambda p: str(p / ("x" * 5000)), "File name too long"),
]
PUSHGATEWAYS = [
    ("localhost:9091", "scheme must be http or https"),
    ("ftp://localhost:9091", "scheme must be http or https"),
    ("http://", "no host"),
    ("http://localhost:99999", "Port out of range"),
    ("http://localhost:nan", "Port could not be cast"),
    ("http://local host:9091", "whitespace"),
    ("", "empty"),
    ("http://" + "h" * 3000, "too long"),
    ("http://localhost:9091/?job=x", "query"),
]


@pytest.mark.parametrize(("make", "reason"), TEXTFILE_DIRS, ids=[r for _, r in TEXTFILE_DIRS])
def test_a_bad_textfile_dir_fails_the_run_before_redis(stored: Stored, tmp_path: Path, make: Any, reason: str) -> None:
    result = stored.export("BTCUSDT", mode="hash", textfile_dir=make(tmp_path))
    assert not result.success and reason in _failure(result)
    assert redis.Redis.from_url(stored.url).exists(kpi_symbol_hash("BTCUSDT")) == 0


@pytest.mark.parametrize(("url", "reason"), PUSHGATEWAYS, ids=[u[:30] for u, _ in PUSHGATEWAYS])
def test_a_malformed_pushgateway_fails_the_run_before_redis(stored: Stored, url: str, reason: str) -> None:
    result = stored.export("BTCUSDT", mode="hash", pushgateway=url)
    assert not result.success and reason in _failure(result)
    assert redis.Redis.from_url(stored.url).exists(kpi_symbol_hash("BTCUSDT")) == 0


def test_a_down_pushgateway_fails_the_run_after_redis_and_the_textfile(stored: Stored, tmp_path: Path) -> None:
    down = f"http://127.0.0.1:{_free_port()}"
    result = stored.export("BTCUSDT", mode="hash", textfile_dir=str(tmp_path), pushgateway=down)
    message = _failure(result)
    assert f"KPIs written to Redis, but metrics not pushed to {down}: [Errno 111] Connection refused" in message
    assert redis.Redis.from_url(stored.url).hget(kpi_symbol_hash("BTCUSDT"), "partition") == f"{HOUR}|BTCUSDT".encode()
    assert [p.name for p in tmp_path.iterdir()] == ["shadow_kpis_BTCUSDT.binance-usdm_moderate.prom"]


class _Gateway(http.server.BaseHTTPRequestHandler):
    """A stand-in pushgateway on a real socket: it keeps each push's method, path and body, and answers
    ``status``."""

    pushes: ClassVar[list[tuple[str, str, str]]] = []
    status: ClassVar[int] = 200

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        self.pushes.append(("PUT", self.path, body))
        self.send_response(self.status)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _push(stored: Stored, status: int) -> dg.ExecuteInProcessResult:
    _Gateway.pushes.clear()
    _Gateway.status = status
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        return stored.export("ETHUSDT", mode="hash", pushgateway=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()


def test_a_push_replaces_the_group_of_its_instrument_and_profile(stored: Stored) -> None:
    assert _push(stored, 200).success
    [(method, path, body)] = _Gateway.pushes
    assert (method, path) == ("PUT", "/metrics/job/shadow_kpis/instrument/ETHUSDT.binance-usdm/profile/moderate")
    report = stored.stored("shadow_report", "ETHUSDT").iloc[0]
    values = {s.name: s.value for family in text_string_to_metric_families(body) for s in family.samples}
    assert values[f"{PREFIX}total_fills"] == report["total_fills"]
    assert values[f"{PREFIX}verdict"] == (1.0 if report["verdict"] == "GO" else 0.0)


def test_a_gateway_that_refuses_the_push_fails_the_run_after_redis(stored: Stored) -> None:
    message = _failure(_push(stored, 500))
    assert "ETHUSDT: KPIs written to Redis, but metrics not pushed to http://127.0.0.1:" in message
    assert "Internal Server Error" in message
    assert redis.Redis.from_url(stored.url).exists(kpi_symbol_hash("ETHUSDT")) == 1


CLI_OPTIONS = [
    (
        ["--textfile-dir", "/nonexistent/prom"],
        "error: textfile_dir '/nonexistent/prom' does not exist (the node_exporter's --collector.textfile.directory)",
    ),
    (
        ["--pushgateway", "localhost:9091"],
        "error: pushgateway 'localhost:9091': scheme must be http or https (expected e.g. http://127.0.0.1:9091)",
    ),
    (
        ["--src", "x.json", "--mode", "hash", "--textfile-dir", "."],
        "error: --textfile-dir and --pushgateway export stored partitions, not snapshots (--src)",
    ),
]


@pytest.mark.parametrize(("args", "said"), CLI_OPTIONS, ids=["missing-dir", "no-scheme", "snapshot"])
def test_the_export_command_refuses_a_bad_sink_on_one_line(
    stored: Stored, tmp_path: Path, args: list[str], said: str
) -> None:
    env = {**os.environ, "REDIS_URL": stored.url, "DAGSTER_HOME": str(tmp_path)}
    command = [sys.executable, "-m", "shadow_pipeline.cli", "export", *args]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert [line for line in done.stderr.splitlines() if line.startswith("error: ")] == [said], done.stderr


def test_every_metric_in_the_rules_is_exported() -> None:
    iterations = synthetic_iterations()
    exported = {
        f.name for f in kpi_metrics(synthetic_report(iterations), run_notes(iterations).thresholds).registry.collect()
    }
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} == {
        "ShadowEdgeLow", "ShadowMakerShareLow", "ShadowLatencyHigh", "ShadowNoGo", "ShadowStale"
    }  # fmt: skip
    for rule in rules:
        named = set(re.findall(r"\b(shadow_[a-z0-9_]+)\b", rule["expr"]))
        assert named and named <= exported, (rule["alert"], named - exported)


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@needs_promtool
def test_each_alert_fires_on_bad_series_and_stays_silent_on_good_ones() -> None:
    tested = subprocess.run(["promtool", "test", "rules", str(RULE_TESTS)], capture_output=True, text=True, check=False)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    covered = {
        t["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for t in test["alert_rule_test"]
    }
    assert covered == {
        rule["alert"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    }
