"""What one run of pipeline_job for one (hour, symbol) partition adds to the instance's PostgreSQL, table by table
(rows and ``pg_total_relation_size``), for the deployment's sizing in docs/scaling.md:

    SHADOW_DAGSTER_PG_URL=postgresql+psycopg2://USER@HOST:5432/DB python -m shadow_pipeline_tests.pg_load

On $SHADOW_DAGSTER_PG_URL's server, in a database of its own that it drops; the instance is
the project's instance file (its log settings decide how many event rows a run writes), Redis a private server.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import redis

from shadow_pipeline import settings
from shadow_pipeline.definitions import defs
from shadow_pipeline.defs.pipeline.jobs import PIPELINE_JOB
from shadow_pipeline.defs.shadow.assets import ShadowConfig
from shadow_pipeline.redis_io.server import start_server
from shadow_pipeline_tests.ingest_helpers import pipeline_resources, replay_synthetic
from shadow_pipeline_tests.instance_helpers import connect, project_home

HOUR = "2024-08-09-00:00"
WARM_UP, MEASURED = "ETHUSDT", "BTCUSDT"
SIZES = """
SELECT c.relname, pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public' AND c.relkind = 'r'
"""


def _tables(url: str) -> dict[str, tuple[int, int]]:
    """Exact rows and total bytes (with indexes and TOAST) of every table."""
    with connect(url) as db, db.cursor() as cursor:
        cursor.execute(SIZES)
        names = dict(cursor.fetchall())
        found = {}
        for name, size in names.items():
            cursor.execute(f'SELECT count(*) FROM "{name}"')
            found[name] = (cursor.fetchone()[0], size)
    db.close()
    return found


EVENT_BYTES = """
SELECT coalesce(dagster_event_type, 'log line'), count(*), sum(octet_length(event))
FROM event_logs WHERE run_id = %s GROUP BY 1 ORDER BY 3 DESC
"""


def _event_bytes(url: str, run_id: str) -> dict[str, list[int]]:
    """The run's serialized events by type, [rows, bytes]: what stays once autovacuum has reclaimed the pages that
    updates left behind."""
    with connect(url) as db, db.cursor() as cursor:
        cursor.execute(EVENT_BYTES, (run_id,))
        sizes = {kind: [rows, size] for kind, rows, size in cursor.fetchall()}
    db.close()
    return sizes


def _added(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> dict[str, dict[str, int]]:
    rows = {name: after[name][0] - before.get(name, (0, 0))[0] for name in after}
    size = {name: after[name][1] - before.get(name, (0, 0))[1] for name in after}
    return {name: {"rows": rows[name], "bytes": size[name]} for name in after if rows[name] or size[name]}


def measure(minutes: float, window_seconds: int) -> dict[str, dict[str, Any]]:
    """Per partition run, in order: the tables it grew. The first run drains the stream's ticks of both symbols
    into the landing zone and pays each table's first pages; the second is a partition whose ticks are landed."""
    server = start_server()
    try:
        client = redis.Redis.from_url(server.url)
        replay_synthetic(
            client, "lob:ticks", seconds=minutes * 60, symbols=(WARM_UP, MEASURED), start="2024-08-09T00:00:00Z"
        )
        with tempfile.TemporaryDirectory() as folder, project_home(Path(folder) / "home") as env:
            url = env["SHADOW_DAGSTER_PG_URL"]
            config = dg.RunConfig(
                ops={"shadow_iterations": ShadowConfig(window_seconds=window_seconds)},
                resources=pipeline_resources(server.url, "lob:ticks", Path(folder)),
            )
            with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
                job = defs().resolve_job_def(PIPELINE_JOB)
                added: dict[str, dict[str, Any]] = {}
                for symbol in (WARM_UP, MEASURED):
                    before = _tables(url)
                    tags = {"dagster/partition": f"{HOUR}|{symbol}", "dagster/partition/hour": HOUR}
                    tags["dagster/partition/symbol"] = symbol
                    result = job.execute_in_process(run_config=config, instance=instance, tags=tags)
                    assert result.success
                    added[symbol] = _added(before, _tables(url))
                    added[symbol]["event_payloads"] = _event_bytes(url, result.run_id)
    finally:
        server.stop()
    return added


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="synthetic market replayed for the partition")
    parser.add_argument("--window-seconds", type=int, default=60)
    args = parser.parse_args()
    if settings.dagster_pg_url() is None:
        raise SystemExit(f"error: set ${settings.DAGSTER_PG_URL_ENV} to the server to measure on")
    for symbol, tables in measure(args.minutes, args.window_seconds).items():
        payloads = tables.pop("event_payloads")
        total = {key: sum(t[key] for t in tables.values()) for key in ("rows", "bytes")}
        print(json.dumps({"partition": f"{HOUR}|{symbol}", "tables": tables, "total": total, "events": payloads}))


if __name__ == "__main__":
    main()
