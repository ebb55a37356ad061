"""Recorders' files of ``<local receive timestamp> <raw frame>`` lines (hftbacktest, the Bybit re-layout).

The timestamp's unit (ms, us or ns) is detected per file and converted to ns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shadow_pipeline.feed.readers.files import BAD_LINE, Lines, RecordingError, Shape, describe, shape_of

RowsOf = Callable[[str, int], Sequence[dict[str, Any]]]  # (frame text, line number) -> rows
_FORMAT = "expected '<local timestamp> <frame>'"


@dataclass(frozen=True)
class _Unit:
    name: str
    digits: int
    to_ns: int


# An epoch time from 2001-09-09 to 2262-04-11 has exactly this many digits in each unit, so a stamp's length
# names its unit (the upper end is where int64 nanoseconds end).
_UNITS = {unit.digits: unit for unit in (_Unit("ms", 13, 1_000_000), _Unit("us", 16, 1_000), _Unit("ns", 19, 1))}
_MAX_NS = np.uint64(np.iinfo(np.int64).max)


def _stamp_error(path: Path, line: int, stamp: bytes, unit: _Unit | None) -> RecordingError:
    """Why ``stamp`` cannot be a local time in ``unit`` (``None``: in any unit)."""
    shown = stamp[:40].decode(errors="replace")
    where = f"{path}: line {line}"
    if not stamp.isdigit():
        return RecordingError(f"{where}: {_FORMAT}, got stamp {shown!r}")
    other = _UNITS.get(len(stamp))
    if unit is None or other is None:
        return RecordingError(
            f"{where}: local timestamp {shown} fits no unit (13-digit ms, 16-digit us or 19-digit ns, "
            "2001-09-09 to 2262-04-11)"
        )
    return RecordingError(
        f"{where}: local timestamp {shown} is in {other.name} but the file starts in {unit.name}: "
        "one file must keep one unit"
    )


def _raise_at_first(odd: np.ndarray, stamps: list[bytes], path: Path, unit: _Unit | None) -> None:
    if odd.any():
        index = int(np.argmax(odd))
        raise _stamp_error(path, index + 1, stamps[index], unit)


def _local_ns(stamps: list[bytes], path: Path) -> tuple[np.ndarray, str]:
    """Every line's local stamp in ns, and the file's unit, decided by the first stamp's digit count.

    Recorders differ (hftbacktest's earlier Python collector wrote microseconds, its current one nanoseconds),
    and a stamp read in the wrong unit silently shrinks or stretches market time 1000-fold. The other stamps are
    checked against the first one's unit column-wise, lengths first so that a stray long "stamp" never sizes a
    text array.
    """
    if not stamps:
        return np.empty(0, dtype=np.int64), "none"
    unit = _UNITS.get(len(stamps[0])) if stamps[0].isdigit() else None
    if unit is None:
        raise _stamp_error(path, 1, stamps[0], None)
    _raise_at_first(np.fromiter(map(len, stamps), dtype=np.intp, count=len(stamps)) != unit.digits, stamps, path, unit)
    column = np.array(stamps, dtype=f"S{unit.digits}")
    _raise_at_first(~np.char.isdigit(column), stamps, path, unit)
    ns = column.astype(np.uint64) * np.uint64(unit.to_ns)  # uint64: 19 digits times the factor cannot wrap
    _raise_at_first(ns > _MAX_NS, stamps, path, None)
    return ns.astype(np.int64), unit.name


def _refuse_other_shapes(lines: Lines, line: bytes) -> None:
    """A file of another kind is named for what it is at line 1, not after reading all of it."""
    shape = shape_of(line)
    if shape is Shape.STAMPED:
        return
    stamp = line.partition(b" ")[0]
    if shape is Shape.UNKNOWN and stamp.isdigit():
        raise lines.error(_FORMAT)
    hint = "" if shape is Shape.UNKNOWN else f" (this is {shape.value}: use --source bybit)"
    raise lines.error(f"{_FORMAT}, got {line[:40].decode(errors='replace')!r}{hint}")


def read_stamped(path: Path, rows_of: RowsOf) -> tuple[list[dict[str, Any]], np.ndarray, str]:
    """``rows_of(frame, line)`` for each line, those rows' local receive times in ns, and the file's stamp unit.

    Stamps are collected as text and converted once at the end (see ``_local_ns``), so the per-line work is only
    the split and the reader's own dispatch.
    """
    rows: list[dict[str, Any]] = []
    line_of_row: list[int] = []
    stamps: list[bytes] = []
    with Lines(path) as lines:
        try:
            for line in lines:
                if lines.number == 1:
                    _refuse_other_shapes(lines, line)
                stamp, _, frame = line.partition(b" ")
                if not frame.strip():
                    raise lines.error(_FORMAT)
                stamps.append(stamp)
                for row in rows_of(frame.decode(), lines.number):
                    rows.append(row)
                    line_of_row.append(lines.number - 1)
        except RecordingError:
            raise
        except BAD_LINE as exc:
            raise lines.error(describe(exc)) from None
        if not stamps:
            raise RecordingError(f"{path}: no lines in the {lines.container}")
    local, unit = _local_ns(stamps, path)
    return rows, local[np.asarray(line_of_row, dtype=np.intp)], unit
