"""The landing zone: durable Parquet files of ticks, one folder per (hour, symbol), written before any XACK.

Landing is idempotent: every row carries its Redis entry id, and a reader keeps one row per entry id, so a
batch redelivered after a crash (landed, not yet acked) or landed by two consumers never counts twice. Files
are written under a temporary name, fsynced and renamed, and the folder is fsynced after the rename, so a
reader never sees half a file and a landed file survives a power loss before its entries are acked. The root
is a ``UPath``: a local folder today, object storage (``s3://...``) by configuration.
"""

from __future__ import annotations

import os
import uuid
from enum import StrEnum

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from shadow_pipeline.domain.windows import hour_keys
from shadow_pipeline.parquet import write_frame


class Kind(StrEnum):
    TICKS = "ticks"  # released by the reorder buffer
    DROPS = "drops"  # dropped by backpressure: kept, so that a drop is a record, never a silent loss


def _folder_name(hour_key: str) -> str:
    return hour_key.replace(":00", "").replace("-", "", 2)  # 2024-08-09-00:00 -> 20240809-00


def _hour_key(folder_name: str) -> str:
    day, hour = folder_name.split("-")  # 20240809-00 -> 2024-08-09-00:00
    return f"{day[:4]}-{day[4:6]}-{day[6:]}-{hour}:00"


def entry_order(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Positions that put entries in the order Redis received them (by the (ms, seq) parts of their ids);
    stable, so copies of one id keep their order."""
    parts = pc.split_pattern(ids, "-", max_splits=1)
    ms_seq = pc.cast(pc.list_flatten(parts), pa.int64()).to_numpy().reshape(-1, 2)
    return np.lexsort((ms_seq[:, 1], ms_seq[:, 0]))


def _fsync_directory(path: str) -> None:
    """Make a rename in ``path`` durable (POSIX: the directory entry lives in the directory's own blocks)."""
    if not hasattr(os, "O_DIRECTORY"):  # Windows: directories cannot be opened for fsync
        return
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class LandingStore:
    def __init__(self, root: str | os.PathLike[str] | UPath) -> None:
        self.root = UPath(root)

    def folder(self, kind: Kind, hour_key: str, symbol: str) -> UPath:
        return self.root / kind.value / _folder_name(hour_key) / symbol

    def write(self, kind: Kind, ticks: pd.DataFrame, writer: str) -> int:
        """Land typed ticks that carry ``entry_id`` (and ``ts_broker``, as every delivery has them); returns the
        number of files written (durable on return)."""
        if ticks.empty:
            return 0
        files = 0
        keyed = ticks.assign(_hour=hour_keys(ticks["ts_server"].to_numpy()))
        for (hour, symbol), group in keyed.groupby(["_hour", "symbol"], sort=False):
            folder = self.folder(kind, str(hour), str(symbol))
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{group['entry_id'].iloc[0]}_{writer}_{uuid.uuid4().hex[:6]}.parquet"
            self._write_atomically(folder / name, group.drop(columns="_hour"))
            files += 1
        return files

    @staticmethod
    def _write_atomically(target: UPath, ticks: pd.DataFrame) -> None:
        if target.protocol in ("", "file", "local"):
            temporary = target.with_name(f".{target.name}.tmp")
            with open(temporary.path, "wb") as handle:
                write_frame(ticks, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary.path, target.path)
            _fsync_directory(os.path.dirname(target.path))  # the rename itself survives a power loss
        else:  # object stores publish an object atomically on close
            with target.open("wb") as handle:
                write_frame(ticks, handle)

    def read(self, kind: Kind, hour_key: str, symbol: str, columns: list[str] | None = None) -> pd.DataFrame:
        """All rows landed for the partition, one per entry id, in the order Redis received them.

        Files landed before ingest recorded ``ts_broker`` lack it; mixed with newer files their rows read it as
        missing (NaN), and the latency KPI then leaves the broker leg unmeasured rather than guess.
        """
        folder = self.folder(kind, hour_key, symbol)
        files = sorted(p for p in folder.glob("*.parquet")) if folder.exists() else []
        if not files:
            return pd.DataFrame()
        wanted = None if columns is None else ["entry_id", *(c for c in columns if c != "entry_id")]
        table = pa.concat_tables([self._read_file(f, wanted) for f in files], promote_options="default")
        order = entry_order(table["entry_id"])
        ids = table["entry_id"].take(order)
        first_copy = np.ones(len(order), dtype=bool)  # copies of an id (a redelivered batch) are now adjacent
        first_copy[1:] = pc.not_equal(ids[1:], ids[:-1]).to_numpy(zero_copy_only=False)
        return table.take(order[first_copy]).to_pandas()

    @staticmethod
    def _read_file(path: UPath, columns: list[str] | None) -> pa.Table:
        if path.protocol in ("", "file", "local"):
            return pq.read_table(path.path, columns=columns)
        with path.open("rb") as handle:
            return pq.read_table(handle, columns=columns)

    def partitions(self, kind: Kind = Kind.TICKS) -> list[tuple[str, str]]:
        """(hour key, symbol) pairs that have landed files."""
        base = self.root / kind.value
        if not base.exists():
            return []
        return sorted(
            (_hour_key(hour.name), sym.name) for hour in base.iterdir() if hour.is_dir() for sym in hour.iterdir()
        )
