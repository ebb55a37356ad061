"""The sequence guard against a real Redis: exact counts whatever the seqs' values, memory bounded by open holes."""

from __future__ import annotations

import bisect
import itertools
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from shadow_pipeline.domain.market.sequence import count_by_symbol
from shadow_pipeline.ingest.consumer import IngestOptions, TickConsumer
from shadow_pipeline.ingest.guard import MAX_SEQ, GuardCounts, SequenceGuard
from shadow_pipeline.ingest.landing import LandingStore
from shadow_pipeline.redis_io.keys import guard_group_keys

SYMBOL = "BTCUSDT"
MB = 1 << 20


class Model:
    """The guard's definitions on a Python set: what each batch must count (no cap on holes)."""

    def __init__(self) -> None:
        self.high: int | None = None
        self.base = 0
        self.seen: set[int] = set()
        self.missing = 0

    def check(self, seqs: list[int], redelivered: bool = False) -> GuardCounts:
        gaps = dups = late = 0
        for s in seqs:
            if s in self.seen:
                dups += not redelivered
                continue
            self.seen.add(s)
            if self.high is None:
                self.high = self.base = s
            elif s < self.high:
                late += 1
                self.missing -= s >= self.base  # below the baseline: late, but never missing
            else:
                gaps += s - self.high - 1
                self.missing += s - self.high - 1
                self.high = s
        return GuardCounts(gaps, dups, late, self.missing)


def _check(guard: SequenceGuard, seqs: list[int], redelivered: bool = False, symbol: str = SYMBOL) -> GuardCounts:
    found = guard.check(np.array([symbol] * len(seqs), dtype=object), np.array(seqs, dtype=np.int64), redelivered)
    return found[symbol]


def _used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


@pytest.fixture
def guard(redis_client: redis.Redis, stream: str) -> SequenceGuard:
    return SequenceGuard(redis_client, stream, "shadow")


def test_huge_seqs_cost_no_memory_and_count_exactly(
    redis_client: redis.Redis, guard: SequenceGuard, stream: str
) -> None:
    before = _used_memory(redis_client)
    assert _check(guard, [1, 2**32 - 1]) == GuardCounts(2**32 - 3, 0, 0, 2**32 - 3)
    assert _check(guard, [MAX_SEQ]) == GuardCounts(MAX_SEQ - 2**32, 0, 0, MAX_SEQ - 3)
    assert _check(guard, [MAX_SEQ, 2**32 - 1, 2**32]) == GuardCounts(0, 2, 1, MAX_SEQ - 4)
    assert _check(guard, [2**32], symbol="ETHUSDT") == GuardCounts(0, 0, 0, 0)  # baselines, far up
    assert _check(guard, [MAX_SEQ], symbol="SOLUSDT") == GuardCounts(0, 0, 0, 0)
    after = _used_memory(redis_client)
    assert after - before < 10 * MB, f"used_memory grew by {(after - before) / MB:.1f} MB"
    state, holes, *_ = guard.keys(SYMBOL)
    assert redis_client.hgetall(state) == {
        "high": str(MAX_SEQ),
        "base": "1",
        "missing": str(MAX_SEQ - 4),
        "forgotten": "0",
    }
    assert redis_client.zcard(holes) == 3  # below the baseline, 2 .. 2**32-2 and 2**32+1 .. 2**63-2
    print(f"\nguard, seqs 1, 2**32-1, 2**63-1: used_memory {before / MB:.2f} MB -> {after / MB:.2f} MB")


