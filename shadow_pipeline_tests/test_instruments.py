"""The instrument registry: ids parse and format one way, the packaged file holds every venue's majors, a user
file merges over it, and profiles take their instrument from it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shadow_pipeline.domain.market.instruments import (
    DEFAULT_VENUE,
    InstrumentError,
    InstrumentId,
    instrument_key,
    load_registry,
)
from shadow_pipeline.domain.strategies.profiles import ProfileError, load_profiles, resolve
from shadow_pipeline.settings import INSTRUMENTS_ENV

MAJORS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "DOGEUSDT")
VENUES = ("binance-usdm", "binance-spot", "bybit-linear", "bybit-spot")
BYBIT_FILE = Path(__file__).parents[2] / "shared/data/market/bybit_cryptofeed/bybit_v5_instruments_20260809.json"


@pytest.fixture(autouse=True)
def _no_user_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSTRUMENTS_ENV, raising=False)


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "instruments.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_id_text_form_round_trips_and_the_default_venue_is_bare() -> None:
    perp = InstrumentId.parse("BTCUSDT")
    assert perp == InstrumentId("BTCUSDT", DEFAULT_VENUE) == InstrumentId.parse("BTCUSDT.binance-usdm")
    assert (str(perp), perp.key) == ("BTCUSDT.binance-usdm", "BTCUSDT")
    bybit = InstrumentId.parse(" btcusdt.Bybit-Linear ")
    assert (bybit.symbol, bybit.venue, str(bybit), bybit.key) == (
        "BTCUSDT",
        "bybit-linear",
        "BTCUSDT.bybit-linear",
        "BTCUSDT.bybit-linear",
    )
    assert InstrumentId.parse(bybit.key) == bybit
    assert instrument_key("BTCUSDT", None) == instrument_key("BTCUSDT", DEFAULT_VENUE) == "BTCUSDT"
    assert instrument_key("BTCUSDT", "binance-spot") == "BTCUSDT.binance-spot"
    for bad in ("", "BTC-USDT", "BTCUSDT.", "BTCUSDT.bybit", "BTCUSDT.bybit-linear.x"):
        with pytest.raises(InstrumentError, match="not an instrument id"):
            InstrumentId.parse(bad)


def test_packaged_registry_has_the_majors_on_every_venue_with_a_source() -> None:
    registry = load_registry()
    for venue in VENUES:
        for symbol in MAJORS:
            instrument = registry.get(InstrumentId(symbol, venue))
            assert instrument.source and instrument.contract_multiplier == 1
            assert instrument.min_qty >= instrument.lot_step
    perp, spot = registry.get("BTCUSDT"), registry.get("BTCUSDT.binance-spot")
    assert (perp.market, perp.tick_size, perp.maker_fee_rate, perp.taker_fee_rate) == ("linear", 0.1, 0.0002, 0.0005)
    assert (spot.market, spot.tick_size, spot.lot_step) == ("spot", 0.01, 0.00001)


def test_bybit_entries_match_the_shared_instruments_file() -> None:
    if not BYBIT_FILE.exists():
        pytest.skip(f"{BYBIT_FILE} is absent")
    registry = load_registry()
    answers = json.loads(BYBIT_FILE.read_text(encoding="utf-8"))
    for market, entries in answers.items():
        for entry in entries:
            instrument = registry.get(InstrumentId(entry["symbol"], f"bybit-{market}"))
            lots = entry["lotSizeFilter"]
            assert instrument.tick_size == float(entry["priceFilter"]["tickSize"])
            assert instrument.lot_step == float(lots.get("qtyStep") or lots["basePrecision"])
            assert instrument.min_qty == float(lots["minOrderQty"])
            assert "bybit_v5_instruments_20260809.json" in instrument.source


def test_user_file_merges_over_the_packaged_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = {
        "venues": {"okx-swap": {"exchange": "okx", "market": "linear", "maker_fee_rate": 0.0002,
                                "taker_fee_rate": 0.0005, "source": "test"}},
        "instruments": {
            "BTCUSDT.bybit-linear": {"maker_fee_rate": 0.0001},
            "XRPUSDT.okx-swap": {"tick_size": 0.0001, "lot_step": 1, "min_qty": 1, "contract_multiplier": 1,
                                 "source": "test"},
        },
    }  # fmt: skip
    monkeypatch.setenv(INSTRUMENTS_ENV, str(_write(tmp_path, user)))
    registry = load_registry()
    changed = registry.get("BTCUSDT.bybit-linear")
    assert (changed.maker_fee_rate, changed.taker_fee_rate, changed.tick_size) == (0.0001, 0.00055, 0.1)
    assert registry.get("XRPUSDT.okx-swap").exchange == "okx"
    assert str(tmp_path) in registry.source


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ({"instruments": {"ADAUSDT.bybit-linear": {"tick_size": 0.0001}}}, "'lot_step' is a required property"),
        (
            {
                "instruments": {
                    "ADAUSDT.nowhere-swap": {
                        "tick_size": 1,
                        "lot_step": 1,
                        "min_qty": 1,
                        "contract_multiplier": 1,
                        "source": "x",
                    }
                }
            },
            "venue 'nowhere-swap' is not in $.venues",
        ),
        ({"instruments": {"BTCUSDT.bybit-linear": {"min_qty": 0.0015}}}, "not a multiple of lot_step"),
        ({"instruments": {"BTCUSDT.bybit-linear": {"tick_size": -1}}}, "$.instruments.BTCUSDT.bybit-linear.tick_size"),
        ({"instruments": {"btcusdt": {}}}, "does not match"),
    ],
)
def test_bad_user_file_names_the_file_and_the_rule(tmp_path: Path, user: dict, message: str) -> None:
    path = _write(tmp_path, user)
    with pytest.raises(InstrumentError) as caught:
        load_registry(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_unknown_instrument_says_where_it_is_known_and_where_to_add_it() -> None:
    with pytest.raises(InstrumentError, match=r"no instrument BTCUSDT\.okx-swap .*known on: BTCUSDT\.binance-spot"):
        load_registry().get("BTCUSDT.okx-swap")


def test_profiles_take_their_instrument_from_the_registry() -> None:
    profiles = load_profiles()
    xrp, _ = resolve(profiles, "moderate", "XRPUSDT.bybit-linear")
    assert (xrp.symbol, xrp.tick_size, xrp.lot_step, xrp.min_lot) == ("XRPUSDT.bybit-linear", 0.0001, 1, 1)
    assert (xrp.maker_fee_rate, xrp.taker_fee_rate) == (0.0002, 0.00055)
    spot, _ = resolve(profiles, "moderate", "BTCUSDT.binance-spot")
    assert (spot.tick_size, spot.maker_fee_rate) == (0.01, 0.001)
    perp, _ = resolve(profiles, "aggressive", "BTCUSDT")  # the profile's entry overrides only what it says
    assert (perp.tick_size, perp.min_lot, perp.maker_fee_rate, perp.taker_fee_rate) == (0.1, 0.002, -0.00005, 0.0005)
    same, _ = resolve(profiles, "aggressive", "btcusdt.binance-usdm")  # any spelling; the params name the key
    assert (same.symbol, same.min_lot) == ("BTCUSDT", 0.002)
    with pytest.raises(ProfileError, match=r"no instrument ADAUSDT\.bybit-linear"):
        resolve(profiles, "moderate", "ADAUSDT.bybit-linear")
