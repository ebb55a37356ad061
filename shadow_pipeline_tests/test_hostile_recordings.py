"""Hostile recording files through ``shadow-pipeline replay``: each is one ``error:`` line naming the file (and the
line, where there is one) and exit 2, never a traceback, and refused before any Redis work."""

from __future__ import annotations

import gzip
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadow_pipeline import cli
from shadow_pipeline.feed.readers.files import MAX_LINE_BYTES
from shadow_pipeline.feed.sources import open_source
from shadow_pipeline.settings import REDIS_URL_ENV
from shadow_pipeline_tests.bybit_archives import START_MS, TRADE_HEADER, compact, frame, random_market

STAMPED = (
    b"1723161255088169167 "
    + compact(
        {"stream": "btcusdt@bookTicker", "data": {"s": "BTCUSDT", "b": "1.0", "B": "1", "a": "1.1", "A": "1", "E": 1}}
    ).encode()
)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _book_lines(bad: bytes | None = None, at: int = 17) -> bytes:
    lines = [compact(f).encode() for f in random_market(seconds=3).frames]
    if bad is not None:
        lines[at - 1] = bad
    return b"\n".join(lines) + b"\n"


def _truncated_gzip(path: Path) -> Path:
    whole = gzip.compress(b"\n".join([STAMPED] * 5000) + b"\n")
    path.write_bytes(whole[: len(whole) // 2])
    return path


def _garbage() -> bytes:
    return bytes(range(256)) * 64  # every byte value, newline included


Make = Callable[[Path], Path]


def _file(name: str, data: bytes) -> Make:
    def make(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name

    return make


def _zipped(name: str, members: dict[str, bytes]) -> Make:
    return lambda folder: _zip(folder / name, members)


def _fifo(folder: Path) -> Path:
    os.mkfifo(folder / "feed.fifo")  # nobody writes it: a plain open would block forever
    return folder / "feed.fifo"


def _zip_cut_short(folder: Path) -> Path:
    whole = _zip(folder / "whole.zip", {"a.data": _book_lines()}).read_bytes()
    return _file("cut.data.zip", whole[:200])(folder)


def _ob(bad: bytes, at: int) -> Make:
    return _zipped("BTCUSDT_ob500.data.zip", {"BTCUSDT_ob500.data": _book_lines(bad, at)})


BAD_SIZE = compact(frame("BTCUSDT", "delta", START_MS, [["1", "x"]], [], 9)).encode()
INFINITE_TS = (
    compact(frame("BTCUSDT", "delta", 1, [], [["1", "1"]], 9) | {"cts": 1e400}).encode().replace(b"Infinity", b"1e400")
)
TRADE = b"1723158000.1,BTCUSDT,Buy,1,2,,,,,"
# (source, how the file is made, what the one error line says after the file's name)
CASES: dict[str, tuple[str, Make, str]] = {
    "zip-without-member": ("bybit", _zipped("empty.data.zip", {}), "a zip with no file: expected exactly one"),
    "zip-of-two": (
        "bybit",
        _zipped("two.zip", {"a.data": b"{}\n", "b.data": b"{}\n"}),
        "a zip with 2 files (a.data, b.data): expected exactly one",
    ),
    "zip-cut-short": ("bybit", _zip_cut_short, "not a readable zip"),
    "csv-as-binance": (
        "binance",
        _file("BTCUSDT2024-08-08.csv.gz", gzip.compress(TRADE_HEADER.encode() + b"\n")),
        "line 1: expected '<local timestamp> <frame>', got 'timestamp,symbol,side,size,price,tickDir' "
        "(this is a Bybit trade CSV: use --source bybit)",
    ),
    "archive-as-binance": (
        "binance",
        _zipped("2024-08-08_BTCUSDT_ob500.data.zip", {"2024-08-08_BTCUSDT_ob500.data": _book_lines()}),
        "(this is JSON lines without a receive stamp: use --source bybit)",
    ),
    "truncated-gzip-binance": (
        "binance",
        lambda folder: _truncated_gzip(folder / "cut.gz"),
        "cannot decompress the gzip (Compressed file ended before the end-of-stream marker was reached)",
    ),
    "truncated-gzip-bybit": ("bybit", lambda folder: _truncated_gzip(folder / "cut.gz"), "cannot decompress the gzip"),
    "empty-binance": ("binance", _file("empty.gz", b""), "empty file"),
    "empty-bybit": ("bybit", _file("empty.zip", b""), "empty file"),
    "empty-gzip": ("binance", _file("e.gz", gzip.compress(b"")), "no lines in the gzip"),
    "garbage-binance": ("binance", _file("junk.gz", _garbage()), "line 1: expected '<local timestamp> <frame>'"),
    "garbage-bybit": (
        "bybit",
        _file("junk.zip", _garbage()),
        "line 1: an unknown format, not a Bybit order-book archive or trade CSV",
    ),
    "huge-line": (
        "bybit",
        _file("huge.data", b"{" + b" " * MAX_LINE_BYTES),
        "line 1: longer than 1,048,576 bytes: not a recording line",
    ),
    "not-an-object": ("bybit", _ob(b"[1, 2]", 17), "line 17: not a JSON object"),
    "not-json": (
        "bybit",
        _ob(b'{"topic": "orderbook.500.BTCUSDT", ', 5),
        "line 5: not JSON (Expecting property name enclosed in double quotes at character",
    ),
    "missing-field": ("bybit", _ob(b'{"topic": "orderbook.500.BTCUSDT"}', 2), "line 2: missing field 'data'"),
    "other-topic": (
        "bybit",
        _ob(b'{"topic": "tickers.BTCUSDT"}', 3),
        "line 3: not an orderbook frame (topic 'tickers.BTCUSDT')",
    ),
    "deep-json": ("bybit", _ob(b"[" * 500_000, 6), "line 6: JSON nested too deep"),
    "time-out-of-range": (
        "bybit",
        _ob(compact(frame("BTCUSDT", "delta", 10**20, [], [["1", "1"]], 9)).encode(), 7),
        "line 7: exchange time 100000000000000000000 ms is out of range",
    ),
    "infinite-time": ("bybit", _ob(INFINITE_TS, 8), "line 8: cannot convert float infinity to integer"),
    "symbol-not-text": (
        "binance",
        _file("n.gz", gzip.compress(STAMPED.replace(b'"BTCUSDT"', b'["BTC"]'))),
        "line 1: symbol \"['BTC']\" is not text",
    ),
    "bad-size": ("bybit", _ob(BAD_SIZE, 4), "line 4: could not convert string to float: 'x'"),
    "bad-trade-time": (
        "bybit",
        _file("t.csv", b"\n".join([TRADE_HEADER.encode(), TRADE, b"soon" + TRADE[12:]])),
        "line 3: timestamp 'soon' is not epoch seconds",
    ),
    "bad-trade-row": (
        "bybit",
        _file("t.csv", TRADE_HEADER.encode() + b"\n1723158000.1,BTCUSDT,Buy,1\n"),
        "line 2: 4 columns, the header has 10",
    ),
    "not-utf8": (
        "binance",
        _file("latin.gz", gzip.compress(STAMPED + b"\n" + STAMPED[:30] + b"\xe9\n")),
        "line 2: not UTF-8 text (byte 11)",
    ),
    "fifo": ("bybit", _fifo, "not a regular file"),
    "device": ("binance", lambda folder: Path("/dev/zero"), "/dev/zero: not a regular file"),
    "folder": ("binance", lambda folder: folder, "is a directory"),
}


@pytest.fixture
def unreachable_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """A case that got as far as Redis would fail with "cannot reach Redis" instead of the file's error."""
    monkeypatch.setenv(REDIS_URL_ENV, "redis://127.0.0.1:1/0")


@pytest.mark.usefixtures("unreachable_redis")
@pytest.mark.parametrize("case", CASES)
def test_a_hostile_file_is_one_error_line_naming_it(tmp_path: Path, case: str) -> None:
    source, make, said = CASES[case]
    path = make(tmp_path)
    result = CliRunner().invoke(cli.main, ["replay", "--source", source, "--file", str(path)])
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert path.name in errors[0] and said in errors[0], errors[0]


@pytest.mark.usefixtures("unreachable_redis")
def test_a_live_recording_and_archives_are_not_mixed(tmp_path: Path) -> None:
    live = tmp_path / "live.ws"
    live.write_bytes(STAMPED + b"\n")
    archive = _zip(tmp_path / "ob.zip", {"ob.data": _book_lines()})
    result = CliRunner().invoke(cli.main, ["replay", "--source", "bybit", "--file", str(live), "--file", str(archive)])
    assert result.exit_code == 2 and result.stderr.startswith("error: source bybit takes one live recording")


def test_a_real_process_shows_the_error_line_alone(tmp_path: Path) -> None:
    """As a shell sees it: stderr is the one line, nothing on stdout."""
    path = _truncated_gzip(tmp_path / "cut.gz")
    env = {**os.environ, REDIS_URL_ENV: "redis://127.0.0.1:1/0"}
    process = subprocess.run(
        [sys.executable, "-m", "shadow_pipeline.cli", "replay", "--source", "binance", "--file", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert process.returncode == 2 and process.stdout == ""
    [line] = process.stderr.splitlines()
    assert re.fullmatch(
        rf"error: {re.escape(str(path))}: line \d+: cannot decompress the gzip \(.*\): truncated.*", line
    )


# Lines a fuzzer builds from the shapes the readers expect, so that it gets past the first check.
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8), st.sampled_from(["0", "1.5", "x"])
)
_JSON = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner))
_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "topic": st.sampled_from(["orderbook.500.BTCUSDT", "publicTrade.BTCUSDT", "tickers.X"]),
        "stream": st.sampled_from(["btcusdt@bookTicker", "btcusdt@trade", "btcusdt@depth"]),
        "type": st.sampled_from(["snapshot", "delta", 3]),
        "ts": _JSON,
        "cts": _JSON,
        "data": _JSON
        | st.fixed_dictionaries({}, optional={k: _JSON for k in ("s", "b", "a", "u", "E", "p", "q", "m")}),
    },
)
_DECIMAL = st.sampled_from(["0", "1", "1.5", "2", "1e400", "-1", "nan", "x", ""]) | _SCALARS
_LEVELS = st.lists(st.lists(_DECIMAL, min_size=2, max_size=2) | _JSON, max_size=3)
_TIME = st.integers(-1, 2**64) | st.sampled_from([1_723_158_000_000, 1e400, "1723158000000", None])
_BOOK = st.builds(
    lambda symbol, kind, b, a, u, cts: {
        "topic": "orderbook.500.BTCUSDT",
        "type": kind,
        "ts": 1_723_158_000_000,
        "cts": cts,
        "data": {"s": symbol, "b": b, "a": a, "u": u, "seq": 1},
    },
    st.sampled_from(["BTCUSDT", "ETHUSDT", 5, None]),
    st.sampled_from(["snapshot", "delta"]),
    _LEVELS,
    _LEVELS,
    st.sampled_from([1, 2, "1"]),
    _TIME,
)
_TICKER = st.builds(
    lambda stream, s, e, b, m: {
        "stream": stream,
        "data": {"s": s, "E": e, "b": b, "a": "2", "B": "1", "A": "1", "p": b, "q": "1", "m": m},
    },
    st.sampled_from(["btcusdt@bookTicker", "btcusdt@trade"]),
    st.sampled_from(["BTCUSDT", 5]),
    _TIME,
    _DECIMAL,
    _SCALARS,
)
_MESSAGES = st.one_of(_BOOK, _TICKER, _FIELDS, _JSON)
_LINE = st.one_of(_MESSAGES.map(compact), st.text(max_size=30)).map(str.encode)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from(["binance", "bybit"]),
    st.lists(_LINE, max_size=6),
    st.sampled_from(["text", "gzip", "zip"]),
    st.booleans(),
)
def test_any_content_is_ticks_or_one_recording_error(
    tmp_path: Path, kind: str, lines: list[bytes], container: str, stamped: bool
) -> None:
    """Whatever a file holds, a reader returns ticks or raises the error the command line shows as one line."""
    data = b"".join((b"1723161255088169167 " if stamped else b"") + line + b"\n" for line in lines)
    path = tmp_path / f"fuzz.{container}"
    path.unlink(missing_ok=True)
    if container == "zip":
        _zip(path, {"fuzz.data": data})
    else:
        path.write_bytes(gzip.compress(data) if container == "gzip" else data)
    try:
        next(open_source(kind, files=[path]).chunks)
    except ValueError as exc:  # RecordingError, or open_source's own refusals
        assert str(exc) and "\n" not in str(exc)
