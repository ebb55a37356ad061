"""Re-sharding (docs/ingest.md, "Shards"): the live feed's seq counters carried to the new shard streams by
`shadow-pipeline reshard`, on the real Redis with the real publisher, consumer and ``normalize``. Without the step
an instrument that moves numbers from 1 again and ``normalize`` (one tick per seq) loses the hour's new ticks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from click.testing import CliRunner, Result

from shadow_pipeline import cli
from shadow_pipeline.domain.market.quality import normalize
from shadow_pipeline.domain.market.shards import shard_of, shard_stream, shard_streams
from shadow_pipeline.ingest.consumer import IngestOptions, TickConsumer
from shadow_pipeline.ingest.guard import SequenceGuard
from shadow_pipeline.ingest.landing import LandingStore
from shadow_pipeline.ingest.metrics import IngestMetrics
from shadow_pipeline.redis_io.feed_publisher import FeedPublisher, Tick
from shadow_pipeline.redis_io.keys import CONSUMER_GROUP, feed_seq_key, guard_group_keys
from shadow_pipeline.redis_io.reshard import NotDrained, reshard_counters
from shadow_pipeline.settings import REDIS_URL_ENV
from shadow_pipeline_tests.ingest_helpers import landed

HOUR_NS = 1_723_161_600_000_000_000  # 2024-08-09T00:00:00Z: every tick below is in this hour
BTC, ETH = "BTCUSDT", "ETHUSDT"  # shard_of: 1 and 0 of 2


@pytest.fixture
def base(redis_client: redis.Redis, stream: str) -> Iterator[str]:
    """``stream`` as a sharded base; removes every key derived from it (shard streams, guard state, counters),
    which the conftest's patterns do not all reach."""
    yield stream
    for name in redis_client.scan_iter(match=f"*{stream}*"):
        redis_client.delete(name)


def _ticks(symbol: str, *seconds: int) -> list[Tick]:
    """One quote of ``symbol`` at each of ``seconds`` into the hour."""
    ticks: list[Tick] = []
    for second in seconds:
        ts = str(HOUR_NS + second * 1_000_000_000)
        fields = ["symbol", symbol, "ts_server", ts, "ts_local", ts, "bid", "100", "ask", "101", "bid_qty", "1"]
        ticks.append((symbol, [*fields, "ask_qty", "1", "last_px", "", "last_qty", "0", "last_side", ""]))
    return ticks


def _drain(redis_url: str, landing: Path, *streams: str) -> None:
    for name in streams:
        report = TickConsumer(LandingStore(landing), IngestOptions(stream=name), redis_url, IngestMetrics()).drain()
        assert report.complete


def _kept(landing: Path, symbol: str) -> list[int]:
    """The seqs ``normalize`` keeps of ``symbol``'s hour, from what the consumers landed."""
    rows = landed(LandingStore(landing))
    return normalize(rows[rows["symbol"] == symbol])["seq"].tolist()


@pytest.mark.parametrize("carry", [False, True], ids=["without-the-step", "with-the-step"])
def test_a_re_sharded_instrument_keeps_its_seq_and_every_tick_only_with_the_step(
    redis_url: str, redis_client: redis.Redis, base: str, tmp_path: Path, carry: bool
) -> None:
    """The documented procedure from 1 shard to 2: publish, stop, drain with the old count, (re-shard,) publish
    with the new count. BTCUSDT moves from the base stream to shard 1, which has no counter of it."""
    assert shard_of(BTC, 2) == 1
    landing = tmp_path / "landing"
    assert FeedPublisher(redis_client, base, None, 1).publish(_ticks(BTC, 1, 2, 3)) == {BTC: 1}
    _drain(redis_url, landing, base)
    if carry:
        result = reshard_counters(redis_client, base, 1, 2, CONSUMER_GROUP)
        assert result.as_dict()["seqs"] == {BTC: 3}
    after = FeedPublisher(redis_client, base, None, 2).publish(_ticks(BTC, 4, 5))
    _drain(redis_url, landing, shard_stream(base, 1, 2))
    if carry:
        assert after == {BTC: 4}
        assert _kept(landing, BTC) == [1, 2, 3, 4, 5]
    else:  # the defect: seq restarts at 1 and the hour's two new ticks are taken for duplicates of old ones
        assert after == {BTC: 1}
        assert _kept(landing, BTC) == [1, 2, 3]


def test_an_instrument_back_on_its_old_stream_counts_no_gap(
    redis_url: str, redis_client: redis.Redis, base: str, tmp_path: Path
) -> None:
    """1 shard, 2, then 1 again: BTCUSDT's seqs 4 and 5 went to shard 1; back on the base stream, the group's guard
    there last saw 3. The step advances it to the carried 5, so seq 6 is no gap of two."""
    FeedPublisher(redis_client, base, None, 1).publish(_ticks(BTC, 1, 2, 3))
    _drain(redis_url, tmp_path, base)
    reshard_counters(redis_client, base, 1, 2, CONSUMER_GROUP)
    FeedPublisher(redis_client, base, None, 2).publish(_ticks(BTC, 4, 5))
    _drain(redis_url, tmp_path, shard_stream(base, 1, 2))
    assert reshard_counters(redis_client, base, 2, 1, CONSUMER_GROUP).as_dict()["guards_advanced"] == 1
    assert FeedPublisher(redis_client, base, None, 1).publish(_ticks(BTC, 6)) == {BTC: 6}
    metrics = IngestMetrics()
    TickConsumer(LandingStore(tmp_path), IngestOptions(stream=base), redis_url, metrics).drain()
    assert metrics.registry.get_sample_value("shadow_seq_gaps_total", {"symbol": BTC}) == 0
    assert metrics.registry.get_sample_value("shadow_seq_missing", {"symbol": BTC}) == 0
    assert _kept(tmp_path, BTC) == [1, 2, 3, 4, 5, 6]


