"""Parquet storage of DataFrame assets, one file per partition, under a UPath base (local folder or s3://)."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
import pandas as pd
from pydantic import Field
from upath import UPath

from shadow_pipeline.parquet import write_frame

DATA_DIR_ENV = "SHADOW_DATA_DIR"
DEFAULT_DATA_DIR = ".shadow_data"  # relative to the working directory (the repo); git-ignored


def data_dir() -> str:
    return os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR


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
        return pd.read_parquet(str(path))


class ParquetIOManager(dg.ConfigurableIOManagerFactory):
    """Stores each partition of a DataFrame asset as ``<base>/<asset>/<hour>/<symbol>.parquet``."""

    base_path: str | None = Field(
        default=None,
        description="Local folder or object-store URL (s3://bucket/prefix). Default: $SHADOW_DATA_DIR/assets.",
    )

    def create_io_manager(self, context: dg.InitResourceContext) -> Any:
        return _ParquetUPathIOManager(base_path=UPath(self.base_path or UPath(data_dir()) / "assets"))
