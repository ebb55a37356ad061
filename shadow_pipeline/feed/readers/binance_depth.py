"""Binance USD-M recordings (hftbacktest's collector) as depth stream entries: the REST snapshot, then the diffs.

The book is rebuilt by Binance's documented rule for USD-M futures ("How to manage a local order book
correctly"): diffs received before the REST snapshot are buffered; those with ``u`` < ``lastUpdateId`` are
dropped; the first diff applied must straddle it (``U`` <= ``lastUpdateId`` <= ``u``); every later diff's ``pu``
must equal the previous diff's ``u``. Spot's rule is one id later (its diffs have no ``pu`` and are contiguous):
drop ``u`` <= ``lastUpdateId``, the first applied has ``U`` <= ``lastUpdateId`` + 1 <= ``u``, then each ``U`` is
the previous ``u`` + 1. A recording that breaks the rule cannot give a right book, so it is a ``RecordingError``
naming the line, not a book with a hole in it.
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


class BookGap(ValueError):
    """Diffs that do not follow the snapshot or one another: the book is unknown until a new snapshot."""


@dataclass
class DepthBook:
    """One symbol's rebuild state by Binance's rule, for the recordings and the live feed alike: diffs waiting for
    the snapshot, the snapshot waiting for its straddling diff, and the last ``u`` published.

    ``spot``: spot diffs carry no ``pu``, so each must start at the previous ``u`` + 1 instead. A diff that breaks
    the rule raises :class:`BookGap` (a recording is then refused; the live feed fetches a new snapshot), an entry
    the depth schema refuses raises ``MalformedDepth``; both leave the book as it was before the diff.
    """

    symbol: str
    venue: str | None = None
    spot: bool = False
    waiting: list[tuple[dict[str, Any], int]] = field(default_factory=list)
    snapshot: tuple[dict[str, Any], int] | None = None
    last_u: int | None = None
    skipped_snapshots: int = 0

    @property
    def started(self) -> bool:
        """A snapshot was taken (it may still wait for its straddling diff)."""
        return self.snapshot is not None or self.last_u is not None

    def reset(self) -> None:
        """Forget the book: the next snapshot starts it again (a resync)."""
        self.waiting, self.snapshot, self.last_u = [], None, None

    def snapshot_fields(self, ts: int) -> dict[str, str]:
        """The pending snapshot as a depth entry stamped ``ts``."""
        assert self.snapshot is not None
        row, local = self.snapshot
        update_id = int(row["lastUpdateId"])
        fields = depth_fields(self.symbol, SNAPSHOT, ts, local, row["bids"], row["asks"], None, update_id, self.venue)
        parse_depth_entry(fields)
        return fields

    def take_snapshot(self, row: dict[str, Any], local: int) -> list[dict[str, str]]:
        """Start the book from a REST snapshot; the diffs buffered for it are applied (see :meth:`take_diff`)."""
        self.snapshot = (row, local)
        waiting, self.waiting = self.waiting, []
        out: list[dict[str, str]] = []
        for diff, diff_local in waiting:
            out.extend(self.take_diff(diff, diff_local))
        return out

    def take_diff(self, row: dict[str, Any], local: int) -> list[dict[str, str]]:
        """The depth entries ``row`` publishes: none while it waits for a snapshot or precedes it, the snapshot
        and the diff when it straddles the snapshot's ``lastUpdateId``, else the diff."""
        if not self.started:
            self.waiting.append((row, local))
            return []
        first, last = int(row["U"]), int(row["u"])
        out: list[dict[str, str]] = []
        if self.snapshot is not None:
            snapshot = self.snapshot[0]
            update_id = int(snapshot["lastUpdateId"])
            # spot's rule is one id later than futures': its diffs are contiguous (U = previous u + 1), so a diff
            # with u = lastUpdateId is in the snapshot already and one starting at lastUpdateId + 1 continues it
            covered = update_id + 1 if self.spot else update_id
            if last < covered:
                return out
            if first > covered:
                raise BookGap(
                    f"the first diff after the snapshot starts at U {first}, past its "
                    f"lastUpdateId {update_id}: updates are missing, the book cannot be rebuilt"
                )
            # the book is the snapshot's as of lastUpdateId, inside this diff: stamped no later than the diff
            stamps = [exchange_ns(row["E"])] + ([exchange_ns(snapshot["E"])] if "E" in snapshot else [])
            out.append(self.snapshot_fields(min(stamps)))
        elif self.spot and first != (self.last_u or 0) + 1:
            raise BookGap(
                f"diff U {first} is not the previous diff's u {self.last_u} + 1: a diff is missing, "
                "the book cannot be rebuilt"
            )
        elif not self.spot and int(row["pu"]) != self.last_u:
            raise BookGap(
                f"diff pu {row['pu']} is not the previous diff's u {self.last_u}: a diff is "
                "missing, the book cannot be rebuilt"
            )
        fields = depth_fields(
            row["s"], DELTA, exchange_ns(row["E"]), local, row["b"], row["a"], first, last, self.venue
        )
        parse_depth_entry(fields)
        out.append(fields)
        self.snapshot, self.last_u = None, last
        return out