def test_the_step_refuses_until_every_old_shard_is_drained(
    redis_url: str, redis_client: redis.Redis, base: str, tmp_path: Path
) -> None:
    publisher = FeedPublisher(redis_client, base, None, 2)
    publisher.publish([*_ticks(BTC, 1, 2, 3), *_ticks(ETH, 1, 2)])
    old = shard_streams(base, 2)
    assert (shard_of(BTC, 3), shard_of(ETH, 3)) == (0, 0)  # BTCUSDT moves to shard 0, ETHUSDT stays there
    moved = feed_seq_key(shard_stream(base, 0, 3), BTC)
    with pytest.raises(NotDrained, match=rf"{old[0]} holds 2 entries and no group shadow reads it; {old[1]} holds 3"):
        reshard_counters(redis_client, base, 2, 3, CONSUMER_GROUP)
    _drain(redis_url, tmp_path, old[0])  # ETHUSDT's shard; BTCUSDT's: one entry delivered and not acknowledged
    redis_client.xgroup_create(old[1], CONSUMER_GROUP, id="0")
    redis_client.xreadgroup(CONSUMER_GROUP, "stopped", {old[1]: ">"}, count=1)
    with pytest.raises(NotDrained, match=rf"^not drained: {old[1]}: 1 entries pending .* and 2 entries not delivered"):
        reshard_counters(redis_client, base, 2, 3, CONSUMER_GROUP)
    assert redis_client.exists(moved) == 0  # nothing carried by a refusal
    _drain(redis_url, tmp_path, old[1])
    assert reshard_counters(redis_client, base, 2, 3, CONSUMER_GROUP).as_dict()["seqs"] == {BTC: 3, ETH: 2}


def _delivered(client: redis.Redis, stream: str, consumer: str, count: int) -> list[tuple[str, dict[str, str]]]:
    reply: Any = client.xreadgroup(CONSUMER_GROUP, consumer, {stream: ">"}, count=count)
    return list(reply[0][1])


def test_the_step_refuses_while_a_guard_holds_batches_not_yet_counted(
    redis_url: str, redis_client: redis.Redis, base: str, tmp_path: Path
) -> None:
    """A drain of two consumers cut short between the last acknowledgement and the guard's confirm leaves a checked
    batch waiting (here: consumer b's later batch checked first, and a's entry acknowledged without its check, as a
    consumer killed at that moment leaves it). Carrying the counters on would advance guards past it, so the step
    refuses, changes nothing, and goes through once a drain has counted the batch."""
    FeedPublisher(redis_client, base, None, 1).publish(_ticks(BTC, 1, 2, 3))
    redis_client.xgroup_create(base, CONSUMER_GROUP, id="0")
    first, rest = (
        [entry_id for entry_id, _ in _delivered(redis_client, base, consumer, count)]
        for consumer, count in (("a", 1), ("b", 2))
    )
    SequenceGuard(redis_client, base, CONSUMER_GROUP).check(
        np.array([BTC, BTC]), np.array([2, 3]), False, np.array(rest)
    )
    redis_client.xack(base, CONSUMER_GROUP, *first, *rest)
    waiting = guard_group_keys(base, CONSUMER_GROUP)[1]
    assert redis_client.exists(waiting) == 1
    with pytest.raises(NotDrained, match=rf"^the sequence guard of {base} holds checked batches not yet counted"):
        reshard_counters(redis_client, base, 1, 2, CONSUMER_GROUP)
    assert redis_client.exists(feed_seq_key(shard_stream(base, shard_of(BTC, 2), 2), BTC)) == 0
    _drain(redis_url, tmp_path, base)  # reads nothing new; its confirm counts the waiting batch
    assert redis_client.exists(waiting) == 0
    assert reshard_counters(redis_client, base, 1, 2, CONSUMER_GROUP).as_dict()["seqs"] == {BTC: 3}


