"""The dead-letter stream (``<stream>:dlq``): writing records losslessly, reading them back, attributing them.

A record (docs/ingest.md, "Poison entries") holds the original entry byte for byte, whatever it held::

    orig_id    <the entry's id in the tick stream>
    stream     <the tick stream>
    reason     <the first tick rule it broke, or why it was dead-lettered otherwise>
    partition  <hour>|<symbol> the entry's first symbol (its instrument key, with a readable venue) and ts_server
               place it in, or "" (unreadable, not sane)
    fields     <how many field/value pairs the entry had; -1: its data was gone from the stream>
    original   "<name>:<value> <name>:<value> ...": base64 of each field name's and value's bytes, in order

Base64 (RFC 4648, standard alphabet, padded; it has neither ``:`` nor space) keeps every record plain ASCII, so
any client, decoding or not, can read the stream, and a field name given twice or bytes that are not UTF-8
survive exactly; :func:`original_fields` turns a record back into the entry's ``[(name, value), ...]`` bytes.
One ``original`` value rather than a field per name keeps a record small and cheap to write (6 fields, not 25).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import redis

from shadow_pipeline.domain.market.instruments import SYMBOL_PATTERN, VENUE_PATTERN, instrument_key
from shadow_pipeline.domain.market.ticks import VENUE_FIELD, sane_ts_server
from shadow_pipeline.domain.market.windows import hour_keys
from shadow_pipeline.ingest.entry_scan import ERROR, OK, RANGE, entry_ids, field_bytes, scan
from shadow_pipeline.redis_io.raw_reply import error_of, read_raw

UNATTRIBUTED = ("", "")  # a dead letter without a readable symbol or a sane exchange time
GONE = -1  # ``fields`` of a record whose entry's data was no longer in the stream
# the tick rules' text tests (domain.ticks), on bytes
_SYMBOL = re.compile(SYMBOL_PATTERN.pattern.encode())
_VENUE = re.compile(VENUE_PATTERN.pattern.encode())
_VENUE_NAME = VENUE_FIELD.encode()
_DIGITS = re.compile(rb"[0-9]{1,19}")


def record(orig_id: str, stream: str, reason: str, flat: Sequence[bytes] | None) -> dict[str, str]:
    """The dead-letter record of one entry; ``flat`` is its ``[name, value, ...]`` bytes (None: data gone)."""
    if flat is None:
        return {"orig_id": orig_id, "stream": stream, "reason": reason, "partition": "", "fields": str(GONE)}
    encode = base64.b64encode
    pairs = len(flat) // 2
    return {
        "orig_id": orig_id,
        "stream": stream,
        "reason": reason,
        "partition": "|".join(_attribution(flat) or ()),
        "fields": str(pairs),
        "original": " ".join(
            (encode(flat[2 * i]) + b":" + encode(flat[2 * i + 1])).decode("ascii") for i in range(pairs)
        ),
    }


def _text(value: bytes | str | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


def original_fields(letter: Mapping[bytes, bytes] | Mapping[str, str]) -> list[tuple[bytes, bytes]] | None:
    """A record's original ``(name, value)`` bytes in the entry's order; None when the data was gone or the record
    is not one this module wrote (an older ``field.<name>`` record, or anything else someone added)."""
    text = {_text(k): _text(v) for k, v in letter.items()}
    try:
        pairs = int(text.get("fields", ""))
        if pairs < 0:
            return None
        tokens = text["original"].split(" ") if pairs else []
        if len(tokens) != pairs:
            return None
        out = []
        for token in tokens:
            name, value = token.split(":")
            out.append((base64.b64decode(name, validate=True), base64.b64decode(value, validate=True)))
        return out
    except (KeyError, ValueError, binascii.Error):
        return None


def _attribution(flat: Sequence[bytes]) -> tuple[str, str] | None:
    """(hour key, instrument key) of an entry's first ``symbol``, ``venue`` and ``ts_server`` when they are readable
    (no venue: the default one) and the time is sane (docs/tick-schema.md); None otherwise."""
    found: dict[bytes, bytes] = {}
    for name, value in zip(flat[0::2], flat[1::2], strict=False):
        if name in (b"symbol", b"ts_server", _VENUE_NAME):
            found.setdefault(name, value)
    symbol, ts, venue = found.get(b"symbol", b""), found.get(b"ts_server", b""), found.get(_VENUE_NAME)
    if not _SYMBOL.fullmatch(symbol) or not _DIGITS.fullmatch(ts):
        return None
    if venue is not None and not _VENUE.fullmatch(venue):
        return None
    number = int(ts)
    if number > np.iinfo(np.int64).max or not sane_ts_server(np.array([number], dtype=np.int64))[0]:
        return None
    key = instrument_key(symbol.decode("ascii"), None if venue is None else venue.decode("ascii"))
    return str(hour_keys(np.array([number], dtype=np.int64))[0]), key


def _partition_of(letter: Mapping[bytes, bytes]) -> tuple[str, str]:
    """Where a record counts: its ``partition`` field, else (records of other writers) what its fields say."""
    if b"partition" in letter:
        hour, _, symbol = letter[b"partition"].decode("utf-8", errors="replace").partition("|")
        return (hour, symbol) if hour and symbol else UNATTRIBUTED
    fields = original_fields(letter)
    if fields is not None:
        flat = [x for pair in fields for x in pair]
    else:  # records of earlier versions kept the fields as text, ``field.<name>``
        flat = [
            x
            for name in (b"symbol", b"ts_server")
            if b"field." + name in letter
            for x in (name, letter[b"field." + name])
        ]
    return _attribution(flat) or UNATTRIBUTED


def dead_letters_by_partition(client: redis.Redis, dead_letter_stream: str, chunk: int = 10_000) -> Counter:
    """Dead letters per (hour key, symbol), by the original entry's ``symbol`` and ``ts_server`` fields.

    Never raises on what a record holds: one whose symbol or exchange time is unreadable, or whose time is outside
    the sane range (a 2262 or a far-future hour is no partition), counts as UNATTRIBUTED. Reads with raw replies,
    so bytes that are not UTF-8 (in records someone else added) cannot stop it.
    """
    counts: Counter = Counter()
    start = "-"
    while True:
        entries = _xrange_bytes(client, dead_letter_stream, start, chunk)
        if not entries:
            return counts
        counts.update(_partition_of(letter) for _, letter in entries)
        start = f"({entries[-1][0]}"
        if len(entries) < chunk:
            return counts


def _xrange_bytes(client: redis.Redis, stream: str, start: str, count: int) -> list[tuple[str, dict[bytes, bytes]]]:
    ids, flats = read_range_bytes(client, stream, start, count)
    return [(i, dict(zip(f[0::2], f[1::2], strict=False))) for i, f in zip(ids, flats, strict=True)]


def read_range_bytes(client: redis.Redis, stream: str, start: str, count: int) -> tuple[list[str], list]:
    """XRANGE as raw bytes: the ids and each entry's ``[name, value, ...]`` bytes (no tick parsing)."""
    reply = read_raw(client, "XRANGE", stream, start, "+", "COUNT", count)
    batch = scan(reply, RANGE)
    if batch.status == ERROR:
        raise error_of(reply)
    if batch.status != OK:
        return [], []
    return entry_ids(batch).tolist(), [field_bytes(reply, batch, row) or [] for row in range(batch.count)]
