"""Binance USD-M recordings (hftbacktest's collector) as depth stream entries: the REST snapshot, then the diffs.

The book is rebuilt by Binance's documented rule for USD-M futures ("How to manage a local order book
correctly"): diffs received before the REST snapshot are buffered; those with ``u`` < ``lastUpdateId`` are
dropped; the first diff applied must straddle it (``U`` <= ``lastUpdateId`` <= ``u``); every later diff's ``pu``
must equal the previous diff's ``u``. A recording that breaks the rule cannot give a right book, so it is a
``RecordingError`` naming the line, not a book with a hole in it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shadow_pipeline.domain.market.depth import DELTA, SNAPSHOT, MalformedDepth, depth_fields, parse_depth_entry
from shadow_pipeline.domain.market.instruments import Venue
from shadow_pipeline.feed.readers.files import BAD_LINE, RecordingError, describe
from shadow_pipeline.feed.readers.frames import as_text, exchange_ns, venue_code
from shadow_pipeline.feed.readers.stamped import read_stamped

log = logging.getLogger(__name__)
_DEPTH_STREAM = "@depth"


def _depth_rows(text: str, line: int) -> Sequence[dict[str, Any]]:
    """A ``depthUpdate`` diff or the bare REST snapshot (``lastUpdateId``) of one line; other lines give nothing."""
    if text.startswith('{"stream":"'):
        name = text[len('{"stream":"') : text.find('"', len('{"stream":"'))]
        if _DEPTH_STREAM not in name:
            return ()
        data = json.loads(text)["data"]
        if "pu" not in data:
            raise ValueError("a depth diff without pu (spot?): depth is published from Binance USD-M recordings only")
        return ({"line": line, "kind": DELTA, **{k: data[k] for k in ("s", "E", "U", "u", "pu", "b", "a")}},)
    if '"lastUpdateId"' not in text:
        return ()
    data = json.loads(text)
    if "E" not in data:
        raise ValueError("a REST depth snapshot without an event time E (spot?): USD-M recordings only")
    return ({"line": line, "kind": SNAPSHOT, **{k: data[k] for k in ("lastUpdateId", "E", "bids", "asks")}},)


@dataclass
class _Book:
    """One symbol's rebuild state: diffs waiting for the snapshot, the snapshot waiting for its straddling diff,
    and the last ``u`` published."""

    symbol: str
    waiting: list[tuple[dict[str, Any], int]] = field(default_factory=list)
    snapshot: tuple[dict[str, Any], int] | None = None
    last_u: int | None = None
    skipped_snapshots: int = 0


def _checked(fields: dict[str, str], where: str) -> dict[str, str]:
    """The entry as a reader will check it: a bad line is refused here, naming it, not published."""
    try:
        parse_depth_entry(fields)
    except MalformedDepth as exc:
        raise RecordingError(f"{where}: {exc.reason}") from None
    return fields


def _snapshot(
    symbol: str, snapshot: tuple[dict[str, Any], int], ts: int, venue: str | None, where: str
) -> dict[str, str]:
    row, local = snapshot
    update_id = int(row["lastUpdateId"])
    fields = depth_fields(symbol, SNAPSHOT, ts, local, row["bids"], row["asks"], None, update_id, venue)
    return _checked(fields, where)


def _apply(
    book: _Book, row: dict[str, Any], local: int, where: str, venue: str | None, out: list[dict[str, str]]
) -> None:
    """Publish the diff ``row`` by the rule (and the snapshot before it, once its straddling diff is here)."""
    first, last = int(row["U"]), int(row["u"])
    if book.snapshot is not None:
        snapshot = book.snapshot[0]
        update_id = int(snapshot["lastUpdateId"])
        if last < update_id:
            return
        if first > update_id:
            raise RecordingError(
                f"{where}: the first diff after the snapshot starts at U {first}, past its "
                f"lastUpdateId {update_id}: updates are missing, the book cannot be rebuilt"
            )
        # the book is the snapshot's as of lastUpdateId, inside this diff: stamped no later than the diff
        ts = min(exchange_ns(snapshot["E"]), exchange_ns(row["E"]))
        out.append(_snapshot(book.symbol, book.snapshot, ts, venue, where))
        book.snapshot = None
    elif int(row["pu"]) != book.last_u:
        raise RecordingError(
            f"{where}: diff pu {row['pu']} is not the previous diff's u {book.last_u}: a diff is "
            "missing, the book cannot be rebuilt"
        )
    fields = depth_fields(row["s"], DELTA, exchange_ns(row["E"]), local, row["b"], row["a"], first, last, venue)
    out.append(_checked(fields, where))
    book.last_u = last


def _take(
    books: dict[str, _Book],
    symbols: set[str],
    row: dict[str, Any],
    stamp: int,
    where: str,
    venue: str | None,
    out: list[dict[str, str]],
) -> None:
    """One diff or snapshot line of a file whose diffs are of ``symbols``, into the books' state and ``out``."""
    if row["kind"] == SNAPSHOT:
        if len(symbols) != 1:
            raise RecordingError(
                f"{where}: a REST snapshot in a file with depth diffs of {sorted(symbols) or 'no symbol'}: "
                "whose book is it?"
            )
        symbol = next(iter(symbols))
        book = books.setdefault(symbol, _Book(symbol))
        if book.last_u is not None or book.snapshot is not None:
            book.skipped_snapshots += 1  # the book is already known: a later snapshot adds nothing
            return
        book.snapshot = (row, stamp)
        waiting, book.waiting = book.waiting, []
        for diff, diff_local in waiting:
            _apply(book, diff, diff_local, where, venue, out)
        return
    book = books.setdefault(row["s"], _Book(row["s"]))
    if book.snapshot is None and book.last_u is None:
        book.waiting.append((row, stamp))
    else:
        _apply(book, row, stamp, where, venue, out)


def read_binance_depth(paths: Sequence[Path], venue: Venue | None = None) -> list[dict[str, str]]:
    """Depth stream entries (``depth.depth_fields``) of USD-M recordings played back to back, in publication
    order. Each file holds one symbol's depth (hftbacktest's collector writes one file per symbol), so its REST
    snapshot is that symbol's; a ``*_20240809`` file continues the book of the ``*_20240808`` one."""
    out: list[dict[str, str]] = []
    books: dict[str, _Book] = {}
    code = None if venue is None else venue_code(venue)
    for path in map(Path, paths):
        rows, local, _ = read_stamped(path, _depth_rows)
        symbols = {as_text(row["s"], "symbol") for row in rows if row["kind"] == DELTA}
        for row, stamp in zip(rows, local.tolist(), strict=True):
            where = f"{path}: line {row['line']}"
            try:
                _take(books, symbols, row, stamp, where, code, out)
            except RecordingError:
                raise
            except BAD_LINE as exc:
                raise RecordingError(f"{where}: {describe(exc)}") from None
    desc = ", ".join(map(str, paths))
    if not books:
        raise RecordingError(f"no depth diffs or REST snapshot in {desc}")
    for book in books.values():
        if book.snapshot is None and book.last_u is None:
            raise RecordingError(f"{desc}: depth diffs of {book.symbol} but no REST snapshot: the book cannot be built")
        if book.snapshot is not None:  # no diff came after the snapshot: it is the whole book
            out.append(_snapshot(book.symbol, book.snapshot, exchange_ns(book.snapshot[0]["E"]), code, desc))
        log.info("%s depth: %d later snapshots not needed", book.symbol, book.skipped_snapshots)
    return out
