"""Pure functions of ingest: reorder buffer, partition quality, closed windows; worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shadow_pipeline.domain.market.quality import assess, missing_seqs, normalize
from shadow_pipeline.domain.market.reorder import ReorderBuffer
from shadow_pipeline.domain.market.ticks import TYPED_COLUMNS
from shadow_pipeline.domain.market.windows import HOUR_NS, closed_hours, hour_keys

MS = 1_000_000
T0 = 1_723_161_600_000_000_000  # 2024-08-09 00:00 UTC


def ticks(seqs: list[int], ts_ms: list[int], symbol: str = "BTCUSDT") -> pd.DataFrame:
    n = len(seqs)
    ts = T0 + np.asarray(ts_ms, dtype=np.int64) * MS
    frame = pd.DataFrame(
        {
            "symbol": [symbol] * n,
            "seq": seqs,
            "ts_server": ts,
            "ts_local": ts + 3 * MS,
            "bid": 100.0,
            "ask": 100.5,
            "bid_qty": 1.0,
            "ask_qty": 1.0,
            "last_px": np.nan,
            "last_qty": 0.0,
            "last_side": "",
            "is_trade": False,
        }
    )
    return frame.astype(TYPED_COLUMNS)


def test_watermark_releases_only_ticks_older_than_newest_minus_40ms() -> None:
    buffer = ReorderBuffer(watermark_ns=40 * MS, capacity=100)
    first = buffer.push(ticks([1, 2, 3], [0, 10, 50]))
    assert first.released["seq"].tolist() == [1]  # 0 < 50 - 40; 10 is not older than 10
    late = buffer.push(ticks([5, 4], [100, 45]))  # seq 4 arrives after seq 5 but is older: put back in order
    assert late.released["seq"].tolist() == [2, 4, 3]
    assert late.reordered == {"BTCUSDT": 1}
    assert buffer.flush()["seq"].tolist() == [5]


def test_overflow_drops_the_oldest_and_counts_them() -> None:
    buffer = ReorderBuffer(watermark_ns=40 * MS, capacity=3)
    out = buffer.push(ticks([1, 2, 3, 4, 5], [4, 3, 2, 1, 0]))
    assert out.dropped["seq"].tolist() == [5, 4]  # oldest by exchange time
    assert len(buffer) == 3 and out.released.empty


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 500), min_size=1, max_size=200), st.integers(1, 50), st.integers(1, 7))
def test_buffer_conserves_ticks_and_stays_bounded(ts_ms: list[int], capacity: int, batches: int) -> None:
    frame = ticks(list(range(1, len(ts_ms) + 1)), ts_ms)
    buffer = ReorderBuffer(watermark_ns=40 * MS, capacity=capacity)
    out_released, out_dropped = [], []
    for part in np.array_split(np.arange(len(frame)), batches):
        release = buffer.push(frame.take(part).reset_index(drop=True))
        assert len(buffer) <= capacity
        out_released.append(release.released)
        out_dropped.append(release.dropped)
    out_released.append(buffer.flush())
    released = pd.concat(out_released)
    dropped = pd.concat(out_dropped)
    assert sorted([*released["seq"], *dropped["seq"]]) == list(range(1, len(ts_ms) + 1))


Row = tuple[str, int, int]  # symbol, seq, ts in ms


def _released_by_hand(
    batches: list[list[Row]], watermark_ms: int, capacity: int
) -> tuple[list[list[int]], list[list[int]], list[dict[str, int]]]:
    """The buffer's rule written out row by row: per push, the seqs released in (ts, seq) order, the seqs dropped by
    overflow (per symbol, all but the newest ``capacity`` waiting by (ts, arrival), oldest first) and the late
    arrivals per symbol (older than the newest of their symbol seen before them)."""
    newest: dict[str, int] = {}
    held: list[Row] = []  # in arrival order
    released, dropped, late = [], [], []
    for batch in batches:
        counts: dict[str, int] = {}
        for symbol, _, ts in batch:
            if symbol in newest and ts < newest[symbol]:
                counts[symbol] = counts.get(symbol, 0) + 1
            newest[symbol] = max(newest.get(symbol, ts), ts)
        held += batch
        due = [row for row in held if row[2] < newest[row[0]] - watermark_ms]
        held = [row for row in held if row not in due]
        over: list[Row] = []
        for symbol in {row[0] for row in held}:
            waiting = sorted((row for row in held if row[0] == symbol), key=lambda row: (row[2], held.index(row)))
            over += waiting[: max(0, len(waiting) - capacity)]
        held = [row for row in held if row not in over]
        released.append([seq for _, seq, _ in sorted(due, key=lambda row: (row[2], row[1]))])
        dropped.append([seq for _, seq, _ in sorted(over, key=lambda row: (row[2], row[1]))])
        late.append(counts)
    return released, dropped, late


@settings(max_examples=120, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]), st.integers(0, 300)), max_size=150
    ),
    st.integers(1, 6),
    st.sampled_from([1, 3, 10, 10**6]),
)
def test_buffer_with_several_symbols_releases_and_drops_what_the_rule_written_out_does(
    rows: list[tuple[str, int]], batches: int, capacity: int
) -> None:
    """Symbols appear in any batch (a symbol first seen late gets its code then), interleaved and late, and each
    overflows its own capacity."""
    numbered = [(symbol, seq, ts) for seq, (symbol, ts) in enumerate(rows, start=1)]
    parts = [list(part) for part in np.array_split(np.arange(len(numbered)), batches)]
    chunks = [[numbered[i] for i in part] for part in parts]
    expected, expected_dropped, expected_late = _released_by_hand(chunks, 40, capacity)
    buffer = ReorderBuffer(watermark_ns=40 * MS, capacity=capacity)
    for chunk, want, want_dropped, want_late in zip(chunks, expected, expected_dropped, expected_late, strict=True):
        frame = pd.concat(
            [ticks([seq], [ts], symbol) for symbol, seq, ts in chunk] or [ticks([], [])], ignore_index=True
        )
        release = buffer.push(frame)
        assert release.released["seq"].tolist() == want
        assert release.dropped["seq"].tolist() == want_dropped
        assert release.reordered == want_late
    assert len(buffer) + sum(map(len, expected)) + sum(map(len, expected_dropped)) == len(numbered)


def test_assess_counts_each_fault_by_hand() -> None:
    # Arrivals: 1, 2, 2 (duplicate), 5 (3 and 4 skipped), 3 (late: fills a gap), 6 at an older time (reordered).
    received = ticks([1, 2, 2, 5, 3, 6], [0, 1, 1, 5, 3, 4])
    quality = assess(received, drops=2, dead_letters=1)
    assert quality.rows_received == 6 and quality.rows == 5
    assert quality.duplicates == 1
    assert quality.out_of_order == 1
    assert quality.gaps == 1  # seq 4 never came
    assert quality.reordered == 2  # seq 3 (t=3 after t=5) and seq 6 (t=4 after t=5)
    assert quality.reordered_share == pytest.approx(2 / 6)
    assert (quality.drops, quality.dead_letters) == (2, 1)
    normal = normalize(received)
    assert normal["seq"].tolist() == [1, 2, 3, 6, 5]  # by exchange time
    assert normal["ts_server"].is_monotonic_increasing


def test_normalize_keeps_what_ingest_adds_with_its_types() -> None:
    received = ticks([2, 1, 2], [1, 0, 1])
    received.insert(0, "entry_id", pd.Series(["5-0", "6-0", "7-0"], dtype=object))
    received.insert(list(received.columns).index("ts_local") + 1, "ts_broker", pd.Series([5, 6, 7]) * MS)
    normal = normalize(received)
    assert normal["entry_id"].tolist() == ["6-0", "5-0"]  # seq 1 first by exchange time; seq 2's first arrival
    assert normal["ts_broker"].dtype == np.int64 and normal["ts_broker"].tolist() == [6 * MS, 5 * MS]
    assert list(normal.columns) == list(received.columns)


def test_seqs_swapped_across_an_hour_boundary_are_not_gaps() -> None:
    # Seq 11 has an exchange time in the next hour although seq 12 does not.
    this_hour = ticks([10, 12, 13], [1, 2, 3])
    quality = assess(this_hour, previous_seqs=np.array([8, 9]), next_seqs=np.array([11, 14]))
    assert quality.gaps == 0
    assert assess(this_hour, previous_seqs=np.array([7])).gaps == 3  # 8, 9 and 11 are missing everywhere


def test_missing_seqs_range_is_half_open() -> None:
    assert missing_seqs(np.array([3, 5]), after=1, through=5) == 2  # 2 and 4
    assert missing_seqs(np.array([]), after=5, through=5) == 0


def test_hour_windows_close_by_event_time_plus_watermark() -> None:
    hour = str(hour_keys(np.array([T0]))[0])
    assert hour == "2024-08-09-00:00"
    assert closed_hours({hour}, T0 + HOUR_NS + 39 * MS, 40 * MS) == set()
    assert closed_hours({hour}, T0 + HOUR_NS + 40 * MS, 40 * MS) == {hour}