def test_huge_seqs_through_the_consumer_cost_no_memory(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    top = 8_999_999_999_999_999_999  # the largest seq the tick schema takes (docs/tick-schema.md)
    quote = {"symbol": SYMBOL, "bid": "100.0", "ask": "100.1", "bid_qty": "1", "ask_qty": "1"}
    trade = {"last_px": "", "last_qty": "0", "last_side": ""}
    before = _used_memory(redis_client)
    for i, seq in enumerate([1, 2, 2**32 - 1, 2**32 + 1, top, top - 5, top]):
        ts = (1_723_161_600_000 + i) * 1_000_000
        fields: dict[Any, Any] = {**quote, **trade, "seq": str(seq), "ts_server": str(ts), "ts_local": str(ts)}
        redis_client.xadd(stream, fields)
    report = TickConsumer(LandingStore(tmp_path), IngestOptions(stream=stream), redis_url).drain()
    after = _used_memory(redis_client)
    assert report.dead_letters == 0 and report.landed_total == 7
    assert report.gaps == {SYMBOL: (2**32 - 4) + 1 + (top - 2**32 - 2)}
    assert report.duplicates == {SYMBOL: 1} and report.out_of_order == {SYMBOL: 1}
    assert after - before < 10 * MB, f"used_memory grew by {(after - before) / MB:.1f} MB"
    print(f"\nconsumer, seqs up to {top}: used_memory {before / MB:.2f} MB -> {after / MB:.2f} MB")


def test_exact_above_two_to_the_53(guard: SequenceGuard) -> None:
    big = 2**53  # doubles no longer tell big + 1 from big here
    assert _check(guard, [big - 1, big + 1, big + 3]) == GuardCounts(2, 0, 0, 2)
    assert _check(guard, [big, big + 2, big + 2, big + 1]) == GuardCounts(0, 2, 2, 0)
    top = MAX_SEQ
    assert _check(guard, [top - 1, top - 3, top]) == GuardCounts(top - big - 5, 0, 1, top - big - 6)


def test_a_huge_jump_is_one_gap_and_one_hole_and_counts_stay_exact_across_it(
    redis_client: redis.Redis, guard: SequenceGuard
) -> None:
    jump = 2**40
    assert _check(guard, [1, 2, 3, 4, 5]) == GuardCounts(0, 0, 0, 0)
    assert _check(guard, [5 + jump]) == GuardCounts(jump - 1, 0, 0, jump - 1)
    assert redis_client.zcard(guard.keys(SYMBOL)[1]) == 2  # below the baseline, and 6 .. jump+4
    # a duplicate below the jump, a late one inside it (twice), the next seq after it, a late one just below it
    assert _check(guard, [3, 100, 100, jump + 6, jump + 4]) == GuardCounts(0, 2, 2, jump - 3)
    assert _check(guard, list(range(6, 100)), redelivered=True) == GuardCounts(0, 0, 94, jump - 97)
    assert _check(guard, [jump + 6, jump + 5, jump + 7]) == GuardCounts(0, 2, 0, jump - 97)
    assert redis_client.zcard(guard.keys(SYMBOL)[1]) == 2  # below the baseline, and 101 .. jump+3
    assert _check(guard, [jump + 5]) == GuardCounts(0, 1, 0, jump - 97)


def test_below_the_baseline_is_late_once_then_duplicate_and_never_missing(guard: SequenceGuard) -> None:
    assert _check(guard, [1000, 1002]) == GuardCounts(1, 0, 0, 1)
    assert _check(guard, [7, 7, 0, 999, 1001]) == GuardCounts(0, 1, 4, 0)


def test_runs_arrive_in_one_token_and_count_like_single_seqs(guard: SequenceGuard) -> None:
    model = Model()
    rng = np.random.default_rng(3)
    seqs: np.ndarray = np.arange(1, 20_001)
    seqs = seqs[rng.random(len(seqs)) > 0.01]  # a lossy feed, then a replay of a stretch of it, then more
    batches = [seqs[:8000], seqs[2000:6000], seqs[8000:], np.arange(100, 3000)]
    for batch in batches:
        assert _check(guard, batch.tolist()) == model.check(batch.tolist())
    assert _check(guard, list(range(1, 20_001)), redelivered=True) == model.check(
        list(range(1, 20_001)), redelivered=True
    )
    assert model.missing == 0


_SPECIAL = [0, 1, 2, 10**9 - 1, 10**9, 10**9 + 1, 2**32 - 1, 2**53 - 1, 2**53, 2**53 + 1, 10**18, MAX_SEQ - 1, MAX_SEQ]
_anchor = st.one_of(st.sampled_from(_SPECIAL), st.integers(0, MAX_SEQ))


def _assert_holes_are_exactly_the_unseen(client: redis.Redis, guard: SequenceGuard, model: Model) -> None:
    """The holes are disjoint, none empty, in order, and hold exactly the seqs up to high that never arrived."""
    assert model.high is not None
    members: list[str] = client.zrange(guard.keys(SYMBOL)[1], 0, -1)  # type: ignore[assignment]
    bounds = [(-1 if lo.startswith("-") else int(lo), int(hi)) for lo, hi in (m.split(":") for m in members)]
    assert all(hi - lo >= 2 for lo, hi in bounds)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(bounds))
    assert sum(hi - lo - 1 for lo, hi in bounds) == model.high + 1 - len(model.seen)
    starts = [lo for lo, _ in bounds]
    for s in model.seen:  # an arrived seq is in no hole
        at = bisect.bisect_left(starts, s) - 1
        assert at < 0 or bounds[at][1] <= s