def test_the_step_never_lowers_a_counter_and_a_second_run_changes_nothing(
    redis_url: str, redis_client: redis.Redis, base: str, tmp_path: Path
) -> None:
    """Back from 2 shards to 1, where the counters of the time before the first re-shard still are: each
    instrument's counter becomes the highest it has anywhere, never less than what its new stream holds."""
    FeedPublisher(redis_client, base, None, 2).publish([*_ticks(BTC, 1, 2, 3), *_ticks(ETH, 1)])
    _drain(redis_url, tmp_path, *shard_streams(base, 2))
    redis_client.set(feed_seq_key(base, BTC), 2)  # BTCUSDT's counter before the first re-shard: lower
    redis_client.set(feed_seq_key(base, ETH), 9)  # ETHUSDT's: higher (that re-shard was not carried)
    first = reshard_counters(redis_client, base, 2, 1, CONSUMER_GROUP).as_dict()
    assert first | {"stream": None} == {
        "stream": None,
        "from": 2,
        "to": 1,
        "group": CONSUMER_GROUP,
        "instruments": 2,
        "moved": 2,
        "raised": 1,
        "guards_advanced": 0,  # the base stream was never consumed: no guard state there
        "seqs": {BTC: 3, ETH: 9},
    }
    assert reshard_counters(redis_client, base, 2, 1, CONSUMER_GROUP).as_dict()["raised"] == 0
    assert FeedPublisher(redis_client, base, None, 1).publish([*_ticks(BTC, 4), *_ticks(ETH, 2)]) == {BTC: 4, ETH: 10}


def test_the_command_prints_one_json_line_of_what_it_carried(
    redis_url: str, redis_client: redis.Redis, base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    FeedPublisher(redis_client, base, None, 1).publish(_ticks(BTC, 1, 2))
    _drain(redis_url, tmp_path, base)
    monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    result = _invoke(["reshard", "--stream", base, "--from", "1", "--to", "2", "--redis-url", redis_url])
    assert result.exit_code == 0, result.stderr
    [line] = result.stdout.splitlines()
    summary = json.loads(line)
    assert summary["seqs"] == {BTC: 2} and summary["moved"] == 1 and summary["raised"] == 1
    assert redis_client.get(feed_seq_key(shard_stream(base, 1, 2), BTC)) == "2"


def _invoke(args: list[str]) -> Result:
    return CliRunner().invoke(cli.main, args, prog_name="shadow-pipeline")


PASSWORD = "s3cret%pw"
DOWN = f"redis://:{PASSWORD}@127.0.0.1:1/0"  # nothing listens on port 1
# (the options after `reshard --stream <base>`, what Redis holds first, what the error line says)
HOSTILE: list[tuple[list[str], str, str]] = [
    (["--from", "2", "--to", "2"], "", "--from and --to are both 2"),
    (["--from", "0", "--to", "2"], "", "'--from': 0 is not in the range 1<=x<=1024"),
    (["--from", "1", "--to", "1025"], "", "'--to': 1025 is not in the range"),
    (["--from", "-1", "--to", "2"], "", "'--from': -1 is not in the range"),
    (["--from", "x", "--to", "2"], "", "'--from': 'x' is not a valid integer"),
    (["--from", "", "--to", "2"], "", "'--from': '' is not a valid integer"),
    (["--from", "1.5", "--to", "2"], "", "'--from': '1.5' is not a valid integer"),
    (["--from", "nan", "--to", "2"], "", "'--from': 'nan' is not a valid integer"),
    (["--from", "1", "--to", "inf"], "", "'--to': 'inf' is not a valid integer"),
    (["--from", str(10**30), "--to", "2"], "", f"'--from': {10**30} is not in the range"),
    (["--from", "1"], "", "Missing option '--to'"),
    (["--from", "1", "--to", "2"], "no url", "give --redis-url or set $REDIS_URL"),
    (["--from", "1", "--to", "2", "--redis-url", DOWN], "", "cannot reach Redis at redis://:***@127.0.0.1:1/0"),
    (["--from", "1", "--to", "2", "--redis-url", "http://x"], "", "--redis-url"),
    (["--from", "3", "--to", "2"], "", "has no shard stream and no feed counter with --from 3"),
    (["--from", "2", "--to", "3"], "not drained", "not drained: "),
    (["--from", "2", "--to", "3"], "junk counter", "holds no seq counter (an integer from 0 to 2^63-1): 'x'"),
    (["--from", "2", "--to", "3"], "not a stream", "Redis at redis://"),
]


@pytest.mark.parametrize(("options", "state", "says"), HOSTILE, ids=[f"{c[0]}-{c[1]}" for c in HOSTILE])
def test_a_hostile_reshard_is_one_error_line(
    options: list[str],
    state: str,
    says: str,
    redis_url: str,
    redis_client: redis.Redis,
    base: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if state == "no url":
        monkeypatch.delenv(REDIS_URL_ENV, raising=False)
    else:
        monkeypatch.setenv(REDIS_URL_ENV, redis_url)
    if state == "not drained":
        FeedPublisher(redis_client, base, None, 2).publish(_ticks(BTC, 1))
    if state == "junk counter":
        redis_client.set(feed_seq_key(shard_stream(base, 0, 2), ETH), "x")
    if state == "not a stream":
        redis_client.set(shard_stream(base, 0, 2), "a string")
    result = _invoke(["reshard", "--stream", base, *options])
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "embedded" not in result.stderr  # this step needs the feed's Redis: an embedded one would be empty
    assert len(errors) == 1 and says in errors[0], result.stderr
    assert PASSWORD not in result.stderr + result.stdout
    assert result.stdout == ""
