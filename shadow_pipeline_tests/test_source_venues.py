"""Recordings say their venue: each reader places a file on the venue its messages show, a venue option fills in
what they do not say or replaces it within the same market, and one that contradicts them is one error line.
End to end: a Binance spot and a Bybit linear recording, replayed without options, land as their own instruments
and fit them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import redis
from click.testing import CliRunner

from shadow_pipeline import cli
from shadow_pipeline.defs.feed.assets import FeedConfig, replayed_feed
from shadow_pipeline.defs.ingest import checks
from shadow_pipeline.defs.ingest.assets import landing_zone, normalized_ticks, raw_ticks
from shadow_pipeline.defs.partitions import partition_key
from shadow_pipeline.domain.market.instruments import DEFAULT_VENUE, InstrumentError, load_registry
from shadow_pipeline.domain.market.windows import hour_keys
from shadow_pipeline.feed.readers import venues
from shadow_pipeline.feed.recordings import RecordingError, read_binance, read_bybit
from shadow_pipeline.feed.replay import ReplayOptions, replay
from shadow_pipeline.feed.sources import open_source
from shadow_pipeline.parquet import read_frame
from shadow_pipeline.redis_io.streams import read_entries
from shadow_pipeline.settings import INSTRUMENTS_ENV, REDIS_URL_ENV
from shadow_pipeline_tests.bybit_archives import compact, random_market, write_ob500, write_trades
from shadow_pipeline_tests.conftest import market_file
from shadow_pipeline_tests.ingest_helpers import pipeline_resources
from shadow_pipeline_tests.instance_helpers import dagster_instance
from shadow_pipeline_tests.partition_env import has_partitions

SPOT = "binance_hftbacktest/spot/btcusdt_20240808.gz"
USDM = "binance_hftbacktest/usdm/btcusdt_20240808.gz"
BYBIT_LINEAR = "bybit_cryptofeed/bybit_v5_linear_20260809.ws.gz"
BYBIT_SPOT = "bybit_cryptofeed/bybit_v5_spot_20260809.ws.gz"
MS = 1_000_000


@pytest.fixture(autouse=True)
def _packaged_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSTRUMENTS_ENV, raising=False)


def _venues(frame: pd.DataFrame) -> set[str | None]:
    """The frame's venue cells; no column means every row is on the default venue."""
    return set(frame["venue"]) if "venue" in frame.columns else {None}


def test_the_readers_venues_are_the_registrys() -> None:
    registry = load_registry()
    for venue in (venues.BINANCE_USDM, venues.BINANCE_SPOT, venues.BYBIT_LINEAR, venues.BYBIT_SPOT):
        assert registry.venue(venue.code) == venue
    assert venues.BINANCE_USDM.code == DEFAULT_VENUE
    assert registry.venues == ["binance-spot", "binance-usdm", "bybit-linear", "bybit-spot"]
    with pytest.raises(InstrumentError, match=r"no venue 'okx-swap' .* choose from binance-spot, binance-usdm"):
        registry.venue("okx-swap")


def test_binance_files_say_spot_or_usdm_and_a_contradicting_venue_is_refused() -> None:
    spot, usdm = market_file(SPOT), market_file(USDM)
    assert _venues(read_binance([spot])) == {"binance-spot"}
    assert _venues(read_binance([usdm])) == {None}  # the default venue: entries without the field, as before
    both = read_binance([usdm, spot])  # back to back, each file on its own venue
    assert both.groupby(both["venue"].fillna(DEFAULT_VENUE)).size().to_dict() == {
        "binance-spot": len(read_binance([spot])),
        "binance-usdm": len(read_binance([usdm])),
    }
    registry = load_registry()
    with pytest.raises(
        RecordingError,
        match=r"btcusdt_20240808.gz: line \d+: a bookTicker without an event time E \(spot\): binance spot data, "
        r"not venue binance-usdm \(binance linear\) \(leave the venue out, or choose binance-spot\)",
    ):
        read_binance([spot], registry.venue("binance-usdm"))
    with pytest.raises(RecordingError, match="a binance recording, not one of venue bybit-spot"):
        read_binance([spot], registry.venue("bybit-spot"))


def test_a_venue_of_the_same_market_replaces_the_one_the_messages_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spot = market_file(SPOT)
    user = tmp_path / "instruments.json"
    margin = {"exchange": "binance", "market": "spot", "maker_fee_rate": 0.001, "taker_fee_rate": 0.001}
    user.write_text(json.dumps({"venues": {"binance-margin": {**margin, "source": "test"}}}))
    monkeypatch.setenv(INSTRUMENTS_ENV, str(user))
    assert _venues(next(open_source("binance", files=[spot], venue="Binance-Margin").chunks)) == {"binance-margin"}


