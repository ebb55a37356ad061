"""The intent JSON Schema and the intent checks agree, and the documented publishers write intents the shadow
accepts (run against a real Redis, as a desk would run them)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import redis

from shadow_pipeline.domain.strategies.external.intents import Grid, check_intents
from shadow_pipeline.redis_io.keys import order_stream
from shadow_pipeline.redis_io.order_stream import read_raw_entries
from shadow_pipeline_tests.test_order_intents import GOOD, HOSTILE

DOC = Path(__file__).resolve().parents[1] / "docs/bot-orders.md"
SCHEMA = json.loads(resources.files("shadow_pipeline.schemas").joinpath("order_intent.schema.json").read_text())
GRID = Grid("BTCUSDT", 0.1, 0.001)
# rules one record cannot show (grid, ids, time order, the stream's history), which only the checks see
STREAM_RULES = (
    "off the grid",
    "out of range",
    "already",
    "backwards",
    "unknown order id",
    "cancel before",
    "is a market order",
    "differs from",
    "beyond int64",
    "ts beyond",
    "this stream's instrument",
    "outside the sane range",  # relative to the clock: no schema can say "a day from now"
)


def _example(kind: str) -> str:
    match = re.search(rf"<!-- example: {kind} -->\n```\w+\n(.*?)```", DOC.read_text(), re.S)
    assert match, f"no {kind} example in {DOC}"
    return match.group(1)


@pytest.mark.parametrize(("name", "before", "hostile", "words"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_the_schema_refuses_what_the_checks_refuse_record_by_record(
    name: str, before: list[dict[str, str]], hostile: dict[str, str], words: str
) -> None:
    local = not any(rule in words or rule in name for rule in STREAM_RULES) and not before
    valid = jsonschema.Draft202012Validator(SCHEMA).is_valid(hostile)
    if local:
        assert not valid, f"the schema accepts {hostile}, which the checks reject: {words}"


def test_the_schema_accepts_a_good_intent_of_each_action() -> None:
    validator = jsonschema.Draft202012Validator(SCHEMA)
    cancel = {"action": "cancel", "order_id": "a", "ts_decision": "1"}
    replace = {"action": "replace", "order_id": "a", "new_order_id": "b", "ts_decision": "2", "price": "1", "qty": "1"}
    market = {"action": "place", "order_id": "m", "ts_decision": "3", "side": "sell", "type": "market", "qty": "1"}
    for intent in (GOOD, cancel, replace, market):
        assert validator.is_valid(intent), list(validator.iter_errors(intent))


@pytest.mark.parametrize("kind", ["python", "shell"])
def test_a_documented_publisher_writes_intents_the_shadow_accepts(redis_url: str, kind: str) -> None:
    client = redis.Redis.from_url(redis_url)
    stream = order_stream("BTCUSDT")
    client.delete(stream)
    try:
        code = _example(kind)
        env = {**os.environ, "REDIS_URL": redis_url}
        command = [sys.executable, "-c", code] if kind == "python" else ["sh", "-c", code]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        entries = read_raw_entries(client, stream)
        assert len(entries) >= 2
        texts = [
            dict(zip([b.decode() for b in f[0::2]], [b.decode() for b in f[1::2]], strict=True)) for _, f in entries
        ]
        validator = jsonschema.Draft202012Validator(SCHEMA)
        for fields in texts:
            assert validator.is_valid(fields), fields
        checked = check_intents([(i, f) for (i, _), f in zip(entries, texts, strict=True)], GRID)
        assert checked.rejected == [] and checked.accepted == len(entries)
    finally:
        client.delete(stream)
        client.close()
