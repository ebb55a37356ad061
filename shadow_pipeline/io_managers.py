"""Parquet storage of DataFrame assets, one file per partition, under a UPath base (local folder or s3://).

A partition of the ``day_x_group`` layout holds many units (defs/units.py): its value is a mapping by unit key,
stored as a folder of one file per unit with an index of the units, so that a re-materialization that has fewer
units never loads the ones it dropped, and loaded as a :class:`UnitFrames` that reads a unit when it is asked
for: a day of a group is written and read a unit at a time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field
from upath import UPath

from shadow_pipeline import settings
from shadow_pipeline.parquet import UnitFrames, read_frame, write_frame

ASSETS_FOLDER = "assets"  # the asset store's folder in a data dir, beside the landing zone
UNITS_INDEX = "units.json"  # in a grouped partition's folder: the unit keys it holds


def _unit_path(folder: UPath, unit: str) -> UPath:
    hour, symbol = unit.split("|")
    return folder / hour / f"{symbol}.parquet"


def _write_atomically(path: UPath, data: bytes | pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        if isinstance(data, bytes):
            handle.write(data)
        else:
            write_frame(data, handle)
    temporary.rename(path)  # a reader never sees half a file; re-materializing overwrites the partition


class _ParquetUPathIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def dump_to_path(
        self, context: dg.OutputContext, obj: pd.DataFrame | Mapping[str, pd.DataFrame], path: UPath
    ) -> None:
        if isinstance(obj, pd.DataFrame):
            _write_atomically(path, obj)
            return
        folder = path.with_suffix("")
        for unit in obj:  # one unit in memory at a time (a UnitFrames reads each from its spill file)
            _write_atomically(_unit_path(folder, unit), obj[unit])
        _write_atomically(folder / UNITS_INDEX, json.dumps(sorted(obj)).encode())  # last: the units now stored
        context.add_output_metadata({"units_folder": dg.MetadataValue.path(str(folder))})  # "path" names no file

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame | UnitFrames:
        if path.exists():  # an hourly partition's one file: asked first, so that it costs an object store no more
            return self._read(path)
        index = path.with_suffix("") / UNITS_INDEX
        if index.exists():
            return self._units(context, index)
        raise FileNotFoundError(f"no stored partition at {path}: materialize {context.asset_key.to_user_string()}")

    def _units(self, context: dg.InputContext, index: UPath) -> UnitFrames:
        redo = f"materialize {context.asset_key.to_user_string()} again"
        try:
            units = json.loads(index.read_bytes())
            if not isinstance(units, list) or not all(isinstance(u, str) and u.count("|") == 1 for u in units):
                raise ValueError("not a list of <hour>|<instrument> keys")
        except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ValueError(f"{index}: a damaged index of the partition's units ({exc}): {redo}") from None
        paths = {unit: _unit_path(index.parent, unit) for unit in units}
        for unit, path in paths.items():  # now, as one error, rather than halfway through a run
            if not path.exists():  # not a FileNotFoundError: Dagster would take the partition for never stored
                raise ValueError(f"{path}: unit {unit} of the partition is missing: {redo}")
        return UnitFrames(paths, self._read)

    @staticmethod
    def _read(path: UPath) -> pd.DataFrame:
        with path.open("rb") as handle:  # through fsspec: s3:// and friends, not only local files
            return read_frame(handle)


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Stores each partition of a DataFrame asset as ``<base>/<asset>/<hour>/<symbol>.parquet``."""

    base_path: str | None = Field(
        default=None,
        description="Local folder or object-store URL (s3://bucket/prefix). Default: $SHADOW_DATA_DIR/assets.",
    )

    def create_io_manager(self, context: dg.InitResourceContext) -> Any:
        settings.check()  # every step starts its io_manager: a malformed partition setting fails the run here
        return _ParquetUPathIOManager(base_path=self.base())

    @classmethod
    def under(cls, data_dir: str) -> ParquetIOManager:
        """The asset store of a data folder (``<data_dir>/assets``), beside the landing zone."""
        return cls(base_path=str(UPath(data_dir) / ASSETS_FOLDER))

    def base(self) -> UPath:
        return UPath(self.base_path) if self.base_path else UPath(settings.data_dir()) / ASSETS_FOLDER