@st.composite
def _batches(draw: st.DrawFn) -> list[tuple[list[int], bool]]:
    """Batches of arrivals around a few anchors (huge values among them): runs, jumps, repeats, reorders."""
    anchors = draw(st.lists(_anchor, min_size=1, max_size=3))
    pieces = st.tuples(st.sampled_from(range(len(anchors))), st.integers(-40, 40), st.integers(1, 12))
    out = []
    for _ in range(draw(st.integers(1, 6))):
        seqs: list[int] = []
        for which, offset, length in draw(st.lists(pieces, min_size=1, max_size=12)):
            start = min(max(anchors[which] + offset, 0), MAX_SEQ)
            seqs += range(start, min(start + length, MAX_SEQ + 1))
        if draw(st.booleans()):
            seqs = draw(st.permutations(seqs))
        out.append((seqs, draw(st.booleans()) and draw(st.booleans())))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=_batches())
@example(batches=[([5, 3, 4, 9, 9, 1], False), ([2, 7, 8, 6], True)])
@example(batches=[([MAX_SEQ], False), ([MAX_SEQ - 1, 0, MAX_SEQ], False)])
@example(batches=[([2**53 + 1, 2**53 + 3], False), ([2**53 + 2, 2**53 + 2, 2**53], False)])
@example(batches=[([5, 10**9 + 5, 10**9 - 1, 10**9, 2 * 10**9 + 1], False), ([2 * 10**9 - 1, 10**9 + 1], False)])
@example(batches=[([5, 10**9, 10**9 - 1, 2 * 10**9 + 1, 2 * 10**9], False), ([6, 10**9 - 2, 2 * 10**9 - 1], True)])
def test_counts_equal_the_model_and_the_domain_accounting(
    redis_client: redis.Redis, stream: str, batches: list[tuple[list[int], bool]]
) -> None:
    guard = SequenceGuard(redis_client, f"{stream}:{uuid.uuid4().hex[:8]}", "shadow")
    model = Model()
    found = []
    for seqs, redelivered in batches:
        found.append(_check(guard, seqs, redelivered))
        assert found[-1] == model.check(seqs, redelivered)
    _assert_holes_are_exactly_the_unseen(redis_client, guard, model)
    if not any(redelivered for _, redelivered in batches):  # then also the domain's own accounting
        arrivals = [s for seqs, _ in batches for s in seqs]
        domain = count_by_symbol(pd.Series([SYMBOL] * len(arrivals)), pd.Series(arrivals), {SYMBOL: arrivals[0]})
        assert sum(c.duplicates for c in found) == domain[SYMBOL].duplicates
        assert sum(c.out_of_order for c in found) == domain[SYMBOL].late
        assert found[-1].missing == domain[SYMBOL].missing


