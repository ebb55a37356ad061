"""Hostile and inconsistent order intents: each rejected with the rule it broke, the rest of the stream kept."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from shadow_pipeline.domain.strategies.external.intents import Grid, check_intents
from shadow_pipeline.domain.strategies.external.plan import NEVER
from shadow_pipeline.redis_io.keys import dead_letter_stream, order_stream
from shadow_pipeline.redis_io.order_stream import load_intents

GRID = Grid("BTCUSDT", 0.1, 0.001)
T = 1_767_261_600_000_000_000
GOOD = {"action": "place", "order_id": "a", "ts_decision": str(T), "side": "buy", "price": "100.1", "qty": "0.002"}


def _place(**changes: str) -> dict[str, str]:
    return {**GOOD, **changes}


# (intents before it, the hostile intent, words of its reason)
HOSTILE: list[tuple[str, list[dict[str, str]], dict[str, str], str]] = [
    ("no action", [], {"order_id": "b", "ts_decision": str(T)}, "action '' is not one of"),
    ("unknown action", [], _place(action="amend"), "action 'amend'"),
    ("missing qty", [], {k: v for k, v in GOOD.items() if k != "qty"}, "missing qty"),
    ("unknown field", [], _place(prices="1"), "unknown field prices"),
    ("NaN price", [], _place(price="NaN"), "not a plain positive decimal"),
    ("inf qty", [], _place(qty="inf"), "not a plain positive decimal"),
    ("exponent", [], _place(price="1e2"), "not a plain positive decimal"),
    ("negative", [], _place(price="-100.1"), "not a plain positive decimal"),
    ("zero qty", [], _place(qty="0"), "out of range"),
    ("huge price", [], _place(price="99999999999999999999"), "out of range"),
    ("price off the grid", [], _place(price="100.15"), "off the grid (tick_size 0.1)"),
    ("qty off the lot step", [], _place(qty="0.0015"), "off the grid (lot_step 0.001)"),
    ("price off the grid at BTC prices", [], _place(price="61800.15"), "off the grid (tick_size 0.1)"),
    ("qty off the grid at a large size", [], _place(qty="1000.0005"), "off the grid (lot_step 0.001)"),
    ("ts far in the future", [], _place(ts_decision="4000000000000000000"), "outside the sane range"),
    ("ts before any venue", [], _place(ts_decision="1"), "outside the sane range"),
    ("bad side", [], _place(side="long"), "side 'long' is not buy or sell"),
    ("bad type", [], _place(type="stop"), "type 'stop'"),
    ("bad post_only", [], _place(post_only="yes"), "post_only 'yes'"),
    ("id with spaces", [], _place(order_id="a b"), "order_id 'a b' is not 1-64"),
    ("id too long", [], _place(order_id="x" * 65), "is not 1-64"),
    ("empty id", [], _place(order_id=""), "is not 1-64"),
    ("ts not digits", [], _place(ts_decision="12:00"), "ts_decision '12:00' is not integer nanoseconds"),
    ("ts beyond int64", [], _place(ts_decision="9" * 19), "is not integer nanoseconds"),
    ("other symbol", [], _place(symbol="ETHUSDT"), "symbol 'ETHUSDT' is not this stream's instrument"),
    ("id used twice", [GOOD], _place(ts_decision=str(T + 1)), "order id a is already used"),
    ("time went backwards", [GOOD], _place(order_id="b", ts_decision=str(T - 1)), "time went backwards"),
    (
        "cancel of an unknown id",
        [],
        {"action": "cancel", "order_id": "zz", "ts_decision": str(T)},
        "unknown order id zz",
    ),
    (
        "cancel twice",
        [GOOD, {"action": "cancel", "order_id": "a", "ts_decision": str(T)}],
        {"action": "cancel", "order_id": "a", "ts_decision": str(T)},
        "already cancelled or replaced",
    ),
    (
        "market order with a price",
        [],
        _place(type="market", post_only="0"),
        "a market order has no price",
    ),
    (
        "post-only market order",
        [],
        {k: v for k, v in _place(type="market", post_only="1").items() if k != "price"},
        "cannot be post-only",
    ),
    (
        "cancel of a market order",
        [{k: v for k, v in _place(type="market", post_only="0").items() if k != "price"}],
        {"action": "cancel", "order_id": "a", "ts_decision": str(T)},
        "is a market order",
    ),
    (
        "replace onto a used id",
        [GOOD, _place(order_id="b")],
        {
            "action": "replace",
            "order_id": "a",
            "new_order_id": "b",
            "ts_decision": str(T),
            "price": "100",
            "qty": "0.001",
        },
        "order id b is already used",
    ),
    (
        "replace that changes the side",
        [GOOD],
        {
            "action": "replace",
            "order_id": "a",
            "new_order_id": "c",
            "ts_decision": str(T),
            "price": "100",
            "qty": "0.001",
            "side": "sell",
        },
        "differs from order a's",
    ),
]


@pytest.mark.parametrize(("name", "before", "hostile", "words"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_intent_is_rejected_with_its_reason_and_the_rest_stays(
    name: str, before: list[dict[str, str]], hostile: dict[str, str], words: str
) -> None:
    after = _place(order_id="last", ts_decision=str(T + 10))
    entries = [(f"{n}-0", e) for n, e in enumerate([*before, hostile, after])]
    checked = check_intents(entries, GRID)
    [rejected] = checked.rejected
    assert rejected.entry_id == f"{len(before)}-0"
    assert words in rejected.reason, rejected.reason
    assert "last" in list(checked.plan.order_id)
    assert checked.accepted == len(before) + 1


def test_a_cancel_before_its_place_is_told_apart_from_an_unknown_id() -> None:
    cancel = {"action": "cancel", "order_id": "a", "ts_decision": str(T)}
    checked = check_intents([("1-0", cancel), ("2-0", GOOD)], GRID)
    assert [r.reason for r in checked.rejected] == ["cancel before place: order id a is placed later in the stream"]
    assert list(checked.plan.order_id) == ["a"] and int(checked.plan.cancel_ts[0]) == NEVER


def test_a_replace_cancels_the_old_order_and_places_the_new_one_on_its_side() -> None:
    replace = {
        "action": "replace",
        "order_id": "a",
        "new_order_id": "b",
        "ts_decision": str(T + 5),
        "price": "100.3",
        "qty": "0.004",
    }
    plan = check_intents([("1-0", GOOD), ("2-0", replace)], GRID).plan
    assert list(plan.order_id) == ["a", "b"]
    assert [int(t) for t in plan.cancel_ts] == [T + 5, NEVER]
    assert list(plan.side) == [0, 0] and list(plan.px) == [1001, 1003] and list(plan.qty) == [2, 4]
    assert list(plan.post_only) == [True, True]


def test_bad_bytes_in_the_stream_are_dead_lettered_once_with_the_entry_kept_byte_for_byte(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    symbol = "XRPUSDT"
    stream = order_stream(symbol)
    client.delete(stream, dead_letter_stream(stream), dead_letter_stream(stream) + ":ids")
    try:
        client.xadd(stream, {k.encode(): v.encode() for k, v in GOOD.items()})
        client.xadd(stream, {b"action": b"place", b"order_id": b"\xff\xfe", b"ts_decision": str(T).encode()})
        client.execute_command("XADD", stream, "*", "action", "cancel", "action", "cancel")
        first = load_intents(client, symbol, Grid(symbol, 0.1, 0.001))
        again = load_intents(client, symbol, Grid(symbol, 0.1, 0.001))
        assert (first.entries, len(first.checked.rejected), first.dead_lettered_now) == (3, 2, 2)
        assert (len(again.checked.rejected), again.dead_lettered_now) == (2, 0)
        letters: Any = client.xrange(dead_letter_stream(stream))
        assert [f[b"reason"] for _, f in letters] == [
            b"a field name or value is not UTF-8 text, or a field name repeats"
        ] * 2
        assert b"//4=" in letters[0][1][b"original"]  # base64 of the bad bytes, kept exactly
        assert list(first.checked.plan.order_id) == ["a"]
    finally:
        client.delete(stream, dead_letter_stream(stream), dead_letter_stream(stream) + ":ids")
        client.close()
