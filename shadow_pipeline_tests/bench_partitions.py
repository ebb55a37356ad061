"""What a partition layout costs the UI and the sensor at desk scale: 500 instruments x 2 years (docs/partitions.md).

``python -m shadow_pipeline_tests.bench_partitions`` builds, in a temporary DAGSTER_HOME, a code location with the
project's real asset keys, dependencies and check names on the desk-scale layout (day x instrument group, 730
days), writes a run per (day, group) with its materializations and check evaluations, starts dagster-webserver on
it and times the GraphQL queries an asset page issues, then times the closed-window sensor's tick with 500
instruments' ticks in a Redis stream: the project's sensor under ``$SHADOW_PARTITION_LAYOUT=day_x_group``, which
requests a run per (day, group) (``--sensor-only`` times it alone, without the history). The desk layout is
measured with the checks partitioned like their assets and unpartitioned (``--checks``). The default hour x symbol
layout is measured at a size that still loads, for contrast. It prints a table and writes it as JSON. Not part of
``make bench``: the full size takes minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy

from shadow_pipeline import settings
from shadow_pipeline.domain.market import partition_layouts as counts
from shadow_pipeline.domain.market.instruments import instrument_key

VENUES = ("binance-usdm", "binance-spot", "bybit-linear", "bybit-spot", "okx-swap")
RUNS_PER_TRANSACTION = 200
STARTUP_TIMEOUT_S = 300
QUERY_TIMEOUT_S = 900
PAGE_ASSETS = ("shadow_report", "normalized_ticks")  # the verdict, and the asset with the most checks
# The project's checks are partitioned like their assets; the other form keeps the partition only in the evaluated
# materialization, which spares the checks tab Dagster's uncached per-partition check statuses (docs/partitions.md).
PARTITIONED, UNPARTITIONED = "partitioned", "unpartitioned"
CHECK_FORMS = {PARTITIONED: "desk", UNPARTITIONED: "desk_unpartitioned_checks"}  # check form -> report key

PARTITION_HEALTH = """query PartitionHealthQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) { ... on AssetNode { id
    partitionKeysByDimension { name type partitionKeys }
    assetPartitionStatuses {
      ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
      ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
      ... on MultiPartitionStatuses { primaryDimensionName ranges { primaryDimStartKey primaryDimEndKey
        primaryDimStartTime primaryDimEndTime secondaryDim {
          ... on TimePartitionStatuses { ranges { status startTime endTime startKey endKey } }
          ... on DefaultPartitionStatuses { materializedPartitions materializingPartitions failedPartitions }
        } } } } } } }"""
DEFINITION = """query AssetViewDefinitionQuery($assetKey: AssetKeyInput!) {
  assetOrError(assetKey: $assetKey) { ... on Asset { id key { path } hasDefinitionOrRecord
    assetMaterializations(limit: 1) { timestamp runId }
    definition { id groupName isExecutable opNames jobNames description
      partitionDefinition { description dimensionTypes { type name dynamicPartitionsDefinitionName } }
      partitionKeysByDimension { name }
      dependencyKeys { path } dependedByKeys { path } } } } }"""
CHECKS = """query AssetChecksQuery($assetKey: AssetKeyInput!) {
  assetNodeOrError(assetKey: $assetKey) { ... on AssetNode { id
    assetChecksOrError { ... on AssetChecks { checks { name description blocking canExecuteIndividually
      executionForLatestMaterialization { id runId status timestamp }
      partitionDefinition { name description }
      partitionStatuses {
        ... on AssetCheckDefaultPartitionStatuses { succeededPartitions failedPartitions inProgressPartitions
          skippedPartitions executionFailedPartitions }
        ... on AssetCheckTimePartitionStatuses { ranges { startKey endKey status } }
        ... on AssetCheckMultiPartitionStatuses { primaryDimensionName ranges { primaryDimStartKey primaryDimEndKey
          secondaryDim { ... on AssetCheckDefaultPartitionStatuses { succeededPartitions failedPartitions } } } } }
    } } } } } }"""
GRAPH_LIVE = """query AssetGraphLiveQuery($assetKeys: [AssetKeyInput!]!) {
  assetNodes(assetKeys: $assetKeys, loadMaterializations: true) { id opNames assetKey { path }
    assetMaterializations(limit: 1) { timestamp runId stepKey }
    assetChecksOrError { ... on AssetChecks { checks { name executionForLatestMaterialization { id runId status } } } }
    partitionStats { numMaterialized numMaterializing numPartitions numFailed } } }"""
CATALOG = """query AssetCatalogTableQuery($limit: Int!) {
  assetsOrError(limit: $limit) { ... on AssetConnection { nodes { id key { path }
    definition { id groupName isPartitioned partitionDefinition { description } } } cursor } } }"""
LOCATION_STATE = """{ workspaceOrError { ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def instrument_venues(count: int, venues: Sequence[str] = VENUES) -> list[tuple[str, str]]:
    """``count`` made-up instruments spread evenly over ``venues``: (instrument key, venue)."""
    return [(instrument_key(f"I{n:04d}USDT", venues[n % len(venues)]), venues[n % len(venues)]) for n in range(count)]


def project_shape() -> list[dict[str, Any]]:
    """The real code location's assets: key, upstream keys, check names, partitioned or not."""
    from shadow_pipeline.definitions import defs

    graph = defs().resolve_asset_graph()
    shape = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        shape.append(
            {
                "key": key.to_user_string(),
                "deps": sorted(p.to_user_string() for p in node.parent_entity_keys if isinstance(p, dg.AssetKey)),
                "checks": sorted(check.name for check in node.check_keys),
                "partitioned": node.partitions_def is not None,
            }
        )
    return shape


def partitions_def(spec: dict[str, Any]) -> Any:
    """The layout the spec names, at the spec's size."""
    from shadow_pipeline.defs import layouts

    end = datetime.fromisoformat(spec["end"])
    if spec["layout"] == "desk":
        return layouts.desk_scale(spec["days"], end)
    first = (end - timedelta(days=spec["days"])).strftime("%Y-%m-%d-%H:00")
    return layouts.hour_x_instrument([key for key, _ in spec["instruments"]], first, end)


def checks_partitioned(spec: dict[str, Any]) -> bool:
    """Whether the spec's checks are partitioned like their assets (``--checks``)."""
    return bool(spec.get("checks") == PARTITIONED)


def location_assets(spec: dict[str, Any]) -> list[dg.AssetsDefinition]:
    """The project's asset graph and check names on the spec's layout; the bodies only report success, since the
    UI sees the graph and the history, not what an asset computes."""
    from shadow_pipeline.defs.partitions import check_spec

    layout = partitions_def(spec)

    def build(asset: dict[str, Any]) -> dg.AssetsDefinition:
        pdef = layout if asset["partitioned"] else None
        checks = [
            check_spec(name, asset=asset["key"], partitions_def=pdef, partitioned=True)
            if pdef and checks_partitioned(spec)
            else dg.AssetCheckSpec(name, asset=asset["key"])
            for name in asset["checks"]
        ]
        results = [dg.AssetCheckResult(check_name=name, passed=True) for name in asset["checks"]]

        @dg.asset(
            key=dg.AssetKey.from_user_string(asset["key"]),
            deps=[dg.AssetKey.from_user_string(dep) for dep in asset["deps"]],
            partitions_def=pdef,
            check_specs=checks,
        )
        def body() -> dg.MaterializeResult:
            return dg.MaterializeResult(check_results=results)

        return body

    return [build(asset) for asset in spec["assets"]]


def location_defs(spec_path: str) -> dg.Definitions:
    """The bench's code location (its generated location.py calls this)."""
    return dg.Definitions(assets=location_assets(json.loads(Path(spec_path).read_text())))


def partition_keys(spec: dict[str, Any], groups: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """(key, per-dimension keys) of every partition of the spec's layout, oldest first."""
    end = datetime.fromisoformat(spec["end"])
    start = end - timedelta(days=spec["days"])
    if spec["layout"] == "desk":
        days = [(start + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(spec["days"])]
        return [(f"{day}|{group}", {"day": day, "group": group}) for day in days for group in groups]
    hours = [(start + timedelta(hours=h)).strftime("%Y-%m-%d-%H:00") for h in range(spec["days"] * 24)]
    symbols = sorted(key for key, _ in spec["instruments"])
    return [(f"{hour}|{symbol}", {"hour": hour, "symbol": symbol}) for hour in hours for symbol in symbols]


class History:
    """Clones of one real run's events for every other partition, written as one multi-row insert per table per
    ``RUNS_PER_TRANSACTION`` runs.

    The first partition is materialized for real (``dg.materialize``), so each clone has exactly the shape
    Dagster gives a materialization and a check evaluation. The rows are those ``store_event`` and
    ``add_historical_run`` write (the event; the indexed tags; the check's execution record; the run and its
    tags), into the tables as the storage created them; the asset's latest row goes through the storage's own
    ``store_asset_event``, once per asset per batch. Event by event, SQLite's storage opens an engine per
    statement and would need hours. On SQLite the events land in the index shard, which every cross-run (asset)
    query reads; the per-run shards, read only by a run's own log, stay empty but for the real run's."""

    def __init__(self, instance: dg.DagsterInstance, spec: dict[str, Any], keys: list[tuple[str, dict[str, str]]]):
        self.instance, self.spec, self.keys = instance, spec, keys
        self.written = {"runs": 0, "materializations": 0, "check_evaluations": 0}
        end = datetime.fromisoformat(spec["end"]).replace(tzinfo=UTC).timestamp()
        self.first = end - spec["days"] * 86_400
        self.step = (end - self.first) / max(len(keys), 1)
        partitioned = [asset for asset in location_assets(spec) if asset.partitions_def]
        result = dg.materialize(partitioned, partition_key=keys[0][0], instance=instance)
        logs = [entry for entry in instance.all_logs(result.run_id) if entry.dagster_event]
        kinds = dg.DagsterEventType
        self.materialized = {
            entry.dagster_event.asset_key: entry
            for entry in logs
            if entry.dagster_event and entry.dagster_event.event_type == kinds.ASSET_MATERIALIZATION
        }
        self.checked = [
            entry
            for entry in logs
            if entry.dagster_event and entry.dagster_event.event_type == kinds.ASSET_CHECK_EVALUATION
        ]
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        self.run = run
        self.written = {"runs": 1, "materializations": len(self.materialized), "check_evaluations": len(self.checked)}

    def write(self, progress: Callable[[str], None]) -> dict[str, int]:
        started = time.monotonic()
        for chunk_start in range(1, len(self.keys), RUNS_PER_TRANSACTION):
            self._chunk(chunk_start, self.keys[chunk_start : chunk_start + RUNS_PER_TRANSACTION])
            elapsed = time.monotonic() - started
            rate = self.written["runs"] / elapsed if elapsed else 0.0
            progress(
                f"  history: {self.written['runs']:,}/{len(self.keys):,} runs ({rate:,.0f} runs/s, {elapsed:,.0f} s)"
            )
        return self.written

    def _chunk(self, chunk_start: int, chunk: list[tuple[str, dict[str, str]]]) -> None:
        runs, materializations = [], []
        for offset, (key, dims) in enumerate(chunk):
            run_id, ts = str(uuid.uuid4()), self.first + (chunk_start + offset + 1) * self.step
            dimension_tags = {f"dagster/partition/{d}": v for d, v in dims.items()}
            tags = {**self.run.tags, "dagster/partition": key, **dimension_tags}
            runs.append((self.run._replace(run_id=run_id, tags=tags), ts))
            for template in self.materialized.values():
                materializations.append(self._materialization(template, run_id, ts, key, dimension_tags))
        storage: Any = self.instance.event_log_storage  # a SQL storage: SQLite or PostgreSQL, as the instance
        with storage.index_transaction() as conn:
            events, tags_table, checks_table = (_table(conn, name) for name in EVENT_TABLES)
            mat_ids = _insert_events(conn, events, materializations)
            tag_rows = [
                {
                    "event_id": event_id,
                    "asset_key": _asset_key(event).to_string(),
                    "key": k,
                    "value": v,
                    "event_timestamp": _naive(event.timestamp),
                }
                for event, event_id in zip(materializations, mat_ids, strict=True)
                for k, v in (_materialization(event).tags or {}).items()
                if k.startswith("dagster/partition/")
            ]
            conn.execute(tags_table.insert(), tag_rows)
            target_of = {
                (event.run_id, _asset_key(event)): event_id
                for event, event_id in zip(materializations, mat_ids, strict=True)
            }
            checks = [
                self._check(
                    template,
                    run_id,
                    ts,
                    key if checks_partitioned(self.spec) else None,
                    target_of[(run_id, template.get_dagster_event().asset_check_evaluation_data.asset_key)],
                )
                for run_id, ts, key in ((r.run_id, ts, r.tags["dagster/partition"]) for r, ts in runs)
                for template in self.checked
            ]
            check_ids = _insert_events(conn, events, checks)
            conn.execute(
                checks_table.insert(),
                [
                    {
                        "asset_key": evaluation.asset_key.to_string(),
                        "check_name": evaluation.check_name,
                        "partition": evaluation.partition,
                        "run_id": event.run_id,
                        "execution_status": "SUCCEEDED",
                        "evaluation_event": dg.serialize_value(event),
                        "evaluation_event_timestamp": _naive(event.timestamp),
                        "evaluation_event_storage_id": check_id,
                        "materialization_event_storage_id": (
                            evaluation.target_materialization_data.storage_id
                            if evaluation.target_materialization_data
                            else None
                        ),
                    }
                    for event, check_id in zip(checks, check_ids, strict=True)
                    for evaluation in [event.get_dagster_event().asset_check_evaluation_data]
                ],
            )
        latest = {
            _asset_key(event): (event, event_id) for event, event_id in zip(materializations, mat_ids, strict=True)
        }
        for event, event_id in latest.values():
            storage.store_asset_event(event, event_id)
        run_storage: Any = self.instance.run_storage
        with run_storage.connect() as conn:
            runs_table, run_tags_table = _table(conn, "runs"), _table(conn, "run_tags")
            conn.execute(runs_table.insert(), [_run_row(run, ts) for run, ts in runs])
            conn.execute(
                run_tags_table.insert(),
                [
                    {"run_id": run.run_id, "key": k, "value": v}
                    for run, _ in runs
                    for k, v in run.tags_for_storage().items()
                ],
            )
        self.written["runs"] += len(chunk)
        self.written["materializations"] += len(materializations)
        self.written["check_evaluations"] += len(checks)

    @staticmethod
    def _materialization(
        template: dg.EventLogEntry, run_id: str, ts: float, key: str, tags: dict[str, str]
    ) -> dg.EventLogEntry:
        event = template.get_dagster_event()
        data: Any = event.event_specific_data  # StepMaterializationData, a NamedTuple
        original = _materialization(template)
        materialization = original._replace(partition=key, tags={**(original.tags or {}), **tags})
        return template._replace(
            run_id=run_id,
            timestamp=ts,
            dagster_event=event._replace(event_specific_data=data._replace(materialization=materialization)),
        )

    @staticmethod
    def _check(template: dg.EventLogEntry, run_id: str, ts: float, key: str | None, target_id: int) -> dg.EventLogEntry:
        event = template.get_dagster_event()
        evaluation = event.asset_check_evaluation_data
        target = evaluation.target_materialization_data
        clone = dg.AssetCheckEvaluation(
            asset_key=evaluation.asset_key,
            check_name=evaluation.check_name,
            passed=evaluation.passed,
            metadata=evaluation.metadata,
            target_materialization_data=target
            if target is None
            else type(target)(storage_id=target_id, run_id=run_id, timestamp=ts),
            severity=evaluation.severity,
            description=evaluation.description,
            blocking=evaluation.blocking,
            partition=key,
        )
        return template._replace(run_id=run_id, timestamp=ts, dagster_event=event._replace(event_specific_data=clone))


EVENT_TABLES = ("event_logs", "asset_event_tags", "asset_check_executions")


def _table(conn: Any, name: str) -> sqlalchemy.Table:
    """A storage table as the storage created it (reflected: Dagster's table objects are private)."""
    return sqlalchemy.Table(name, sqlalchemy.MetaData(), autoload_with=conn)


def _naive(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)  # how the storage stores times


def _asset_key(event: dg.EventLogEntry) -> dg.AssetKey:
    key = event.get_dagster_event().asset_key
    assert key is not None
    return key


def _materialization(event: dg.EventLogEntry) -> dg.AssetMaterialization:
    return event.get_dagster_event().step_materialization_data.materialization


def _insert_events(conn: Any, table: sqlalchemy.Table, events: list[dg.EventLogEntry]) -> list[int]:
    """The events' storage ids, in order, from one multi-row insert of store_event's rows."""
    rows = [
        {
            "run_id": event.run_id,
            "event": dg.serialize_value(event),
            "dagster_event_type": dagster_event.event_type_value,
            "timestamp": _naive(event.timestamp),
            "step_key": dagster_event.step_key,
            "asset_key": dagster_event.asset_key.to_string() if dagster_event.asset_key else None,
            "partition": dagster_event.partition,
        }
        for event in events
        for dagster_event in [event.get_dagster_event()]
    ]
    statement = table.insert().returning(table.c.id, sort_by_parameter_order=True)
    return [row[0] for row in conn.execute(statement, rows)]


def _run_row(run: dg.DagsterRun, ts: float) -> dict[str, Any]:
    """What add_historical_run stores for a finished run created at ``ts``."""
    return {
        "run_id": run.run_id,
        "pipeline_name": run.job_name,
        "status": run.status.value,
        "run_body": dg.serialize_value(run),
        "snapshot_id": run.job_snapshot_id,
        "partition": run.tags.get("dagster/partition"),
        "partition_set": run.tags.get("dagster/partition_set"),
        "create_timestamp": _naive(ts),
        "update_timestamp": _naive(ts),
        "start_time": ts,
        "end_time": ts + 60,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def graphql(url: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST one query; GraphQL errors raise, so a wrong field never passes for a fast page."""
    body = json.dumps({"query": query, "variables": variables or {}}).encode()
    request = urllib.request.Request(f"{url}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=QUERY_TIMEOUT_S) as response:
        reply = json.loads(response.read())
    if reply.get("errors"):
        raise RuntimeError(f"GraphQL errors: {json.dumps(reply['errors'])[:600]}")
    return dict(reply["data"])


@contextmanager
def webserver(home: Path, workspace: Path) -> Iterator[str]:
    """dagster-webserver on ``home`` with the bench's location loaded, at a free port; stopped on exit."""
    port = _free_port()
    command = [str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
    log = (home / "webserver.log").open("wb")
    process = subprocess.Popen(
        [*command, "-w", str(workspace)], env={**os.environ, "DAGSTER_HOME": str(home)}, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"dagster-webserver exited {process.returncode}: see {home / 'webserver.log'}")
            try:
                entries = graphql(url, LOCATION_STATE)["workspaceOrError"]["locationEntries"]
                states = [e["locationOrLoadError"] for e in entries]
                if states and all(s and s["__typename"] == "RepositoryLocation" for s in states):
                    break
                errors = [s["message"] for s in states if s and s["__typename"] == "PythonError"]
                if errors:
                    raise RuntimeError(f"the bench's code location failed to load: {errors[0][:800]}")
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"dagster-webserver not ready in {STARTUP_TIMEOUT_S} s")
            time.sleep(1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def time_query(url: str, query: str, variables: dict[str, Any], repeats: int) -> dict[str, float]:
    """The first call (cold: Dagster computes and caches partition status) and the median of ``repeats`` more."""
    timings = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        graphql(url, query, variables)
        timings.append((time.perf_counter() - started) * 1000)
    return {"first_ms": round(timings[0], 1), "median_ms": round(statistics.median(timings[1:]), 1)}


def page_timings(
    url: str, spec: dict[str, Any], repeats: int, say: Callable[[str], None]
) -> dict[str, dict[str, float]]:
    """The asset page's queries for each of PAGE_ASSETS, then the asset graph's live data and the catalog."""
    keys = [{"path": [a["key"]]} for a in spec["assets"]]
    timed: dict[str, dict[str, float]] = {}
    for asset in PAGE_ASSETS:
        variables = {"assetKey": {"path": [asset]}}
        for name, query in (("definition", DEFINITION), ("partition_health", PARTITION_HEALTH), ("checks", CHECKS)):
            timed[f"{asset}: {name}"] = time_query(url, query, variables, repeats)
            say(f"  {asset}: {name} {timed[f'{asset}: {name}']}")
    timed["asset graph live data (all assets)"] = time_query(url, GRAPH_LIVE, {"assetKeys": keys}, repeats)
    timed["asset catalog"] = time_query(url, CATALOG, {"limit": 1000}, repeats)
    say(f"  graph {timed['asset graph live data (all assets)']}, catalog {timed['asset catalog']}")
    return timed


def partition_stats(url: str, asset: str) -> dict[str, Any]:
    """What the webserver itself reports for ``asset``: the partitions the UI lays out, and how many of them the
    history materialized, and its checks' latest status (all of them, and SUCCEEDED, when the history is right)."""
    node = graph_node(url, asset)
    stats = node["partitionStats"]
    checks = node["assetChecksOrError"]["checks"]
    statuses = sorted({(check["executionForLatestMaterialization"] or {}).get("status", "none") for check in checks})
    return {
        "partitions": int(stats["numPartitions"]),
        "materialized": int(stats["numMaterialized"]),
        "latest_check_statuses": ",".join(statuses),
    }


def graph_node(url: str, asset: str) -> dict[str, Any]:
    return dict(graphql(url, GRAPH_LIVE, {"assetKeys": [{"path": [asset]}]})["assetNodes"][0])


def fill_stream(redis_url: str, stream: str, instruments: Sequence[str], end: datetime, per_hour: int) -> int:
    """Ticks for every instrument in the two hours before ``end``, plus one past ``end`` that closes them: what a
    sensor tick reads after a quiet spell. Returns the entries written."""
    import redis

    client = redis.Redis.from_url(redis_url)
    base = int((end - timedelta(hours=2)).timestamp() * 1e9)
    spacing = int(2 * 3600 * 1e9 / (2 * per_hour))
    written = 0
    pipe = client.pipeline(transaction=False)
    for n in range(2 * per_hour):
        for seq_base, symbol in enumerate(instruments):
            ts = base + n * spacing + seq_base
            pipe.xadd(stream, _tick(symbol, n + 1, ts))
            written += 1
            if written % 5_000 == 0:
                pipe.execute()
    closing = int((end + timedelta(minutes=10)).timestamp() * 1e9)
    pipe.xadd(stream, _tick(instruments[0], 2 * per_hour + 1, closing))
    pipe.execute()
    client.close()
    return written + 1


def _tick(symbol: str, seq: int, ts: int) -> dict[Any, Any]:  # redis-py's xadd wants its own key types
    symbol_part, _, venue = symbol.partition(".")
    fields = {
        "symbol": symbol_part,
        "seq": str(seq),
        "ts_server": str(ts),
        "ts_local": str(ts + 3_000_000),
        "bid": "100.1",
        "ask": "100.2",
        "bid_qty": "2.5",
        "ask_qty": "1.5",
        "last_px": "",
        "last_qty": "0",
        "last_side": "",
    }
    return {**fields, "venue": venue} if venue else fields


def sensor_tick(instance: Any, redis_url: str, stream: str) -> dict[str, Any]:
    """The closed-window sensor's first evaluation on the stream (every entry unread), with the instance's history."""
    from shadow_pipeline.defs.pipeline.sensors import closed_window_sensor
    from shadow_pipeline.resources import RedisResource, TickStreamResource

    resources = {"redis": RedisResource(url=redis_url), "tick_stream": TickStreamResource(stream=stream)}
    timings, requested = [], 0
    for _ in range(3):
        context = dg.build_sensor_context(instance=instance, resources=resources)
        started = time.perf_counter()
        result = closed_window_sensor(context)
        assert isinstance(result, dg.SensorResult)
        timings.append((time.perf_counter() - started) * 1000)
        requested = len(result.run_requests or [])
    return {"median_ms": round(statistics.median(timings), 1), "runs_requested": requested}


def instance_in(home: Path) -> Any:
    """An instance at ``home`` on the project's instance file: PostgreSQL when $SHADOW_DAGSTER_PG_URL is set."""
    from shadow_pipeline.instance import instance_yaml

    base = (Path(__file__).resolve().parents[1] / "dagster.yaml").read_text()
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_yaml(base, settings.dagster_pg_url()))
    os.environ["DAGSTER_HOME"] = str(home)
    return dg.DagsterInstance.from_config(str(home))


def measure_layout(
    root: Path, name: str, spec: dict[str, Any], groups: Sequence[str], repeats: int, say: Callable[[str], None]
) -> tuple[dict[str, Any], Any]:
    """History, then page timings, for one layout in its own home under ``root``."""
    from shadow_pipeline.defs import layouts

    home = root / name
    instance = instance_in(home)
    if spec["layout"] == "desk":
        layouts.add_groups(instance, groups)
    spec_path = home / "spec.json"
    spec_path.write_text(json.dumps(spec))
    location = home / "location.py"
    location.write_text(
        "from shadow_pipeline_tests.bench_partitions import location_defs\n\n"
        f"defs = location_defs({str(spec_path)!r})\n"
    )
    (home / "workspace.yaml").write_text(f"load_from:\n  - python_file: {location}\n")
    keys = partition_keys(spec, groups)
    say(f"{name}: {len(keys):,} partitions per asset; writing the run history")
    started = time.monotonic()
    written = History(instance, spec, keys).write(say)
    history_s = time.monotonic() - started
    say(f"{name}: starting dagster-webserver")
    with webserver(home, home / "workspace.yaml") as url:
        reported = partition_stats(url, PAGE_ASSETS[0])
        say(f"{name}: the webserver reports {reported} for {PAGE_ASSETS[0]}; timing the asset page")
        timed = page_timings(url, spec, repeats, say)
    result = {
        "partitions_per_asset": len(keys),
        "webserver_partition_stats": reported,
        "history": {**written, "seconds": round(history_s, 1)},
        "queries": timed,
    }
    return result, instance


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=500)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--per-group", type=int, default=16)
    parser.add_argument("--contrast-instruments", type=int, default=2, help="hour x symbol contrast; 0 skips it")
    parser.add_argument("--contrast-days", type=int, default=730)
    parser.add_argument(
        "--checks",
        choices=(*CHECK_FORMS, "both"),
        default="both",
        help="the desk layout's checks partitioned like their assets (as the project's), unpartitioned, or both",
    )
    parser.add_argument(
        "--contrast-checks",
        choices=tuple(CHECK_FORMS),
        default=PARTITIONED,
        help="the contrast's checks: partitioned (the project's default) or unpartitioned ($SHADOW_PARTITIONED_CHECKS)",
    )
    parser.add_argument("--ticks-per-hour", type=int, default=100, help="per instrument, for the sensor tick")
    parser.add_argument("--sensor-only", action="store_true", help="time the sensor's tick alone, on no history")
    parser.add_argument("--repeats", type=int, default=3, help="warm calls per query after the first")
    default_out = Path(tempfile.gettempdir()) / "bench_partitions.json"
    parser.add_argument("--out", type=Path, default=default_out, help=f"the JSON table (default: {default_out})")
    args = parser.parse_args(argv)
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    instruments = instrument_venues(args.instruments)
    # The sensor is the project's, on day x group from the environment: give it these instruments and days, and a
    # folder of its own for their groups (it keeps them there: docs/partitions.md).
    os.environ[settings.SYMBOLS_ENV] = ",".join(key for key, _ in instruments)
    os.environ[settings.FIRST_HOUR_ENV] = (end - timedelta(days=args.days)).strftime("%Y-%m-%d-%H:00")
    os.environ[settings.PARTITION_LAYOUT_ENV] = "day_x_group"
    os.environ[settings.ARTIFACTS_DIR_ENV] = tempfile.mkdtemp(prefix="bench-partitions-artifacts-")
    group_of = counts.assign_groups({}, [key for key, _ in instruments], args.per_group)  # a fresh desk
    groups = sorted(set(group_of.values()))
    per_venue = {venue: sum(1 for _, v in instruments if v == venue) for venue in VENUES}
    say = lambda line: print(line, flush=True)  # noqa: E731
    shape = project_shape()
    report: dict[str, Any] = {
        "instruments": args.instruments,
        "days": args.days,
        "groups": len(groups),
        "storage": "postgresql" if settings.dagster_pg_url() else "sqlite",
        "counts": {
            layout.name: counts.partition_count(layout, args.days, args.instruments, len(groups))
            for layout in counts.LAYOUTS
        },
    }
    assert len(groups) == counts.group_count(per_venue, args.per_group)

    def save() -> None:  # after each stage, so that a later stage's failure keeps the earlier figures
        args.out.write_text(json.dumps(report, indent=2))

    with tempfile.TemporaryDirectory(prefix="bench-partitions-") as tmp:
        root = Path(tmp)
        desk = {"layout": "desk", "days": args.days, "end": end.isoformat(), "instruments": instruments}
        forms = list(CHECK_FORMS) if args.checks == "both" else [args.checks]
        instance = instance_in(root / "sensor-only")
        for form in [] if args.sensor_only else forms:
            name = CHECK_FORMS[form]
            spec = {**desk, "assets": shape, "checks": form}
            report[name], instance = measure_layout(root, name, spec, groups, args.repeats, say)
            save()
        from shadow_pipeline.redis_io.server import start_server

        server = start_server()
        try:
            entries = fill_stream(server.url, "lob:ticks", [k for k, _ in instruments], end, args.ticks_per_hour)
            say(f"sensor: {entries:,} entries of {args.instruments} instruments in the stream; timing its tick")
            report["sensor"] = {"entries": entries, **sensor_tick(instance, server.url, "lob:ticks")}
            say(f"sensor: {report['sensor']}")
        finally:
            server.stop()
        save()
        if args.contrast_instruments and not args.sensor_only:
            hour = {
                "layout": "hour",
                "days": args.contrast_days,
                "end": end.isoformat(),
                "instruments": instrument_venues(args.contrast_instruments),
                "assets": shape,
                "checks": args.contrast_checks,
            }
            report["hour_x_symbol"], _ = measure_layout(root, "hour", hour, [], args.repeats, say)
        save()
        print_table(report)
        say(f"written: {args.out}")
    return 0


def print_table(report: dict[str, Any]) -> None:
    size = f"{report['instruments']} instruments x {report['days']} days, {report['groups']} groups"
    print(f"\n{size} ({report['storage']})")
    for name, count in report["counts"].items():
        flag = "over" if count > counts.DAGSTER_MAX_PARTITIONS else "within"
        print(f"  {name:<20} {count:>12,} partitions per asset ({flag} Dagster's 100,000)")
    for layout in (*CHECK_FORMS.values(), "hour_x_symbol"):
        if layout not in report:
            continue
        part = report[layout]
        print(f"\n{layout}: {part['partitions_per_asset']:,} partitions per asset, history {part['history']}")
        for query, timing in part["queries"].items():
            print(f"  {query:<45} first {timing['first_ms']:>10,.1f} ms   median {timing['median_ms']:>10,.1f} ms")
    if "sensor" in report:
        sensor = report["sensor"]
        print(
            f"\nsensor tick: {sensor['median_ms']:,.1f} ms median, {sensor['entries']:,} entries, "
            f"{sensor['runs_requested']:,} runs requested"
        )


if __name__ == "__main__":
    raise SystemExit(main())
