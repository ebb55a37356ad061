"""Tick parsing: valid entries round-trip exactly; every broken rule is rejected with its reason."""

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shadow_pipeline.domain.market.ticks import FIELDS, MAX_UINT, MalformedTick, parse_entries, parse_entry

prices = st.decimals(min_value="0.01", max_value="100000", places=2, allow_nan=False, allow_infinity=False)
sizes = st.decimals(min_value="0.001", max_value="1000", places=3, allow_nan=False, allow_infinity=False)
times = st.integers(min_value=1_600_000_000_000_000_000, max_value=1_750_000_000_000_000_000)  # 2020-09 .. 2025-06


@st.composite
def valid_entries(draw: st.DrawFn) -> dict[str, str]:
    bid = draw(prices)
    ask = bid + draw(st.decimals(min_value="0.01", max_value="50", places=2))
    trade = draw(st.booleans())
    return {
        "symbol": draw(st.from_regex(r"[A-Z0-9]{3,12}", fullmatch=True)),
        "seq": str(draw(st.integers(1, 2**62))),
        "ts_server": str(draw(times)),
        "ts_local": str(draw(times)),
        "bid": str(bid),
        "ask": str(ask),
        "bid_qty": str(draw(sizes)),
        "ask_qty": str(draw(sizes)),
        "last_px": str(draw(st.sampled_from([bid, ask]))) if trade else "",
        "last_qty": str(draw(sizes)) if trade else "0",
        "last_side": draw(st.sampled_from(["buy", "sell"])) if trade else "",
    }


@given(valid_entries())
def test_valid_entries_parse_exactly(entry: dict[str, str]) -> None:
    row = parse_entry(entry)
    assert row["seq"] == int(entry["seq"])
    assert row["ts_server"] == int(entry["ts_server"])  # exact: nanoseconds must not pass through float
    assert row["bid"] == float(entry["bid"]) and row["ask"] == float(entry["ask"])
    assert row["is_trade"] == (entry["last_side"] != "")
    if row["is_trade"]:
        assert row["last_px"] == float(entry["last_px"]) and row["last_qty"] == float(entry["last_qty"])
    else:
        assert row["last_qty"] == 0.0


def _corrupt(entry: dict[str, str], how: str, data: st.DataObject) -> tuple[dict[str, Any], str]:
    bad = dict(entry)
    if how == "missing":
        name = data.draw(st.sampled_from(FIELDS))
        del bad[name]
        return bad, f"missing field: {name}"
    if how == "non-numeric":
        name = data.draw(st.sampled_from(["bid", "ask", "bid_qty", "ask_qty"]))
        bad[name] = data.draw(st.sampled_from(["abc", "1.2.3", "", "nan", "inf", "0x10"]))
        return bad, f"non-numeric {name}"
    if how == "non-positive":
        name = data.draw(st.sampled_from(["bid", "bid_qty", "ask_qty"]))
        bad[name] = data.draw(st.sampled_from(["0", "-1", "-0.5", "0.0"]))
        return bad, f"non-positive {name}"
    if how == "crossed":
        bad["bid"], bad["ask"] = entry["ask"], entry["bid"]
        return bad, "crossed book: bid >= ask"
    if how == "side":
        bad["last_side"] = data.draw(st.sampled_from(["BUY", "long", "b", "sideways", "1"]))
        return bad, "unknown side"
    if how == "seq":
        bad["seq"] = data.draw(st.sampled_from(["0", "-3", "1.5", "x", "99999999999999999999"]))
        return bad, f"seq is not a positive integer of plain digits up to {MAX_UINT}"
    if how == "ts_server":
        bad["ts_server"] = data.draw(st.sampled_from(["inf", "1e400", "99999999999999999999", "1.7e18", "\udcff1"]))
        return bad, f"ts_server is not a positive integer of plain digits up to {MAX_UINT}"
    if how == "ts_range":
        # 2008-12-31T23:59:59.999999999Z, the year 2262, two days ahead of the wall clock
        bad["ts_server"] = str(data.draw(st.sampled_from([1_230_767_999_999_999_999, 8_999_999_999_999_999_999])))
        if data.draw(st.booleans()):
            bad["ts_server"] = str(time.time_ns() + 2 * 86_400_000_000_000)
        return bad, "ts_server out of range"
    raise AssertionError(how)


@given(
    valid_entries(),
    st.sampled_from(["missing", "non-numeric", "non-positive", "crossed", "side", "seq", "ts_server", "ts_range"]),
    st.data(),
)
def test_malformed_entries_are_rejected_with_a_reason(entry: dict[str, str], how: str, data: st.DataObject) -> None:
    bad, reason = _corrupt(entry, how, data)
    with pytest.raises(MalformedTick) as info:
        parse_entry(bad)
    assert info.value.reason.startswith(reason)


def test_batch_keeps_good_rows_and_names_bad_positions() -> None:
    good = {
        "symbol": "BTCUSDT",
        "seq": "1",
        "ts_server": "1723161256313000000",
        "ts_local": "1723161255088169167",
        "bid": "61800.20",
        "ask": "61800.30",
        "bid_qty": "2.507",
        "ask_qty": "2.510",
        "last_px": "",
        "last_qty": "0",
        "last_side": "",
    }
    trade = {**good, "seq": "2", "last_px": "61800.30", "last_qty": "0.006", "last_side": "buy"}
    quote_with_trade_fields = {**good, "seq": "3", "last_qty": "0.5"}
    batch = parse_entries([good, {**good, "ask": "61800.10"}, trade, quote_with_trade_fields])
    assert list(batch.ticks.index) == [0, 2]
    assert batch.rejects.to_dict() == {
        1: "crossed book: bid >= ask",
        3: "quote tick with trade fields (want last_px empty, last_qty 0)",
    }
    assert batch.ticks["is_trade"].tolist() == [False, True]
    # Values that are not text (a client that did not decode, a caller passing numbers) fail the same way
    # whatever else is in the batch.
    not_text: list[list[dict[str, object]]] = [[{**good, "seq": 5}], [{**good, "seq": 5}, {**good}]]
    not_text.append([{**good, "seq": b"5", "bid": 1.5}])
    for entries in not_text:
        assert (
            parse_entries(entries).rejects.get(0) == f"seq is not a positive integer of plain digits up to {MAX_UINT}"
        )
