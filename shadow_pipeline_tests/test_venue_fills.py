"""The paper venue's fills published to ``dryrun:fills:{symbol}`` on a real Redis: read back as the dry-run reads
a bot's fills, and appended once per (order_id, ts) however often the venue is rerun."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pandas as pd
import pytest
import redis

from shadow_pipeline.redis_io.dryrun_fills import read_fills
from shadow_pipeline.redis_io.keys import append_index, fills_stream
from shadow_pipeline.redis_io.streams import read_entries
from shadow_pipeline.redis_io.venue_fills import publish_fills

T0 = 1_723_161_255_000_000_000


@pytest.fixture
def symbol(redis_client: redis.Redis) -> Iterator[str]:
    """A symbol of this test alone, its fills stream and index deleted afterwards (tests may share a Redis)."""
    name = f"VENUETEST{uuid.uuid4().hex[:8].upper()}"
    yield name
    redis_client.delete(fills_stream(name), append_index(fills_stream(name)))


def fills(n: int, first: int = 0) -> pd.DataFrame:
    """``n`` fills of orders ``o-<first>`` .., a ms apart, alternating maker buys and taker sells."""
    k = pd.RangeIndex(first, first + n)
    maker = k % 2 == 0
    price = 100.0 + 0.1 * (k % 7)  # not all exact in binary: the text must round-trip the float
    qty = 0.1 * (1 + k % 3)
    return pd.DataFrame(
        {
            "ts": T0 + k * 1_000_000,
            "side": ["buy" if m else "sell" for m in maker],
            "price": price,
            "qty": qty,
            "is_maker": maker,
            "fee": price * qty * [-0.0001 if m else 0.0005 for m in maker],
            "order_id": [f"o-{i}" for i in k],
        }
    )


def test_fills_read_back_as_the_dry_run_reads_them(redis_client: redis.Redis, symbol: str) -> None:
    sent = fills(3)
    assert publish_fills(redis_client, symbol, sent) == 3
    got = read_fills(redis_client, symbol, T0, T0 + 10**9)
    columns = ["ts", "side", "price", "qty", "is_maker", "fee"]
    pd.testing.assert_frame_equal(got[columns], sent[columns], check_exact=True)
    entries = read_entries(redis_client, fills_stream(symbol))
    assert [fields["order_id"] for _, fields in entries] == ["o-0", "o-1", "o-2"]
    assert [fields["is_maker"] for _, fields in entries] == ["1", "0", "1"]


def test_a_rerun_adds_only_fills_not_published_yet(redis_client: redis.Redis, symbol: str) -> None:
    assert publish_fills(redis_client, symbol, fills(2500)) == 2500  # more than one append batch
    assert publish_fills(redis_client, symbol, fills(2500)) == 0
    assert redis_client.xlen(fills_stream(symbol)) == 2500
    # a rerun over a longer stretch: the overlap is skipped, the rest appended
    assert publish_fills(redis_client, symbol, fills(1000, first=2000)) == 500
    # the same order filled at another time is another fill
    again = fills(1).assign(ts=T0 + 7)
    assert publish_fills(redis_client, symbol, again) == 1
    assert redis_client.xlen(fills_stream(symbol)) == 3001


def test_a_table_without_the_fields_is_refused(redis_client: redis.Redis, symbol: str) -> None:
    with pytest.raises(ValueError, match="order_id"):
        publish_fills(redis_client, symbol, fills(1).drop(columns="order_id"))
    assert not redis_client.exists(fills_stream(symbol))