def _take(
    books: dict[str, DepthBook], symbols: set[str], row: dict[str, Any], stamp: int, venue: str | None
) -> list[dict[str, str]]:
    """One diff or snapshot line of a file whose diffs are of ``symbols``: the entries it publishes."""
    if row["kind"] == SNAPSHOT:
        if len(symbols) != 1:
            raise RecordingError(
                f"a REST snapshot in a file with depth diffs of {sorted(symbols) or 'no symbol'}: whose book is it?"
            )
        symbol = next(iter(symbols))
        book = books.setdefault(symbol, DepthBook(symbol, venue))
        if book.started:
            book.skipped_snapshots += 1  # the book is already known: a later snapshot adds nothing
            return []
        return book.take_snapshot(row, stamp)
    book = books.setdefault(row["s"], DepthBook(row["s"], venue))
    return book.take_diff(row, stamp)


def read_binance_depth(paths: Sequence[Path], venue: Venue | None = None) -> list[dict[str, str]]:
    """Depth stream entries (``depth.depth_fields``) of USD-M recordings played back to back, in publication
    order. Each file holds one symbol's depth (hftbacktest's collector writes one file per symbol), so its REST
    snapshot is that symbol's; a ``*_20240809`` file continues the book of the ``*_20240808`` one."""
    out: list[dict[str, str]] = []
    books: dict[str, DepthBook] = {}
    code = None if venue is None else venue_code(venue)
    for path in map(Path, paths):
        rows, local, _ = read_stamped(path, _depth_rows)
        symbols = {as_text(row["s"], "symbol") for row in rows if row["kind"] == DELTA}
        for row, stamp in zip(rows, local.tolist(), strict=True):
            where = f"{path}: line {row['line']}"
            try:
                out.extend(_take(books, symbols, row, stamp, code))
            except BAD_LINE as exc:  # RecordingError, BookGap and MalformedDepth are ValueErrors: named by line
                raise RecordingError(f"{where}: {describe(exc)}") from None
    desc = ", ".join(map(str, paths))
    if not books:
        raise RecordingError(f"no depth diffs or REST snapshot in {desc}")
    for book in books.values():
        if not book.started:
            raise RecordingError(f"{desc}: depth diffs of {book.symbol} but no REST snapshot: the book cannot be built")
        if book.snapshot is not None:  # no diff came after the snapshot: it is the whole book
            try:
                out.append(book.snapshot_fields(exchange_ns(book.snapshot[0]["E"])))
            except MalformedDepth as exc:
                raise RecordingError(f"{desc}: {exc.reason}") from None
        log.info("%s depth: %d later snapshots not needed", book.symbol, book.skipped_snapshots)
    return out