def test_two_consumers_share_the_state(redis_url: str, stream: str) -> None:
    first = SequenceGuard(redis.Redis.from_url(redis_url, decode_responses=True), stream, "shadow")
    second = SequenceGuard(redis.Redis.from_url(redis_url, decode_responses=True), stream, "shadow")
    rng = np.random.default_rng(8)
    seqs: np.ndarray = np.arange(1, 30_001)
    seqs = seqs[rng.random(len(seqs)) > 0.02]
    seqs = np.insert(seqs, rng.integers(0, len(seqs), 200), rng.choice(seqs, 200))  # duplicates
    swaps = rng.integers(0, len(seqs) - 40, 400)
    for i in swaps:  # reordered by up to 40 places
        j = i + rng.integers(1, 40)
        seqs[i], seqs[j] = seqs[j], seqs[i]
    seqs = np.concatenate([seqs, [2**62 + 7], 2**62 + np.arange(10, 2010)])  # a jump far away, and on from there
    model = Model()
    totals = {"gaps": 0, "duplicates": 0, "out_of_order": 0}
    expected = dict(totals)
    bounds = np.sort(rng.choice(np.arange(1, len(seqs)), 40, replace=False))
    for n, batch in enumerate(np.split(seqs, bounds)):
        got = (first if n % 3 else second).check(np.array([SYMBOL] * len(batch), dtype=object), batch)[SYMBOL]
        want = model.check(batch.tolist())
        assert got == want
        for name in totals:
            totals[name] += getattr(got, name)
            expected[name] += getattr(want, name)
    assert totals == expected and expected["duplicates"] >= 200 and expected["out_of_order"] > 0
    assert expected["gaps"] > 2**62 - 30_001


def test_memory_stays_bounded_by_the_cap_on_holes(redis_client: redis.Redis, stream: str) -> None:
    guard = SequenceGuard(redis_client, stream, "shadow", max_holes=500)
    model = Model()
    rng = np.random.default_rng(2)
    state, holes, *_ = guard.keys(SYMBOL)
    before = _used_memory(redis_client)
    for n in range(100):  # 200,000 seqs, 1 % lost for good: 2,000 holes opened
        batch: np.ndarray = np.arange(n * 2000 + 1, (n + 1) * 2000 + 1)
        batch = batch[rng.random(len(batch)) > 0.01]
        got = _check(guard, batch.tolist())
        assert got == model.check(batch.tolist())  # lost seqs never come: the cap changes no count
        assert redis_client.zcard(holes) <= 500
    assert int(redis_client.hget(state, "forgotten") or 0) > 1000
    assert (redis_client.memory_usage(holes) or 0) < 100_000
    assert _used_memory(redis_client) - before < 10 * MB


def test_holes_past_the_cap_are_given_up_lowest_first(redis_client: redis.Redis, stream: str) -> None:
    guard = SequenceGuard(redis_client, stream, "shadow", max_holes=2)
    state, holes, *_ = guard.keys(SYMBOL)
    # holes: below 1 (the baseline's), 2, 4, 6: the two lowest go
    assert _check(guard, [1, 3, 5, 7]) == GuardCounts(3, 0, 0, 3)
    assert redis_client.zcard(holes) == 2 and redis_client.hget(state, "forgotten") == "1"
    # 2 and 0 are given up: duplicates now, and 2 stays missing; 4 is still a hole
    assert _check(guard, [2, 0, 4]) == GuardCounts(0, 2, 1, 2)
    assert _check(guard, [6]) == GuardCounts(0, 0, 1, 1)


def test_the_bitmap_guard_state_is_taken_over_and_its_bitmap_freed(
    redis_client: redis.Redis, guard: SequenceGuard
) -> None:
    state, _, seen, *_ = guard.keys(SYMBOL)
    redis_client.hset(state, mapping={"high": "10", "missing": "2"})
    redis_client.setbit(seen, 10, 1)
    # everything up to the old high counts as arrived (the bitmap is not read): 5 is a duplicate
    assert _check(guard, [12, 5, 11]) == GuardCounts(1, 1, 1, 2)
    assert not redis_client.exists(seen)
    assert redis_client.hgetall(state) == {"high": "12", "base": "10", "missing": "2", "forgotten": "0"}


def test_negative_seqs_are_refused(guard: SequenceGuard) -> None:
    with pytest.raises(ValueError, match="outside"):
        _check(guard, [3, -1])


# -- several consumers of one group: batches checked out of the stream's order ----------------------------------

OTHER = "ETHUSDT"  # a healthy feed beside SYMBOL's: never a gap, a duplicate or a late seq, whatever the order
Batch = tuple[np.ndarray, np.ndarray, np.ndarray]  # symbols, seqs, entry ids


