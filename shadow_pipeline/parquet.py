"""How the project writes Parquet: the landing zone and the asset store share one layout.

Dictionary encoding pays only on text columns with few distinct values (symbol, side, profile, status). On
numbers, timestamps and entry ids, whose values hardly repeat, Parquet builds the dictionary, finds it too
large and falls back, which made writing a tick partition about twice as slow and its file larger.

A frame's ``attrs`` (for example a partition's run notes) travel in the file's key-value metadata as JSON, so
what describes a whole partition is written once, not repeated on every row.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

UNIQUE_TEXT_COLUMNS = frozenset({"entry_id"})  # one value per row: never worth a dictionary
ATTRS_KEY = b"shadow_pipeline.attrs"


def write_frame(frame: pd.DataFrame, sink: str | IO[bytes]) -> None:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if frame.attrs:
        table = table.replace_schema_metadata(
            {**(table.schema.metadata or {}), ATTRS_KEY: json.dumps(frame.attrs, sort_keys=True).encode()}
        )
    write_table(table, sink)


def write_table(table: pa.Table, sink: str | IO[bytes], statistics: bool = True) -> None:
    """``statistics=False`` for files that are only ever read whole (the landing zone): the column statistics
    serve row-group pruning, and computing them was a fifth of a tick batch's encoding."""
    text = [
        f.name
        for f in table.schema
        if (pa.types.is_string(f.type) or pa.types.is_large_string(f.type)) and f.name not in UNIQUE_TEXT_COLUMNS
    ]
    pq.write_table(table, sink, use_dictionary=text, write_statistics=statistics)


def read_frame(source: str | IO[bytes]) -> pd.DataFrame:
    """The frame written by :func:`write_frame`, with its ``attrs``; ``source`` is a local path or an open
    file (an object store's, through UPath)."""
    table = pq.read_table(source)
    frame = table.to_pandas()
    stored = (table.schema.metadata or {}).get(ATTRS_KEY)
    frame.attrs = json.loads(stored) if stored else {}
    return frame


class UnitFrames(Mapping[str, pd.DataFrame]):
    """The frames of a partition's units, each read from its file when asked for: a (day, group) partition holds
    a day of up to 16 instruments, which need not fit in memory at once (docs/partitions.md). ``read`` opens a
    path: a local one, or an object store's through UPath."""

    def __init__(self, paths: Mapping[str, Any], read: Callable[[Any], pd.DataFrame] | None = None) -> None:
        self.paths = dict(paths)
        self._read = read or (lambda path: read_frame(str(path)))

    def __getitem__(self, unit: str) -> pd.DataFrame:
        return self._read(self.paths[unit])

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)