def test_a_file_of_two_markets_is_refused_naming_both_lines(tmp_path: Path) -> None:
    path = tmp_path / "mixed.txt"
    futures = {
        "e": "bookTicker",
        "u": 1,
        "s": "BTCUSDT",
        "b": "1.0",
        "B": "1",
        "a": "1.1",
        "A": "1",
        "E": 1723161256313,
    }
    trade = {
        "e": "trade",
        "E": 1723161256322,
        "s": "BTCUSDT",
        "t": 1,
        "p": "1.0",
        "q": "1",
        "T": 1,
        "m": True,
        "M": True,
    }
    lines = [{"stream": "btcusdt@bookTicker", "data": futures}, {"stream": "btcusdt@trade", "data": trade}]
    path.write_text("".join(f"{1723161255088169167 + n} {compact(m)}\n" for n, m in enumerate(lines)))
    with pytest.raises(
        RecordingError,
        match=r"mixed.txt: line 2: a trade with the M flag \(spot only\), but line 1: a bookTicker with an event "
        r"time E \(futures only\): one file holds one market, not binance-usdm and binance-spot",
    ):
        read_binance([path])


def test_bybit_live_frames_say_linear_or_spot() -> None:
    registry = load_registry()
    linear, spot = market_file(BYBIT_LINEAR), market_file(BYBIT_SPOT)
    assert _venues(read_bybit(linear)) == {"bybit-linear"}
    assert _venues(read_bybit(spot)) == {"bybit-spot"}
    with pytest.raises(RecordingError, match="a bybit recording, not one of venue binance-usdm"):
        read_bybit(linear, registry.venue("binance-usdm"))
    with pytest.raises(RecordingError, match=r"bybit linear data, not venue bybit-spot .*choose bybit-linear\)"):
        read_bybit(linear, registry.venue("bybit-spot"))


def _book_only(tmp_path: Path, depth: int) -> Path:
    """A live recording of book frames alone, at ``depth``: nothing but the depth can say the market."""
    path = tmp_path / f"book{depth}.ws"
    frames = random_market(seconds=2).frames
    for frame in frames:
        frame["topic"] = frame["topic"].replace("orderbook.500.", f"orderbook.{depth}.")
    path.write_text("".join(f"{(f['ts'] + 100) * MS} {compact(f)}\n" for f in frames))
    return path


def test_a_bybit_recording_that_does_not_say_takes_the_venue_given(tmp_path: Path) -> None:
    assert _venues(read_bybit(_book_only(tmp_path, 500))) == {"bybit-linear"}  # depth 500: derivatives only
    undecided = _book_only(tmp_path, 200)
    with pytest.raises(RecordingError, match=r"no publicTrade, tickers or orderbook\.500 frame says linear or spot"):
        read_bybit(undecided)
    assert _venues(read_bybit(undecided, load_registry().venue("bybit-spot"))) == {"bybit-spot"}


def test_bybit_archives_are_linear(tmp_path: Path) -> None:
    market = random_market(seconds=10)
    book, trades = write_ob500(tmp_path, "BTCUSDT", market.frames), write_trades(tmp_path, "BTCUSDT", market.trades)
    assert _venues(next(open_source("bybit", files=[book, trades]).chunks)) == {"bybit-linear"}
    with pytest.raises(RecordingError, match=r"line 1: an orderbook.500 frame \(derivatives only\): bybit linear"):
        open_source("bybit", files=[book], venue="bybit-spot")


