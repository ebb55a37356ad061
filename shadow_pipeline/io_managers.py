"""Parquet storage of DataFrame assets, one file per partition, under a UPath base (local folder or s3://)."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field
from upath import UPath

from shadow_pipeline import settings
from shadow_pipeline.parquet import read_frame, write_frame

ASSETS_FOLDER = "assets"  # the asset store's folder in a data dir, beside the landing zone


class _ParquetUPathIOManager(dg.UPathIOManager):
    extension = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pd.DataFrame, path: UPath) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        with temporary.open("wb") as handle:
            write_frame(obj, handle)
        temporary.rename(path)  # a reader never sees half a file; re-materializing overwrites the partition

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pd.DataFrame:
        if not path.exists():
            raise FileNotFoundError(f"no stored partition at {path}: materialize {context.asset_key.to_user_string()}")
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
