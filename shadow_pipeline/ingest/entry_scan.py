"""An XREADGROUP reply's raw bytes straight into typed tick columns, in one compiled pass.

Why: the consumer must keep up with a bare XREADGROUP+XACK loop, and the Python objects a client library makes
for a reply (a string per field) cost more than the whole pipeline after them. This pass makes no objects: it
walks the RESP bytes, matches field names, and converts numbers in place.

It takes only the easy, exact cases: an entry whose 11 required fields are all present once (with, or without, a
well-formed ``venue``), whose integers are plain digits, whose decimals have at most 15 significant digits and 22
decimals (so ``mantissa / 10**k`` is the correctly rounded value, exactly what ``float()`` gives), and whose
symbol and side are well formed. Every
other entry is marked *irregular* and keeps its byte span, so the caller decodes it and parses it with the
full rules of ``domain.ticks`` (which name what is wrong). Both paths therefore give the same result.

Every entry's id (``<ms>-<seq>``, Redis's clock at XADD) is copied out, and its millisecond part converted to
``ts_broker`` (ns) in the same pass, for regular and irregular entries alike: the broker's arrival time of a tick
is a number from here on, so nothing downstream parses ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pyarrow as pa

from shadow_pipeline.domain.market.instruments import instrument_key
from shadow_pipeline.domain.market.ticks import ENTRY_FIELDS, FIELDS, VENUE_FIELD
from shadow_pipeline.redis_io.raw_reply import header, value_end

_NAMES = np.frombuffer("".join(ENTRY_FIELDS).encode(), dtype=np.uint8)
_NAME_ENDS = np.cumsum([len(name) for name in ENTRY_FIELDS]).astype(np.int64)
_FIELD = {name: i for i, name in enumerate(ENTRY_FIELDS)}
_REQUIRED = len(FIELDS)  # ENTRY_FIELDS starts with the required fields
_VENUE = _FIELD[VENUE_FIELD]
_INTS = np.array([_FIELD[name] for name in ("seq", "ts_server", "ts_local")], dtype=np.int64)
_FLOATS = np.array([_FIELD[n] for n in ("bid", "ask", "bid_qty", "ask_qty", "last_qty")], dtype=np.int64)
_SYMBOL, _LAST_PX, _LAST_SIDE = _FIELD["symbol"], _FIELD["last_px"], _FIELD["last_side"]
_POW10 = np.array([float(10**k) for k in range(23)])  # exact doubles
_MAX_MANTISSA = 10**15  # below 2**53, so the mantissa and 10**k are exact doubles
_MAX_SYMBOLS = 256
NS_PER_MS = 1_000_000
SIDE_NAMES = ("", "buy", "sell")  # side codes 0, 1, 2 (0: a quote tick)

OK, EMPTY, ERROR, UNEXPECTED = 0, 1, 2, 3
READ, CLAIM, RANGE = 0, 1, 2  # reply shapes: XREADGROUP (one stream), XAUTOCLAIM, XRANGE / XREVRANGE


@dataclass(frozen=True)
class ScannedBatch:
    """Columns of one reply, a row per entry in delivery order; see the module docstring for ``regular``."""

    status: int
    count: int
    id_bytes: np.ndarray  # ids back to back, split at id_offsets (n + 1)
    id_offsets: np.ndarray
    ts_broker: np.ndarray  # int64 ns: each id's millisecond part * NS_PER_MS (every row, regular or not)
    regular: np.ndarray  # bool: typed columns below are valid for this row
    fields_at: np.ndarray  # byte position of the entry's first field token, for decoding irregular rows
    field_count: np.ndarray  # tokens in the entry's field list; -1 when the entry was deleted (nil fields)
    symbol_code: np.ndarray
    symbols: list[str]  # code -> instrument key (symbol and venue, ``domain.market.instruments``)
    ints: np.ndarray  # (n, 3) seq, ts_server, ts_local
    floats: np.ndarray  # (n, 5) bid, ask, bid_qty, ask_qty, last_qty
    last_px: np.ndarray  # NaN when empty (a quote tick)
    side_code: np.ndarray  # index into SIDE_NAMES
    cursor: str = ""  # XAUTOCLAIM: where the next call starts ("0-0": the scan is complete); "" otherwise


@numba.njit(cache=True)
def _uint(buf: np.ndarray, start: int, length: int) -> int:
    """A positive integer of plain digits that fits int64 as ``domain.ticks`` accepts it; -1 otherwise."""
    if length < 1 or length > 19 or (length == 19 and not (49 <= buf[start] <= 56)):
        return -1
    value = 0
    for i in range(start, start + length):
        digit = buf[i] - 48
        if digit < 0 or digit > 9:
            return -1
        value = value * 10 + digit
    return value if value > 0 else -1


@numba.njit(cache=True)
def _id_millis(buf: np.ndarray, start: int, length: int) -> int:
    """The digits before the ``-`` of an entry id. Redis writes ids itself, always ``<ms>-<seq>`` in plain digits,
    so there is nothing to validate (``deliveries.broker_times`` is the same rule on decoded ids)."""
    value = 0
    for i in range(start, start + length):
        if buf[i] == 45:  # '-'
            break
        value = value * 10 + (buf[i] - 48)
    return value


@numba.njit(cache=True)
def _decimal(buf: np.ndarray, start: int, length: int) -> tuple[float, bool]:
    """``[-]digits[.digits]`` (``5.`` and ``.5`` too, as ``float()``) converted exactly; (nan, False) otherwise."""
    i, end = start, start + length
    negative = i < end and buf[i] == 45
    if negative:
        i += 1
    mantissa, decimals, digits, dot = 0, 0, 0, False
    while i < end:
        c = buf[i]
        if 48 <= c <= 57:
            mantissa = mantissa * 10 + (c - 48)
            digits += 1
            if dot:
                decimals += 1
            if mantissa >= _MAX_MANTISSA:
                return np.nan, False
        elif c == 46 and not dot:
            dot = True
        else:
            return np.nan, False
        i += 1
    if digits == 0 or decimals > 22:
        return np.nan, False
    value = mantissa / _POW10[decimals]
    return (-value if negative else value), True


@numba.njit(cache=True)
def _same(buf: np.ndarray, a: int, b: int, length: int) -> bool:
    for k in range(length):  # noqa: SIM110 (numba compiles a loop, not a generator)
        if buf[a + k] != buf[b + k]:
            return False
    return True


@numba.njit(cache=True)
def _field_index(buf: np.ndarray, start: int, length: int, names: np.ndarray, name_ends: np.ndarray) -> int:
    begin = 0
    for f in range(len(name_ends)):
        if name_ends[f] - begin == length:
            match = True
            for k in range(length):
                if buf[start + k] != names[begin + k]:
                    match = False
                    break
            if match:
                return f
        begin = name_ends[f]
    return -1


@numba.njit(cache=True)
def _symbol_ok(buf: np.ndarray, start: int, length: int) -> bool:
    if length < 1 or length > 24:
        return False
    for i in range(start, start + length):
        c = buf[i]
        if not (48 <= c <= 57 or 65 <= c <= 90):
            return False
    return True


@numba.njit(cache=True)
def _venue_ok(buf: np.ndarray, start: int, length: int) -> bool:
    """``[a-z][a-z0-9]{0,15}-[a-z][a-z0-9]{0,15}``, the venue rule of ``domain.market.instruments``."""
    dash = -1
    for i in range(start, start + length):
        if buf[i] == 45 and dash < 0:  # '-'
            dash = i
        elif not (97 <= buf[i] <= 122 or (48 <= buf[i] <= 57 and i != start and i != dash + 1)):
            return False
    return start < dash < start + length - 1 and dash - start <= 16 and start + length - dash - 1 <= 16


@numba.njit(cache=True)
def _same_instrument(buf: np.ndarray, known: np.ndarray, spans: np.ndarray) -> bool:
    """Whether the (symbol, venue) byte spans ``spans`` hold what ``known`` points at (venue length -1: none)."""
    for k in (0, 2):
        if known[k + 1] != spans[k + 1]:
            return False
        if spans[k + 1] > 0 and not _same(buf, known[k], spans[k], spans[k + 1]):
            return False
    return True


@numba.njit(cache=True)
def _side(buf: np.ndarray, start: int, length: int) -> int:
    if length == 0:
        return 0
    if length == 3 and buf[start] == 98 and buf[start + 1] == 117 and buf[start + 2] == 121:  # buy
        return 1
    if length == 4 and buf[start] == 115 and buf[start + 1] == 101 and buf[start + 2] == 108 and buf[start + 3] == 108:
        return 2
    return -1


@numba.njit(cache=True)
def _entries_header(buf: np.ndarray) -> tuple[int, int, int]:
    """(status, entry count, position of the first entry) for an XREADGROUP reply of one stream."""
    kind = buf[0]
    if kind == 45:  # '-' an error reply
        return ERROR, 0, 0
    if kind == 95:  # '_' RESP3 null: nothing within BLOCK
        return EMPTY, 0, 0
    count, pos = header(buf, 0, len(buf))
    if count <= 0 and (kind == 42 or kind == 37):
        return EMPTY, 0, 0
    if count != 1:
        return UNEXPECTED, 0, 0
    if kind == 42:  # RESP2: [[stream, entries]]
        if buf[pos] != 42:
            return UNEXPECTED, 0, 0
        _, pos = header(buf, pos, len(buf))
    elif kind != 37:  # RESP3: {stream: entries}
        return UNEXPECTED, 0, 0
    pos = value_end(buf, pos)  # the stream's name
    if buf[pos] != 42:
        return UNEXPECTED, 0, 0
    count, pos = header(buf, pos, len(buf))
    return OK, max(count, 0), pos


@numba.njit(cache=True)
def _reply_header(buf: np.ndarray, kind: int) -> tuple[int, int, int, int, int, int, int]:
    """(status, entries, position of the first entry, deleted ids, position of the first, cursor position, cursor
    length) for a reply of shape ``kind`` (READ, CLAIM or RANGE)."""
    if kind == READ:
        status, n, pos = _entries_header(buf)
        return status, n, pos, 0, 0, 0, 0
    if buf[0] == 45:  # '-' an error reply
        return ERROR, 0, 0, 0, 0, 0, 0
    if buf[0] != 42:
        return UNEXPECTED, 0, 0, 0, 0, 0, 0
    count, pos = header(buf, 0, len(buf))
    if kind == RANGE:  # [[id, fields], ...]
        return OK, max(count, 0), pos, 0, 0, 0, 0
    # XAUTOCLAIM: [cursor, [[id, fields], ...], [deleted id, ...]] (the third element since Redis 7)
    if count < 2 or buf[pos] != 36:
        return UNEXPECTED, 0, 0, 0, 0, 0, 0
    cursor_length, cursor_at = header(buf, pos, len(buf))
    pos = cursor_at + cursor_length + 2
    if buf[pos] != 42:
        return UNEXPECTED, 0, 0, 0, 0, 0, 0
    entries_at = pos
    n, pos = header(buf, pos, len(buf))
    deleted, deleted_at = 0, 0
    if count >= 3:
        after = value_end(buf, entries_at)
        if buf[after] != 42:
            return UNEXPECTED, 0, 0, 0, 0, 0, 0
        deleted, deleted_at = header(buf, after, len(buf))
    return OK, max(n, 0), pos, max(deleted, 0), deleted_at, cursor_at, cursor_length


@numba.njit(cache=True)
def _take_id(
    buf: np.ndarray,
    pos: int,
    length: int,
    row: int,
    id_bytes: np.ndarray,
    id_offsets: np.ndarray,
    ts_broker: np.ndarray,
) -> np.ndarray:
    """Append the entry id at ``buf[pos:pos+length]`` as row ``row`` (``id_bytes`` grown when full, returned)
    and its broker time, the id's milliseconds."""
    if id_offsets[row] + length > len(id_bytes):
        grown = np.empty(2 * len(id_bytes) + length, np.uint8)
        grown[: id_offsets[row]] = id_bytes[: id_offsets[row]]
        id_bytes = grown
    id_bytes[id_offsets[row] : id_offsets[row] + length] = buf[pos : pos + length]
    id_offsets[row + 1] = id_offsets[row] + length
    ts_broker[row] = _id_millis(buf, pos, length) * NS_PER_MS
    return id_bytes


