"""The landing zone: durable Parquet files of ticks, one folder per (hour, symbol), written before any XACK.

Landing is idempotent: every row carries its Redis entry id, and a reader keeps one row per entry id, so a
batch redelivered after a crash (landed, not yet acked) or landed by two consumers never counts twice. Files
are written under a temporary name in ``<root>/.tmp``, fsynced and renamed into their folder, and the folder is
fsynced after the rename, so a reader never sees half a file and a landed file survives a power loss before its
entries are acked. A write that fails removes its temporary file; what a killed writer left in ``.tmp`` is swept
by the next writer (:meth:`LandingStore.sweep`). Temporaries live apart from the partitions so that no reader can
take one for data and the sweep lists one small folder, not the whole zone. The root is a ``UPath``: a local
folder today, object storage (``s3://...``) by configuration (no temporaries there: objects appear whole).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable
from enum import StrEnum
from functools import partial

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from upath import UPath

from shadow_pipeline.domain.market.windows import HOUR_NS, hour_keys
from shadow_pipeline.parquet import write_table

log = logging.getLogger(__name__)
TEMPORARY_FOLDER = ".tmp"
TEMPORARY_SUFFIX = ".parquet.tmp"
# Another writer's temporary file older than this is a leftover: a write keeps one for the seconds it takes to
# write and fsync a batch, and a failed attempt removes its own.
STALE_TEMPORARY_SECONDS = 3600.0
# Runs one file's write (mkdir, write, rename): once by default; a serving consumer's runner retries it while the
# disk is full (ingest.landing_faults). Per file, so that a retry does not write again the files that landed.
Attempts = Callable[[Callable[[], None]], None]


def _once(write: Callable[[], None]) -> None:
    write()


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


def _writer_of(temporary_name: str) -> str:
    """The writer in ``<first entry id>_<writer>_<hex>.parquet.tmp`` (entry ids hold no ``_``, writers may)."""
    _, _, rest = temporary_name.removesuffix(TEMPORARY_SUFFIX).partition("_")
    return rest.rpartition("_")[0]


def _partitions(ticks: pd.DataFrame) -> list[tuple[str, str, np.ndarray]]:
    """(hour key, symbol, row positions in order) of each partition the ticks fall in: numpy on integer codes
    rather than a pandas groupby on two text keys, which cost more than the Parquet encoding of the batch. A batch
    mostly falls in one hour, which then needs no sort, and only the distinct hours are formatted as keys."""
    hours = ticks["ts_server"].to_numpy(dtype=np.int64) // HOUR_NS
    first, last = int(hours.min()), int(hours.max())
    if first == last:
        starts, hour_codes = np.array([first]), np.zeros(len(hours), dtype=np.int64)
    else:
        starts, hour_codes = np.unique(hours, return_inverse=True)
    labels = hour_keys(starts * HOUR_NS)
    symbol_codes, symbols = pd.factorize(ticks["symbol"].to_numpy())
    if len(starts) == 1 and len(symbols) == 1:
        return [(str(labels[0]), str(symbols[0]), np.arange(len(hours)))]
    keys = hour_codes.astype(np.int64) * len(symbols) + symbol_codes
    order = np.argsort(keys, kind="stable")
    bounds = np.flatnonzero(np.diff(keys[order], prepend=-1))
    return [
        (str(labels[keys[order[a]] // len(symbols)]), str(symbols[keys[order[a]] % len(symbols)]), order[a:b])
        for a, b in zip(bounds.tolist(), [*bounds[1:].tolist(), len(order)], strict=True)
    ]


class LandingStore:
    def __init__(self, root: str | os.PathLike[str] | UPath) -> None:
        self.root = UPath(root)
        self._swept: set[str] = set()

    @property
    def local(self) -> bool:
        return self.root.protocol in ("", "file", "local")

    def folder(self, kind: Kind, hour_key: str, symbol: str) -> UPath:
        return self.root / kind.value / _folder_name(hour_key) / symbol

    def write(self, kind: Kind, ticks: pd.DataFrame, writer: str, attempts: Attempts = _once) -> int:
        """Land typed ticks that carry ``entry_id`` (and ``ts_broker``, as every delivery has them); returns the
        number of files written (durable on return). A writer's first write sweeps its leftovers (:meth:`sweep`).
        An ``OSError`` (disk full, read-only) leaves no temporary file; files written before it stay landed."""
        if ticks.empty:
            return 0
        if writer not in self._swept:
            self._swept.add(writer)
            self.sweep(writer)
        files = 0
        # Once, then Arrow's take per partition (cheaper than pandas'); on this thread: the consumer's threads are
        # busy already, and Arrow's pool of column converters cost more in thread switches than it saved.
        table = pa.Table.from_pandas(ticks, preserve_index=False, nthreads=1)
        for hour, symbol, rows in _partitions(ticks):
            group = table.take(rows) if len(rows) < len(table) else table
            name = f"{group['entry_id'][0]}_{writer}_{uuid.uuid4().hex[:6]}.parquet"
            target = self.folder(kind, str(hour), str(symbol)) / name
            attempts(partial(self._write_atomically, target, group))
            files += 1
        return files

    def sweep(self, writer: str) -> int:
        """Remove temporary files of crashed writes: ``writer``'s own (a consumer name is one process at a time,
        docs/ingest.md, so none of them is being written) and anyone's older than ``STALE_TEMPORARY_SECONDS``
        (a writer renamed since, or a Dagster run's one-off name). Not younger ones of others: they may be live
        writes, and removing one would fail its rename. Best effort: a zone that refuses the removal refuses the
        next write too, and that says what to fix."""
        if not self.local:
            return 0
        folder = os.path.join(self.root.path, TEMPORARY_FOLDER)
        stale_before = time.time() - STALE_TEMPORARY_SECONDS
        removed = 0
        try:
            with os.scandir(folder) as entries:
                for entry in (e for e in entries if e.name.endswith(TEMPORARY_SUFFIX)):
                    with contextlib.suppress(FileNotFoundError):  # another writer's sweep took it first
                        if _writer_of(entry.name) == writer or entry.stat().st_mtime < stale_before:
                            os.remove(entry.path)
                            removed += 1
        except FileNotFoundError:  # nothing was ever written here
            return 0
        except OSError as exc:
            log.warning("could not remove leftover temporary files in %s: %s", folder, exc)
        if removed:
            log.info("removed %d temporary files of interrupted writes from %s", removed, folder)
        return removed

    def _write_atomically(self, target: UPath, ticks: pa.Table) -> None:
        if not self.local:  # object stores publish an object atomically on close
            with target.open("wb") as handle:
                write_table(ticks, handle, statistics=False)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.root / TEMPORARY_FOLDER / f"{target.stem}{TEMPORARY_SUFFIX}"
        temporary.parent.mkdir(exist_ok=True)
        try:
            with open(temporary.path, "wb") as handle:
                write_table(ticks, handle, statistics=False)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary.path, target.path)
        except BaseException:
            with contextlib.suppress(OSError):  # never there (open failed) or not removable: the sweep retries
                os.remove(temporary.path)
            raise
        _fsync_directory(os.path.dirname(target.path))  # the rename itself survives a power loss

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
