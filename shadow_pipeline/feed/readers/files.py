"""Opening a recording whatever a user points at: the container is told by content, lines are bounded.

Users pass archives by hand, so a name says little (a ``.gz`` that is a zip, a CSV passed as a recording). The
first bytes decide the container (zip, gzip or plain text) and the first line the shape, and every failure
becomes one ``RecordingError`` naming the file and the line, never a traceback.
"""

from __future__ import annotations

import gzip
import io
import json
import stat
import zipfile
import zlib
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

MAX_LINE_BYTES = 1 << 20  # 20 times the largest frame recorded (a 1000-level REST depth snapshot)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip
_GZIP_MAGIC = b"\x1f\x8b"
_TRADES_HEADER = b"timestamp,symbol,side,size,price"
# What a malformed line raises inside a reader's parsing (json, int/float conversion, field access); json raises
# RecursionError on deep nesting, int() OverflowError on an infinite float.
BAD_LINE = (ValueError, KeyError, TypeError, IndexError, AttributeError, RecursionError, OverflowError)


class RecordingError(ValueError):
    """A recording file that is missing or not in the expected format."""


class Shape(StrEnum):
    """What a recording's first line shows."""

    STAMPED = "<local timestamp> <frame> lines"
    JSON_LINES = "JSON lines without a receive stamp"
    BYBIT_TRADES = "a Bybit trade CSV"
    UNKNOWN = "an unknown format"


def describe(exc: BaseException) -> str:
    """The reason a line could not be read, in a user's words rather than Python's."""
    if isinstance(exc, json.JSONDecodeError):
        return f"not JSON ({exc.msg} at character {exc.pos + 1})"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start + 1})"
    if isinstance(exc, KeyError):
        return f"missing field {exc.args[0]!r}"
    if isinstance(exc, RecursionError):
        return "JSON nested too deep"
    if isinstance(exc, ValueError | OverflowError):
        return str(exc)
    return f"unexpected message shape ({exc})"


def _checked(path: Path) -> None:
    """A FIFO or device is refused by its type, before any open that could block on it."""
    try:
        mode = path.stat()
    except FileNotFoundError:
        raise RecordingError(f"recording not found: {path}") from None
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read: {exc.strerror}") from None
    if stat.S_ISDIR(mode.st_mode):
        raise RecordingError(f"{path}: a folder, not a recording file")
    if not stat.S_ISREG(mode.st_mode):
        raise RecordingError(f"{path}: not a regular file")
    if mode.st_size == 0:
        raise RecordingError(f"{path}: empty file")


class Lines:
    """A recording's lines as bytes, from a zip of one member, a gzip or plain text; ``number`` is the current
    line, for errors. Use as a context manager; ``error`` builds the one-line refusal for the current line."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.number = 0
        self.container = ""
        self._handle: BinaryIO | None = None
        self._zip: zipfile.ZipFile | None = None

    def error(self, reason: str, number: int | None = None) -> RecordingError:
        return RecordingError(f"{self.path}: line {self.number if number is None else number}: {reason}")

    def __enter__(self) -> Lines:
        _checked(self.path)
        try:
            with self.path.open("rb") as probe:
                magic = probe.read(4)
            if magic.startswith(_ZIP_MAGIC):
                self.container, self._handle = "zip", self._open_member()
            elif magic.startswith(_GZIP_MAGIC):
                self.container = "gzip"
                # BufferedReader's C readline; GzipFile's own is Python-level, and a line is read per tick.
                self._handle = io.BufferedReader(gzip.open(self.path, "rb"))
            else:
                self.container, self._handle = "text", self.path.open("rb")
        except OSError as exc:
            self.close()
            raise RecordingError(f"{self.path}: cannot read: {exc}") from None
        return self

    def _open_member(self) -> BinaryIO:
        """The zip's one file: Bybit's daily archives hold exactly one ``.data`` member."""
        try:
            self._zip = zipfile.ZipFile(self.path)
            members = [info for info in self._zip.infolist() if not info.is_dir()]
            if len(members) != 1:
                names = ", ".join(info.filename for info in members[:3]) + (", ..." if len(members) > 3 else "")
                found = f"{len(members)} files ({names})" if members else "no file"
                raise RecordingError(f"{self.path}: a zip with {found}: expected exactly one")
            # ZipExtFile's readline is Python-level too
            return io.BufferedReader(self._zip.open(members[0]))  # type: ignore[type-var]
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError) as exc:
            self.close()  # RuntimeError: encrypted; NotImplementedError: an unknown compression method
            raise RecordingError(f"{self.path}: not a readable zip: {exc}") from None
        except RecordingError:
            self.close()
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        for resource in (self._handle, self._zip):
            if resource is not None:
                resource.close()
        self._handle = self._zip = None

    def __iter__(self) -> Lines:
        return self

    def __next__(self) -> bytes:
        assert self._handle is not None, "Lines is read inside its with block"
        try:
            line = self._handle.readline(MAX_LINE_BYTES + 1)
        except (EOFError, OSError, zlib.error, zipfile.BadZipFile) as exc:
            # EOFError: a gzip cut short; BadGzipFile (an OSError): trailing junk; BadZipFile: a bad CRC
            raise self.error(
                f"cannot decompress the {self.container} ({exc}): truncated or corrupt?", self.number + 1
            ) from None
        if not line:
            raise StopIteration
        self.number += 1
        if len(line) > MAX_LINE_BYTES:
            raise self.error(f"longer than {MAX_LINE_BYTES:,} bytes: not a recording line")
        return line


def shape_of(line: bytes) -> Shape:
    """What a first line looks like, so that a file of another kind is named as such, not as a bad line."""
    stamp, _, rest = line.partition(b" ")
    if stamp.isdigit() and rest.strip():
        return Shape.STAMPED
    if line.startswith(_TRADES_HEADER):
        return Shape.BYBIT_TRADES
    if line.lstrip().startswith(b"{"):
        return Shape.JSON_LINES
    return Shape.UNKNOWN


def first_shape(path: Path) -> Shape:
    with Lines(path) as lines:
        for line in lines:
            return shape_of(line)
    raise RecordingError(f"{path}: no lines in the {lines.container}")
