"""JSON that a user hands the pipeline (a profiles file, ``tune --space``, a snapshot to audit or export).

Python's ``json`` accepts what no setting can mean and fails in ways that are not one line: ``NaN`` and
``Infinity`` (which then pass every JSON Schema bound, since a comparison with NaN is false), a 400-digit integer
(an OverflowError once a float is needed), a 50,000-deep nesting (RecursionError), and a path that is a FIFO
(the read blocks forever) or ``/dev/zero`` (it never ends). Every such input is refused here, before parsing,
as a :class:`JsonInputError` that names the file or option, so that callers report it as one error line.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any

MAX_BYTES = 4 * 1024 * 1024  # a profiles file is a few KB; megabytes are a wrong file, not settings
MAX_DEPTH = 64  # profiles nest 8 deep; far below the parser's and jsonschema's recursion limits
MAX_INT = 2**63 - 1  # int64, what the simulator's arithmetic holds; a larger integer is a typo
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


class JsonInputError(ValueError):
    """User JSON that is refused; the message starts with what it came from (a file, an option)."""


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows (every setting must be finite)")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a float (every setting must be finite)")
    return value


def _int(text: str) -> int:
    # Bounded by its length before int() converts it: a 4,300-digit literal would hit Python's own limit.
    digits = text.lstrip("-")
    if len(digits) > len(str(MAX_INT)) or int(digits) > MAX_INT:
        shown = text if len(text) <= 24 else f"{text[:12]}...({len(digits)} digits)"
        raise ValueError(f"integer {shown} is out of range (at most {MAX_INT} in magnitude)")
    return int(text)


def _depth(text: str) -> int:
    """The deepest nesting of arrays and objects, strings skipped: measured before parsing, which recurses."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def parse(text: str, source: str) -> Any:
    """The JSON value of ``text``; ``source`` names it in the error (``--space``, a file path)."""
    if len(text) > MAX_BYTES:
        raise JsonInputError(f"{source}: {len(text):,} characters, more than the {MAX_BYTES:,} allowed")
    depth = _depth(text)
    if depth > MAX_DEPTH:
        raise JsonInputError(f"{source}: nested {depth} deep, more than the {MAX_DEPTH} allowed")
    try:
        return json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise JsonInputError(f"{source}: not JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
    except ValueError as exc:
        raise JsonInputError(f"{source}: {exc}") from None


def read_text(path: str | Path) -> str:
    """The text of a regular file of at most MAX_BYTES. Opened non-blocking and checked on the open descriptor,
    so that a FIFO cannot block the open or the read and a file swapped after a check is still caught."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise JsonInputError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file (a FIFO, device or socket)"
            raise JsonInputError(f"{path}: {kind}: want a JSON file")
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(MAX_BYTES + 1)  # st_size can be stale: the read itself is bounded
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise JsonInputError(f"{path}: larger than the {MAX_BYTES:,} bytes allowed")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonInputError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def load(path: str | Path) -> Any:
    """The JSON value of the file at ``path`` (named in any error)."""
    return parse(read_text(path), str(path))
