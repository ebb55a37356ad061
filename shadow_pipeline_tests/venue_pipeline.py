"""Two venues' BTCUSDT through one stream and every stage up to the KPI export, printed as one JSON line.

Run in a process of its own (``test_venues.py``): the partitions are fixed when the code loads, so the second
venue's instrument must be in ``$SHADOW_SYMBOLS`` before it does. Usage: ``python -m
shadow_pipeline_tests.venue_pipeline <redis url> <stream> <folder>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import redis

from shadow_pipeline.defs.export.assets import exported_kpis
from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.shadow.assets import shadow_iterations, shadow_report
from shadow_pipeline.domain.market.synthetic import generate
from shadow_pipeline.domain.market.windows import hour_keys
from shadow_pipeline.feed.replay import number_ticks
from shadow_pipeline.redis_io.keys import CONSUMER_GROUP, KPI_ALL_HASH, guard_keys, kpi_stream, kpi_symbol_hash
from shadow_pipeline.redis_io.streams import to_field_rows, xadd_rows
from shadow_pipeline_tests.ingest_helpers import pipeline_resources
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.shadow_helpers import shadow_run_config

VENUES = {"BTCUSDT": None, "BTCUSDT.bybit-linear": "bybit-linear"}  # instrument key -> the entries' venue field
SECONDS = 120
ASSETS = [landing_zone, raw_ticks, normalized_ticks, shadow_iterations, shadow_report, exported_kpis]


def feed(client: redis.Redis, stream: str) -> str:
    """Both venues' ticks into ``stream``, each numbered from seq 1 (two sequence spaces); returns the hour."""
    for seed, venue in enumerate(VENUES.values()):
        frame = number_ticks(pd.concat(list(generate(["BTCUSDT"], SECONDS, seed=seed)), ignore_index=True), {})
        xadd_rows(client, stream, to_field_rows(frame.assign(venue=venue)), maxlen=None)
    return str(hour_keys(frame["ts_server"].to_numpy()[:1])[0])


def main(redis_url: str, stream: str, folder: str) -> dict[str, Any]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    hour = feed(client, stream)
    resources = pipeline_resources(redis_url, stream, Path(folder))
    out: dict[str, Any] = {"hour": hour}
    with dagster_instance() as instance:
        for key in VENUES:
            result = dg.materialize(
                ASSETS,
                partition_key=partition_key(hour, key),
                resources=resources,
                run_config=shadow_run_config(window_seconds=10),
                instance=instance,
                raise_on_error=False,
            )
            quality = next(
                e.materialization.metadata
                for e in result.get_asset_materialization_events()
                if e.asset_key == dg.AssetKey("tick_quality")
            )
            out[key] = {
                "success": result.success,
                "checks": {e.check_name: e.passed for e in result.get_asset_check_evaluations()},
                "rows": quality["rows_received"].value,
                "duplicates": quality["duplicates"].value,
                "gaps": quality["gaps"].value,
                "kpi_hash": client.hgetall(kpi_symbol_hash(key)),
                "kpi_all": json.loads(client.hget(KPI_ALL_HASH, key) or "null"),
                "kpi_stream_length": client.xlen(kpi_stream(key)),
                "guard_keys": sum(client.exists(name) for name in guard_keys(stream, CONSUMER_GROUP, key)),
            }
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:4]), default=str))
