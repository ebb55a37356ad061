"""Profile files: the packaged one loads and resolves; bad ones fail naming the file and the JSON path."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from shadow_pipeline.domain.strategies.profiles import ProfileError, load_profiles, resolve
from shadow_pipeline.settings import PROFILES_ENV


def _packaged() -> dict:
    return json.loads(json.dumps(load_profiles().data))


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_packaged_file_loads_and_resolves_every_profile_for_both_symbols(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PROFILES_ENV, raising=False)
    profiles = load_profiles()
    assert profiles.names == ["aggressive", "conservative", "external", "moderate"]
    btc, gates = resolve(profiles, "moderate", "BTCUSDT")
    assert (btc.tick_size, btc.lot_step, btc.quote_offset_ticks, btc.min_requote_ms) == (0.1, 0.001, 0, 250)
    assert (gates.min_maker_share, gates.min_net_bps, gates.max_p95_latency_ms, gates.max_risk_ratio) == (
        0.83,
        2.5,
        350,
        0.4,
    )
    assert gates.min_windows == 48
    eth, _ = resolve(profiles, "aggressive", "ETHUSDT")
    assert (eth.tick_size, eth.lot_step, eth.maker_fee_rate) == (0.01, 0.001, -0.00005)
    assert eth.max_position == pytest.approx(eth.max_inventory * eth.min_lot)


def test_env_var_points_at_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _packaged()
    data["profiles"]["moderate"]["params"]["touch_dwell_ms"] = 777
    monkeypatch.setenv(PROFILES_ENV, str(_write(tmp_path, data)))
    assert resolve(load_profiles(), "moderate", "BTCUSDT")[0].touch_dwell_ms == 777


def test_bad_value_names_the_file_and_the_json_path(tmp_path: Path) -> None:
    data = _packaged()
    data["profiles"]["moderate"]["params"]["quote_offset_ticks"] = -1
    path = _write(tmp_path, data)
    with pytest.raises(ProfileError) as caught:
        load_profiles(path)
    message = str(caught.value)
    assert str(path) in message
    assert "$.profiles.moderate.params.quote_offset_ticks" in message
    assert "-1 is less than the minimum of 0" in message


def test_missing_key_unknown_key_and_broken_json_are_reported(tmp_path: Path) -> None:
    data = _packaged()
    del data["profiles"]["moderate"]["params"]["touch_dwell_ms"]
    with pytest.raises(ProfileError, match=r"\$\.profiles\.moderate\.params: 'touch_dwell_ms' is a required property"):
        load_profiles(_write(tmp_path, data))
    data = _packaged()
    data["profiles"]["moderate"]["thresholds"]["min_net_bsp"] = 1
    with pytest.raises(ProfileError, match=r"\$\.profiles\.moderate\.thresholds: .*'min_net_bsp' was unexpected"):
        load_profiles(_write(tmp_path, data))
    broken = tmp_path / "broken.json"
    broken.write_text('{"profiles": ', encoding="utf-8")
    with pytest.raises(ProfileError, match=r"broken\.json: not JSON \(line 1"):
        load_profiles(broken)
    with pytest.raises(ProfileError, match=r"absent\.json: cannot read: No such file"):
        load_profiles(tmp_path / "absent.json")


def test_a_file_still_carrying_requote_rule_loads_with_one_warning_line_naming_what_to_delete(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """requote.rule had one value and nothing read it: older files (packaged, tuned, users') load as without it."""
    data = _packaged()
    data["profiles"]["moderate"]["params"]["requote"]["rule"] = "on_touch_change"
    data["profiles"]["aggressive"]["symbols"] = {
        "ETHUSDT": {"params": {"requote": {"rule": "on_touch_change", "min_requote_ms": 100}}}  # aggressive's
    }
    path = _write(tmp_path, data)
    with caplog.at_level(logging.WARNING, logger="shadow_pipeline"):
        old = load_profiles(path)
        load_profiles(path)  # a run loads its file often: said once
    [said] = [r.getMessage() for r in caplog.records]
    assert said == (
        f"{path}: requote.rule is deprecated and ignored (on_touch_change is the only rule): delete "
        "$.profiles.moderate.params.requote.rule, $.profiles.aggressive.symbols.ETHUSDT.params.requote.rule"
    )
    for name, symbol in (("moderate", "BTCUSDT"), ("aggressive", "ETHUSDT")):
        assert resolve(old, name, symbol) == resolve(load_profiles(), name, symbol)
    data["profiles"]["moderate"]["params"]["requote"]["rule"] = "on_trade"  # it never had another value
    with pytest.raises(ProfileError, match=r"\$\.profiles\.moderate\.params\.requote\.rule: 'on_trade' is not one of"):
        load_profiles(_write(tmp_path, data))


def test_unknown_profile_lists_the_known_ones_and_an_unknown_instrument_says_where_to_add_it() -> None:
    profiles = load_profiles()
    with pytest.raises(
        ProfileError, match="unknown profile 'bold'; known: aggressive, conservative, external, moderate"
    ):
        resolve(profiles, "bold", "BTCUSDT")
    with pytest.raises(ProfileError, match=r"no instrument ADAUSDT\.binance-usdm in the instrument registry"):
        resolve(profiles, "moderate", "ADAUSDT")


def test_symbol_overrides_apply_in_order(tmp_path: Path) -> None:
    data = _packaged()
    data["symbols"]["ETHUSDT"]["params"]["touch_dwell_ms"] = 300  # every profile on ETHUSDT
    data["symbols"]["ETHUSDT"]["thresholds"] = {"min_net_bps": 1.0}
    data["profiles"]["aggressive"]["symbols"] = {"ETHUSDT": {"params": {"touch_dwell_ms": 150, "min_lot": 0.02}}}
    profiles = load_profiles(_write(tmp_path, data))
    moderate, moderate_gates = resolve(profiles, "moderate", "ETHUSDT")
    aggressive, _ = resolve(profiles, "aggressive", "ETHUSDT")
    assert (moderate.touch_dwell_ms, moderate_gates.min_net_bps) == (300, 1.0)
    assert (aggressive.touch_dwell_ms, aggressive.min_lot) == (150, 0.02)
    assert resolve(profiles, "moderate", "BTCUSDT")[0].touch_dwell_ms == 500  # other symbols untouched


def test_order_size_must_be_a_multiple_of_the_lot_step(tmp_path: Path) -> None:
    data = _packaged()
    data["symbols"]["BTCUSDT"]["params"]["min_lot"] = 0.0025
    with pytest.raises(ProfileError, match=r"min_lot 0\.0025 is not a multiple of lot_step 0\.001"):
        resolve(load_profiles(_write(tmp_path, data)), "moderate", "BTCUSDT")