def _publish(client: redis.Redis, stream: str, seqs: list[int], other_first: int = 1) -> None:
    """SYMBOL's seqs in this order, each followed by the next of OTHER's: one pipeline, the ids Redis's own."""
    with client.pipeline(transaction=False) as pipe:
        for n, seq in enumerate(seqs, start=other_first):
            pipe.xadd(stream, {"symbol": SYMBOL, "seq": seq})
            pipe.xadd(stream, {"symbol": OTHER, "seq": n})
        pipe.execute()


def _read(client: redis.Redis, stream: str, consumer: str, count: int) -> Batch:
    """One XREADGROUP of new entries, as a consumer of group ``shadow`` gets it."""
    reply: Any = client.xreadgroup("shadow", consumer, {stream: ">"}, count=count)
    [[_, entries]] = reply
    ids = [entry_id for entry_id, _ in entries]
    symbols = np.array([fields["symbol"] for _, fields in entries], dtype=object)
    seqs = np.array([int(fields["seq"]) for _, fields in entries], dtype=np.int64)
    return symbols, seqs, np.array(ids, dtype=object)


def _check_batch(guard: SequenceGuard, batch: Batch, claimed: bool = False) -> dict[str, GuardCounts]:
    """A read's batch (one stretch of the stream), or, ``claimed``, entries taken over from another consumer."""
    symbols, seqs, ids = batch
    return guard.check(symbols, seqs, redelivered=claimed, entry_ids=ids, contiguous=not claimed)


def _totals(found: list[dict[str, GuardCounts]], symbol: str) -> tuple[int, int, int]:
    counts = [f[symbol] for f in found if symbol in f]
    return sum(c.gaps for c in counts), sum(c.duplicates for c in counts), sum(c.out_of_order for c in counts)


def test_a_later_batch_checked_first_waits_for_the_earlier_one(
    redis_url: str, redis_client: redis.Redis, stream: str
) -> None:
    """Consumer b's batch, later in the stream, is checked before consumer a's: it waits, counting nothing; once
    a's batch is checked, all are applied in the stream's order, and the seqs the stream really skipped (150, 250)
    are counted, once each."""
    redis_client.xgroup_create(stream, "shadow", id="0", mkstream=True)
    _publish(redis_client, stream, [s for s in range(1, 301) if s not in (150, 250)])
    first = _read(redis_client, stream, "a", 200)  # SYMBOL 1 .. 100
    second = _read(redis_client, stream, "b", 200)  # SYMBOL 101 .. 201, 150 skipped
    third = _read(redis_client, stream, "a", 1000)  # SYMBOL 202 .. 300, 250 skipped
    guard_a = SequenceGuard(redis.Redis.from_url(redis_url, decode_responses=True), stream, "shadow")
    guard_b = SequenceGuard(redis.Redis.from_url(redis_url, decode_responses=True), stream, "shadow")
    nothing = GuardCounts(0, 0, 0, 0)
    assert _check_batch(guard_b, second) == {SYMBOL: nothing, OTHER: nothing}
    assert _check_batch(guard_a, third) == {SYMBOL: nothing, OTHER: nothing}
    state, holes, _, waiting = guard_a.keys(SYMBOL)
    assert redis_client.zcard(waiting) == 2 and not redis_client.exists(state)
    assert guard_a.confirm() == {SYMBOL: nothing, OTHER: nothing}  # a's first batch is still unchecked
    assert _check_batch(guard_a, first) == {SYMBOL: GuardCounts(2, 0, 0, 2), OTHER: nothing}
    assert guard_a.confirm() == {}  # nothing waits
    assert redis_client.hget(state, "base") == "1" and redis_client.zcard(waiting) == 0
    below = "-" * 19  # seq 0, under the baseline 1
    assert redis_client.zrange(holes, 0, -1) == [
        f"{below}:{1:019d}",
        f"{149:019d}:{151:019d}",
        f"{249:019d}:{251:019d}",
    ]
    # the late arrival of 150 is late and no longer missing
    redis_client.xadd(stream, {"symbol": SYMBOL, "seq": 150})
    assert _check_batch(guard_b, _read(redis_client, stream, "b", 10))[SYMBOL] == GuardCounts(0, 0, 1, 1)


