"""A profile with strategy ``external`` through Dagster: the shadow reads the bot's order stream from Redis, fills
exactly those orders, dead-letters the intents that make no sense, and gives the built-in strategy's own KPIs
when the stream holds the built-in strategy's decisions."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import redis

from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.defs.shadow.assets import shadow_iterations
from shadow_pipeline.domain.kpis.run_notes import run_notes
from shadow_pipeline.domain.simulation.simulator import simulate
from shadow_pipeline.domain.strategies.external.from_sends import intents_from_sends
from shadow_pipeline.domain.strategies.profiles import load_profiles
from shadow_pipeline.parquet import read_frame
from shadow_pipeline.redis_io.keys import dead_letter_stream, order_stream
from shadow_pipeline.redis_io.order_stream import publish_intents
from shadow_pipeline_tests.ingest_helpers import pipeline_resources, replay_synthetic
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.shadow_helpers import shadow_run_config

HOUR, SYMBOL = "2026-01-01-10:00", "ETHUSDT"
INGEST = [landing_zone, raw_ticks, normalized_ticks]
# Bad intents slipped between the bot's good ones, each with the words its dead letter must give.
BAD: list[tuple[dict[str, str], str]] = [
    ({"action": "cancel", "order_id": "never-placed", "ts_decision": "{ts}"}, "unknown order id never-placed"),
    ({"action": "cancel", "order_id": "o-late", "ts_decision": "{ts}"}, "cancel before place"),
    (
        {
            "action": "place",
            "order_id": "x-grid",
            "ts_decision": "{ts}",
            "side": "buy",
            "price": "100.005",
            "qty": "{qty}",
        },
        "off the grid",
    ),
    (
        {
            "action": "place",
            "order_id": "x-time",
            "ts_decision": "{early}",
            "side": "buy",
            "price": "{px}",
            "qty": "{qty}",
        },
        "time went backwards",
    ),
]


def _external_profiles(tmp_path: Path) -> str:
    data: dict[str, Any] = json.loads(json.dumps(load_profiles().data))
    data.pop("$schema", None)
    data["profiles"]["external_moderate"] = json.loads(json.dumps(data["profiles"]["moderate"]))
    data["profiles"]["external_moderate"]["params"]["strategy"] = "external"
    path = tmp_path / "bot_profiles.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_the_shadow_of_a_bot_s_order_stream_is_the_built_in_strategy_s_when_it_sent_the_same(
    redis_url: str, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    stream = "test:external:ticks"
    client.delete(stream, order_stream(SYMBOL), dead_letter_stream(order_stream(SYMBOL)))
    replay_synthetic(client, stream, seconds=240, symbols=(SYMBOL,), start="2026-01-01T10:00:00Z")
    key = partition_key(HOUR, SYMBOL)
    resources = pipeline_resources(redis_url, stream, tmp_path, "external")
    profiles = _external_profiles(tmp_path)
    try:
        with dagster_instance() as instance:
            built_in = dg.materialize(
                [*INGEST, shadow_iterations],
                partition_key=key,
                resources=resources,
                run_config=shadow_run_config(window_seconds=10, profiles_file=profiles),
                instance=instance,
            )
            assert built_in.success
            stored = tmp_path / "assets/shadow_iterations" / HOUR / f"{SYMBOL}.parquet"
            own = read_frame(str(stored))
            params = run_notes(own).params
            ticks = read_frame(str(tmp_path / "assets/normalized_ticks" / HOUR / f"{SYMBOL}.parquet"))
            sends = simulate(ticks, params).sends
            assert sends is not None
            intents = intents_from_sends(sends, params.tick_size, params.lot_step)
            first = intents[0]
            qty, px, ts = first.get("qty", "1"), first.get("price", "100.0"), first["ts_decision"]
            late = {"action": "place", "order_id": "o-late", "ts_decision": ts, "side": "sell", "price": px, "qty": qty}
            early = str(int(ts) - 1)
            bad = [{k: v.format(ts=ts, qty=qty, px=px, early=early) for k, v in fields.items()} for fields, _ in BAD]
            publish_intents(client, SYMBOL, [first, *bad, late, *intents[1:]])
            external = dg.materialize(
                [*INGEST, shadow_iterations],
                selection=[shadow_iterations],
                partition_key=key,
                resources=resources,
                run_config=shadow_run_config(window_seconds=10, profile="external_moderate", profiles_file=profiles),
                instance=instance,
            )
            assert external.success
            ours = read_frame(str(stored))
            # twice: the dead letters are written once however often the partition runs
            assert dg.materialize(
                [*INGEST, shadow_iterations],
                selection=[shadow_iterations],
                partition_key=key,
                resources=resources,
                run_config=shadow_run_config(window_seconds=10, profile="external_moderate", profiles_file=profiles),
                instance=instance,
            ).success
        notes = run_notes(ours)
        assert notes.params.strategy == "external"
        assert replace(notes.params, strategy=params.strategy, profile=params.profile) == params
        kpis = [c for c in own.columns if c not in ("profile",)]
        pd.testing.assert_frame_equal(ours[kpis], own[kpis], check_exact=True)
        assert ours["total_fills"].sum() > 0
        fills = read_frame(str(tmp_path / "assets/shadow_fills" / HOUR / f"{SYMBOL}.parquet"))
        sent = {i.get("new_order_id", i["order_id"]) for i in [late, *intents]}
        assert len(fills) == ours["total_fills"].sum() and set(fills["order_id"]) <= sent  # the bot's client ids
        [materialization] = external.asset_materializations_for_node("shadow_iterations")[:1]
        # the late place is valid; its cancel before it was not
        assert materialization.metadata["bot_orders"].value == len([i for i in intents if i["action"] != "cancel"]) + 1
        letters: Any = client.xrange(dead_letter_stream(order_stream(SYMBOL)))
        reasons = [fields["reason"] for _, fields in letters]
        assert len(reasons) == len(BAD), reasons
        for (_, words), reason in zip(BAD, reasons, strict=True):
            assert words in reason, (words, reason)
    finally:
        client.delete(stream, order_stream(SYMBOL), dead_letter_stream(order_stream(SYMBOL)))
        client.close()