@numba.njit(cache=True, nogil=True)
def _scan(  # type: ignore[no-untyped-def]
    buf: np.ndarray, kind: int, names: np.ndarray, name_ends: np.ndarray, ints_at: np.ndarray, floats_at: np.ndarray
):
    status, n, pos, deleted, deleted_at, cursor_at, cursor_length = _reply_header(buf, kind)
    total = n + deleted
    id_offsets = np.zeros(total + 1, np.int64)
    id_bytes = np.empty(total * 24, np.uint8)
    ts_broker = np.zeros(total, np.int64)
    regular = np.zeros(total, np.bool_)
    fields_at = np.zeros(total, np.int64)
    field_count = np.zeros(total, np.int64)
    symbol_code = np.zeros(total, np.int64)
    symbol_at = np.zeros((_MAX_SYMBOLS, 4), np.int64)  # symbol start, length, venue start, length (-1: none)
    spans = np.zeros(4, np.int64)
    symbols = 0
    ints = np.zeros((total, len(ints_at)), np.int64)
    floats = np.zeros((total, len(floats_at)), np.float64)
    last_px = np.full(total, np.nan)
    side_code = np.zeros(total, np.int64)
    value_at = np.zeros((len(name_ends), 2), np.int64)
    for row in range(n):
        pos = header(buf, pos, len(buf))[1]  # '*2': [id, fields]
        length, pos = header(buf, pos, len(buf))
        id_bytes = _take_id(buf, pos, length, row, id_bytes, id_offsets, ts_broker)
        pos += length + 2
        count, after = -1, pos
        if buf[pos] == 42:
            count, after = header(buf, pos, len(buf))
        if count < 0:  # nil fields (RESP2 '*-1', RESP3 '_'): the entry was deleted (trimmed) while pending
            field_count[row] = -1
            pos = value_end(buf, pos)
            continue
        pos = after
        field_count[row], fields_at[row] = count, pos
        value_at[:, 0] = -1
        ok = count == 2 * _REQUIRED or count == 2 * len(name_ends)
        for _ in range(count // 2):
            if buf[pos] != 36:
                ok = False
                break
            key_length, key_at = header(buf, pos, len(buf))
            pos = key_at + key_length + 2
            if buf[pos] != 36:
                ok = False
                break
            length, value_pos = header(buf, pos, len(buf))
            pos = value_pos + length + 2
            f = _field_index(buf, key_at, key_length, names, name_ends)
            if f < 0 or value_at[f, 0] >= 0:
                ok = False
                continue
            value_at[f, 0], value_at[f, 1] = value_pos, length
        for f in range(_REQUIRED):
            ok = ok and value_at[f, 0] >= 0
        if not ok or count % 2:
            pos = fields_at[row]
            for _ in range(count):
                pos = value_end(buf, pos)
            continue
        for k in range(len(ints_at)):
            value = _uint(buf, value_at[ints_at[k], 0], value_at[ints_at[k], 1])
            ok = ok and value > 0
            ints[row, k] = value
        for k in range(len(floats_at)):
            number, parsed = _decimal(buf, value_at[floats_at[k], 0], value_at[floats_at[k], 1])
            ok = ok and parsed
            floats[row, k] = number
        if value_at[_LAST_PX, 1] > 0:
            number, parsed = _decimal(buf, value_at[_LAST_PX, 0], value_at[_LAST_PX, 1])
            ok = ok and parsed
            last_px[row] = number
        side = _side(buf, value_at[_LAST_SIDE, 0], value_at[_LAST_SIDE, 1])
        side_code[row] = side
        spans[0], spans[1] = value_at[_SYMBOL, 0], value_at[_SYMBOL, 1]
        venue_given = value_at[_VENUE, 0] >= 0
        spans[2], spans[3] = value_at[_VENUE, 0], value_at[_VENUE, 1] if venue_given else -1
        code = -1
        if row > 0 and regular[row - 1] and _same_instrument(buf, symbol_at[symbol_code[row - 1]], spans):
            code = symbol_code[row - 1]
        if code < 0 and _symbol_ok(buf, spans[0], spans[1]) and (spans[3] < 0 or _venue_ok(buf, spans[2], spans[3])):
            for known in range(symbols):
                if _same_instrument(buf, symbol_at[known], spans):
                    code = known
                    break
            if code < 0 and symbols < _MAX_SYMBOLS:
                code = symbols
                symbol_at[code] = spans
                symbols += 1
        symbol_code[row] = code
        regular[row] = ok and side >= 0 and code >= 0
    pos = deleted_at
    for row in range(n, total):  # XAUTOCLAIM's deleted ids: claimed, but trimmed from the stream meanwhile
        length, pos = header(buf, pos, len(buf))
        id_bytes = _take_id(buf, pos, length, row, id_bytes, id_offsets, ts_broker)
        field_count[row] = -1
        pos += length + 2
    return (
        status,
        total,
        id_bytes[: id_offsets[total]],
        id_offsets,
        ts_broker,
        regular,
        fields_at,
        field_count,
        symbol_code,
        symbol_at[:symbols].copy(),
        ints,
        floats,
        last_px,
        side_code,
        cursor_at,
        cursor_length,
    )


def _text(reply: np.ndarray, start: int, length: int) -> str:
    return bytes(reply[start : start + length]).decode()


def scan(reply: np.ndarray, kind: int = READ) -> ScannedBatch:
    """Columns of a reply's raw RESP bytes: XREADGROUP of one stream (``READ``), XAUTOCLAIM (``CLAIM``: its deleted
    ids become rows without fields, as XREADGROUP shows a deleted pending entry) or XRANGE (``RANGE``);
    ``status`` says if it was one."""
    (status, count, id_bytes, id_offsets, ts_broker, regular, fields_at, field_count, codes, symbol_at, ints,
     floats, last_px, side_code, cursor_at, cursor_length) = _scan(
        reply, kind, _NAMES, _NAME_ENDS, _INTS, _FLOATS)  # fmt: skip
    symbols = [
        instrument_key(_text(reply, start, length), _text(reply, at, size) if size >= 0 else None)
        for start, length, at, size in symbol_at.tolist()
    ]
    cursor = bytes(reply[cursor_at : cursor_at + cursor_length]).decode("ascii") if kind == CLAIM else ""
    return ScannedBatch(
        int(status), int(count), id_bytes, id_offsets, ts_broker, regular, fields_at, field_count, codes,
        symbols, ints, floats, last_px, side_code, cursor,
    )  # fmt: skip


@numba.njit(cache=True)
def _token_spans(buf: np.ndarray, pos: int, count: int) -> np.ndarray:
    """(start, length) of each of ``count`` tokens from ``pos``: a bulk string's payload, else its line's text."""
    spans = np.zeros((count, 2), np.int64)
    for k in range(count):
        if buf[pos] == 36:  # '$': a bulk string
            length, start = header(buf, pos, len(buf))
            spans[k, 0], spans[k, 1] = start, length
            pos = start + length + 2
        else:
            end = value_end(buf, pos)
            spans[k, 0], spans[k, 1] = pos + 1, end - 2 - (pos + 1)
            pos = end
    return spans


def field_bytes(reply: np.ndarray, batch: ScannedBatch, row: int) -> list[bytes] | None:
    """One entry's flat field list ``[k, v, k, v, ...]``, each exactly the bytes Redis holds (None when the entry
    was deleted)."""
    count = int(batch.field_count[row])
    if count < 0:
        return None
    view = memoryview(reply.data)
    return [
        view[start : start + length].tobytes()
        for start, length in _token_spans(reply, batch.fields_at[row], count).tolist()
    ]


def entry_ids(batch: ScannedBatch) -> np.ndarray:
    """The entry ids as an object array of str (what XACK and the landing zone use)."""
    offsets = pa.py_buffer(batch.id_offsets.astype(np.int32))
    ids = pa.StringArray.from_buffers(batch.count, offsets, pa.py_buffer(batch.id_bytes))
    return ids.to_numpy(zero_copy_only=False)