def test_a_seq_that_came_late_in_the_stream_is_a_gap_and_late_whoever_checks_first(
    redis_client: redis.Redis, stream: str
) -> None:
    """In the stream 7 comes after 9 (a real reorder, in b's batch): skipped, then late, as one consumer would
    count it, once a's earlier batch is checked."""
    redis_client.xgroup_create(stream, "shadow", id="0", mkstream=True)
    _publish(redis_client, stream, [1, 2, 3, 4, 5, 6, 8, 9, 7, 10])
    first, second = _read(redis_client, stream, "a", 10), _read(redis_client, stream, "b", 100)
    guard = SequenceGuard(redis_client, stream, "shadow")
    assert _check_batch(guard, second)[SYMBOL] == GuardCounts(0, 0, 0, 0)
    assert _check_batch(guard, first)[SYMBOL] == GuardCounts(1, 0, 1, 0)


def test_entries_claimed_from_a_dead_consumer_are_applied_where_they_are_in_the_stream(
    redis_client: redis.Redis, stream: str
) -> None:
    """Consumers a and b took turns reading; a died before checking its two batches, b checked its own. c claims
    a's entries, which have b's between them: b's batches wait, the claimed entries are checked one by one, and
    then everything is applied in the stream's order: a healthy feed counts nothing."""
    redis_client.xgroup_create(stream, "shadow", id="0", mkstream=True)
    _publish(redis_client, stream, [1, 2, 3, 4, 5, 6])
    dead = [
        _read(redis_client, stream, "a", 2),
        _read(redis_client, stream, "b", 2),
        _read(redis_client, stream, "a", 2),
    ]
    guard = SequenceGuard(redis_client, stream, "shadow")
    nothing = GuardCounts(0, 0, 0, 0)
    assert _check_batch(guard, dead[1]) == {SYMBOL: nothing, OTHER: nothing}
    assert _check_batch(guard, _read(redis_client, stream, "b", 10)) == {SYMBOL: nothing, OTHER: nothing}
    claimed: Any = redis_client.xclaim(stream, "shadow", "c", 0, dead[0][2].tolist() + dead[2][2].tolist())
    ids = [entry_id for entry_id, _ in claimed]
    symbols = np.array([fields["symbol"] for _, fields in claimed], dtype=object)
    seqs = np.array([int(fields["seq"]) for _, fields in claimed], dtype=np.int64)
    batch = (symbols, seqs, np.array(ids, dtype=object))
    assert _check_batch(guard, batch, claimed=True) == {SYMBOL: nothing, OTHER: nothing}
    assert guard.confirm() == {}  # all applied: the claimed entries were the last unchecked
    assert redis_client.hget(guard.keys(SYMBOL)[0], "high") == "6"
    assert not redis_client.exists(guard.keys(SYMBOL)[3], guard.keys(OTHER)[3])  # nothing waits


