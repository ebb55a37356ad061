"""Builds the two small Binance fixtures in ``fixtures/`` from the shared recording (run it to rebuild them).

``python -m shadow_pipeline_tests.recording_fixtures`` (from the repository root, shared data at
``$SHADOW_MARKET_DATA`` or ``../shared/data/market``). The recipe, deterministic:

1. From ``binance_hftbacktest/usdm/btcusdt_20240808.gz`` take the lines received 120 s to 165 s after the
   file's first line, and keep every 40th ``bookTicker``, every 10th ``trade`` and the 3 shortest
   ``depth@0ms`` diffs, in file order and byte for byte: ``NS_FIXTURE``, the format as recorded (ns stamps).
2. ``US_FIXTURE`` is the same lines with each local stamp divided by 1000 (rounded down), as hftbacktest's
   earlier Python collector wrote them, plus one ``markPrice@1s`` message per exchange second of the slice in the shape
   Binance USD-M sends it (mark price = the latest quote's mid, index = the latest trade price, next funding
   at the next 8-hour mark), received at ``E`` plus the slice's median (local - E) of the trades, so it lands
   among the lines it would have arrived with.

Thinning keeps the fixture to a few hundred lines while the slice still spans 45 s of market time.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import numpy as np

from shadow_pipeline_tests.conftest import MARKET_DATA

FIXTURES = Path(__file__).resolve().parent / "fixtures"
NS_FIXTURE = FIXTURES / "binance_usdm_btcusdt_ns.gz"
US_FIXTURE = FIXTURES / "binance_usdm_btcusdt_us_markprice.gz"
SOURCE = "binance_hftbacktest/usdm/btcusdt_20240808.gz"
SLICE_S = (120, 165)
EVERY = {"bookTicker": 40, "trade": 10}
DEPTH_LINES = 3
FUNDING_MS = 8 * 3600 * 1000


def _split(line: bytes) -> tuple[int, dict[str, Any]]:
    """A line's local stamp and its frame, read with the standard library (independently of the project)."""
    stamp, _, frame = line.partition(b" ")
    return int(stamp), json.loads(frame)


def _kind(message: dict[str, Any]) -> str:
    return str(message.get("stream", "")).partition("@")[2]


def ns_lines(source: Path) -> list[bytes]:
    """Step 1 of the recipe: the thinned slice, lines unchanged."""
    with gzip.open(source, "rb") as handle:
        lines = handle.read().splitlines(keepends=True)
    first = int(lines[0].partition(b" ")[0])
    low, high = (first + s * 1_000_000_000 for s in SLICE_S)
    window = [(line, _kind(_split(line)[1])) for line in lines if low <= int(line.partition(b" ")[0]) < high]
    seen = dict.fromkeys(EVERY, 0)
    keep: set[int] = set()
    for position, (_, kind) in enumerate(window):
        if kind in EVERY:
            if seen[kind] % EVERY[kind] == 0:
                keep.add(position)
            seen[kind] += 1
    depth = sorted((len(line), position) for position, (line, kind) in enumerate(window) if kind.startswith("depth"))
    keep.update(position for _, position in depth[:DEPTH_LINES])
    return [window[position][0] for position in sorted(keep)]


def _mark_price(event_ms: int, mark: float, index: float) -> bytes:
    data = {
        "e": "markPriceUpdate",
        "E": event_ms,
        "s": "BTCUSDT",
        "p": f"{mark:.8f}",
        "i": f"{index:.8f}",
        "P": f"{index:.8f}",
        "r": "0.00010000",
        "T": (event_ms // FUNDING_MS + 1) * FUNDING_MS,
    }
    return json.dumps({"stream": "btcusdt@markPrice@1s", "data": data}, separators=(",", ":")).encode()


def us_lines(recorded: list[bytes]) -> list[bytes]:
    """Step 2 of the recipe: microsecond stamps and interleaved ``markPrice@1s`` messages."""
    parsed = []
    for line in recorded:
        stamp, message = _split(line)
        parsed.append((stamp // 1000, line.partition(b" ")[2], message))
    offset_us = int(np.median([us - m["data"]["E"] * 1000 for us, _, m in parsed if _kind(m) == "trade"]))
    next_ms = ((parsed[0][0] - offset_us) // 1_000_000 + 1) * 1000 + 1  # the first exchange second after line 1
    mid = last_trade = None
    out = []
    for stamp_us, frame, message in parsed:
        while next_ms * 1000 + offset_us <= stamp_us:
            assert mid is not None, "a quote precedes the first mark price"
            mark = _mark_price(next_ms, mid, last_trade or mid)
            out.append(b"%d %s\n" % (next_ms * 1000 + offset_us, mark))
            next_ms += 1000
        out.append(b"%d %s" % (stamp_us, frame))
        if _kind(message) == "bookTicker":
            mid = (float(message["data"]["b"]) + float(message["data"]["a"])) / 2
        elif _kind(message) == "trade":
            last_trade = float(message["data"]["p"])
    return out


def main() -> None:
    recorded = ns_lines(MARKET_DATA / SOURCE)
    FIXTURES.mkdir(exist_ok=True)
    for path, lines in ((NS_FIXTURE, recorded), (US_FIXTURE, us_lines(recorded))):
        path.write_bytes(gzip.compress(b"".join(lines), mtime=0))
        print(f"{path}: {len(lines)} lines, {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