def test_the_synthetic_market_takes_a_venue(redis_url: str, stream: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _venues(next(open_source("synthetic", symbols=["BTCUSDT"], seconds=2).chunks)) == {None}
    monkeypatch.setenv(REDIS_URL_ENV, redis_url)
    args = ["replay", "--symbols", "BTCUSDT", "--minutes", "0.05", "--venue", "bybit-linear", "--stream", stream]
    result = CliRunner().invoke(cli.main, [*args, "--json"])
    assert result.exit_code == 0, result.stderr
    assert list(json.loads(result.stdout)["ticks_by_symbol"]) == ["BTCUSDT.bybit-linear"]
    entries = read_entries(redis.Redis.from_url(redis_url), stream)
    assert {fields["venue"] for _, fields in entries} == {"bybit-linear"}


def test_the_feed_asset_takes_a_venue(redis_url: str, stream: str, tmp_path: Path) -> None:
    feed = FeedConfig(symbols=["BTCUSDT"], minutes=0.05, venue="bybit-spot", maxlen=0)
    with dagster_instance() as instance:
        fed = dg.materialize(
            [replayed_feed],
            resources=pipeline_resources(redis_url, stream, tmp_path),
            run_config=dg.RunConfig(ops={"replayed_feed": feed}),
            instance=instance,
        )
    assert fed.success
    entries = read_entries(redis.Redis.from_url(redis_url), stream)
    assert entries and {fields["venue"] for _, fields in entries} == {"bybit-spot"}


def test_the_replay_command_refuses_a_venue_in_one_error_line(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REDIS_URL_ENV, redis_url)
    spot = market_file(SPOT)
    forced = CliRunner().invoke(
        cli.main, ["replay", "--source", "binance", "--file", str(spot), "--venue", "binance-usdm"]
    )
    unknown = CliRunner().invoke(cli.main, ["replay", "--venue", "okx-swap"])
    for result in (forced, unknown):
        assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1, result.stderr
        assert result.stderr.startswith("error: ")
    assert "binance spot data, not venue binance-usdm (binance linear)" in forced.stderr
    assert "no venue 'okx-swap' in the instrument registry" in unknown.stderr and "bybit-spot" in unknown.stderr


def _land(redis_url: str, stream: str, folder: Path, source: str, key: str, files: list[Path]) -> dict[str, Any]:
    """Replay ``files`` as ``source`` with no venue given, then land and check ``key``'s partition of their hour."""
    frame = next(open_source(source, files=files).chunks)
    client = redis.Redis.from_url(redis_url)
    replayed = replay(client, iter([frame]), ReplayOptions(stream=stream, maxlen=None, progress=False))
    hours = hour_keys(frame["ts_server"].to_numpy())
    hour = str(hours[0])
    with dagster_instance() as instance:
        result = dg.materialize(
            [landing_zone, raw_ticks, normalized_ticks],
            partition_key=partition_key(hour, key),
            resources=pipeline_resources(redis_url, stream, folder),
            instance=instance,
            raise_on_error=False,
        )
    [fit] = [e for e in result.get_asset_check_evaluations() if e.check_name == checks.FITS_INSTRUMENT]
    return {
        "hour": hour,
        "venues": _venues(frame),
        "ticks_by_symbol": replayed.ticks_by_symbol,
        "fit": fit,
        "landed": len(read_frame(str(folder / "assets/raw_ticks" / hour / f"{key}.parquet"))),
        "in_hour": int((frame["symbol"] == key.partition(".")[0])[hours == hour].sum()),
        "normalized": result.asset_materializations_for_node("normalized_ticks"),
    }


def test_recordings_replayed_without_options_land_as_their_venues_and_fit(
    redis_url: str, stream: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    spot, bybit = market_file(SPOT), market_file(BYBIT_LINEAR)
    if not has_partitions(request, redis_url, "BTCUSDT.binance-spot", "BTCUSDT.bybit-linear"):
        return
    landed = _land(redis_url, f"{stream}:spot", tmp_path / "spot", "binance", "BTCUSDT.binance-spot", [spot])
    assert landed["venues"] == {"binance-spot"} and landed["ticks_by_symbol"] == {"BTCUSDT.binance-spot": 37797}
    assert landed["hour"] == "2024-08-08-23:00" and landed["fit"].passed, landed["fit"].description
    assert landed["landed"] == landed["in_hour"] > 37000 and landed["normalized"]  # the rest is past midnight
    key = "BTCUSDT.bybit-linear"  # the recording has four symbols; BTCUSDT's partition is checked
    landed = _land(redis_url, f"{stream}:bybit", tmp_path / "bybit", "bybit", key, [bybit])
    assert landed["venues"] == {"bybit-linear"} and landed["hour"] == "2026-08-09-21:00"
    assert landed["fit"].passed, landed["fit"].description
    assert landed["landed"] == landed["in_hour"] == landed["ticks_by_symbol"][key] > 0 and landed["normalized"]


def test_an_ob500_archive_lands_as_bybit_linear_and_fits(
    redis_url: str, stream: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    key = "BTCUSDT.bybit-linear"
    if not has_partitions(request, redis_url, key):
        return
    market = random_market(seconds=60)
    files = [write_ob500(tmp_path, "BTCUSDT", market.frames), write_trades(tmp_path, "BTCUSDT", market.trades)]
    landed = _land(redis_url, stream, tmp_path / "archive", "bybit", key, files)
    assert landed["venues"] == {"bybit-linear"} and landed["hour"] == "2024-08-08-23:00"
    assert landed["fit"].passed, landed["fit"].description
    assert landed["landed"] == landed["in_hour"] == len(market.touches) + len(market.trades) and landed["normalized"]