def test_the_checked_ranges_stay_few_while_one_old_entry_stays_pending(redis_client: redis.Redis, stream: str) -> None:
    """A serving consumer's reorder buffer may hold an illiquid symbol's tick for long, its entry pending: the
    ranges of the batches checked and acked after it are dropped all the same."""
    redis_client.xgroup_create(stream, "shadow", id="0", mkstream=True)
    guard = SequenceGuard(redis_client, stream, "shadow")
    _publish(redis_client, stream, [1])
    _check_batch(guard, _read(redis_client, stream, "a", 2))  # held: never acked
    for n in range(200):
        _publish(redis_client, stream, [2 + n], other_first=2 + n)
        batch = _read(redis_client, stream, "a", 2)
        assert _check_batch(guard, batch)[SYMBOL] == GuardCounts(0, 0, 0, 0)
        redis_client.xack(stream, "shadow", *batch[2].tolist())
    assert redis_client.zcard(guard_group_keys(stream, "shadow")[0]) <= 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    blocks=st.lists(st.lists(st.integers(0, 30), min_size=1, max_size=10), min_size=1, max_size=6),
    data=st.data(),
)
@example(blocks=[[1, 2, 3], [6, 5], [2, 8, 7, 10]], data=None)
@example(blocks=[[5], [10], [3]], data=None)
@example(blocks=[[10, 11], [5, 12]], data=None)
def test_batches_checked_in_any_order_count_as_one_consumer_in_the_streams_order(
    redis_client: redis.Redis, stream: str, blocks: list[list[int]], data: Any
) -> None:
    """SYMBOL's seqs (any: gaps, duplicates and reorders, within and across batches) are delivered one block per
    XREADGROUP and checked in any order; some are acked on the way, some checked twice (a re-check after a lost
    connection), some taken over by a claim (each entry on its own): once all are checked, the gaps,
    duplicates, late seqs and missing are those of the in-order model, and OTHER's healthy feed counts nothing."""
    key = f"{stream}:{uuid.uuid4().hex[:8]}"
    redis_client.xgroup_create(key, "shadow", id="0", mkstream=True)
    for n, block in enumerate(blocks):
        _publish(redis_client, key, block, other_first=1 + sum(map(len, blocks[:n])))
    batches = [_read(redis_client, key, f"c{n % 3}", 2 * len(block)) for n, block in enumerate(blocks)]
    flags = st.lists(st.booleans(), min_size=len(batches), max_size=len(batches))
    order = list(range(len(batches))) if data is None else data.draw(st.permutations(range(len(batches))))
    acked, again, claimed = ([False] * len(batches),) * 3 if data is None else (data.draw(flags) for _ in range(3))
    guard = SequenceGuard(redis_client, key, "shadow")
    found = []
    for n in order:
        found.append(_check_batch(guard, batches[n], claimed=claimed[n]))
        if again[n]:
            symbols, seqs, ids = batches[n]
            found.append(guard.check(symbols, seqs, redelivered=True, entry_ids=ids, contiguous=not claimed[n]))
        if acked[n]:
            redis_client.xack(key, "shadow", *batches[n][2].tolist())
    found.append(guard.confirm())
    model, want = Model(), [0, 0, 0]
    for block, redelivered in zip(blocks, claimed, strict=True):
        for seq in block:
            counts = model.check([seq], redelivered)
            want = [want[0] + counts.gaps, want[1] + counts.duplicates, want[2] + counts.out_of_order]
    assert _totals(found, SYMBOL) == tuple(want)
    assert [f[SYMBOL].missing for f in found if SYMBOL in f][-1] == model.missing
    assert _totals(found, OTHER) == (0, 0, 0)
    _assert_holes_are_exactly_the_unseen(redis_client, guard, model)
    assert not redis_client.exists(guard.keys(SYMBOL)[3], guard_group_keys(key, "shadow")[1])  # nothing waits
    for name in redis_client.scan_iter(match=f"shadow:guard:{{{key}}}*"):
        redis_client.delete(name)
    redis_client.delete(key)


def test_two_consumers_draining_one_stream_count_no_gap_on_a_healthy_feed(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path
) -> None:
    """Two consumers of one group in small batches, each checking its own as it goes: on a feed without a gap
    neither reports one, nor a late seq (each would, a batch at a time, when a later batch was checked first)."""
    quote = {"bid": "100.0", "ask": "100.1", "bid_qty": "1", "ask_qty": "1", "last_px": "", "last_qty": "0"}
    with redis_client.pipeline(transaction=False) as pipe:
        for seq in range(1, 20_001):
            ts = str((1_723_161_600_000 + seq) * 1_000_000)
            for symbol in (SYMBOL, OTHER):
                fields = {**quote, "last_side": "", "symbol": symbol, "seq": seq, "ts_server": ts, "ts_local": ts}
                pipe.xadd(stream, fields)  # type: ignore[arg-type]
        pipe.execute()
    landing = LandingStore(tmp_path)

    def drain(name: str) -> Any:
        return TickConsumer(landing, IngestOptions(stream=stream, consumer=name, batch=250), redis_url).drain()

    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(drain, ["a", "b"]))
    assert sum(r.landed_total for r in reports) == 40_000 and all(r.read > 0 for r in reports)
    assert [(r.gaps, r.out_of_order, r.duplicates) for r in reports] == [({}, {}, {})] * 2
    assert redis_client.hget(SequenceGuard(redis_client, stream, "shadow").keys(SYMBOL)[0], "missing") == "0"
