"""`shadow-pipeline fills`: a partition's stored ``shadow_fills`` as CSV, for a spreadsheet or a script.

It reads what the pipeline stored (no ingest, no simulation), through the project's IO manager, so it finds the
Parquet wherever the runs put it (``--data-dir`` or ``$SHADOW_DATA_DIR``, a folder or an object store).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
import dagster as dg
import pandas as pd

from shadow_pipeline.cli_errors import fail as _fail
from shadow_pipeline.defs.partitions import partition_key, tick_partitions
from shadow_pipeline.io_managers import ParquetIOManager
from shadow_pipeline.reporting.snapshot import write_atomically

ASSET = dg.AssetKey("shadow_fills")


def stored_fills(hour: str, symbol: str, data_dir: str | None) -> pd.DataFrame:
    """The stored fills of (hour, symbol); ValueError (a partition that does not exist) or FileNotFoundError (one
    not materialized) with the reason."""
    key = partition_key(hour, symbol)
    store = ParquetIOManager.under(data_dir) if data_dir else ParquetIOManager()
    manager = store.create_io_manager(dg.build_init_resource_context())
    context = dg.build_input_context(asset_key=ASSET, partition_key=str(key), asset_partitions_def=tick_partitions)
    logging.disable(logging.INFO)  # the IO manager logs each partition it loads to stderr, on a logger of its own
    try:
        frame: pd.DataFrame = manager.load_input(context)
    finally:
        logging.disable(logging.NOTSET)
    return frame


def _check_output(out: str) -> None:
    """Refuse an output that cannot be a CSV file before anything is read."""
    if out == "-":
        return
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--csv {out}: is a folder, not a file")
    if not path.absolute().parent.is_dir():
        raise ValueError(f"--csv {out}: folder {path.absolute().parent} does not exist")


def _write(out: str, data: bytes) -> None:
    """A file is replaced whole (a full disk leaves the old file, not half a CSV); stdout and devices are
    written as they are."""
    if out == "-":
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    elif Path(out).exists() and not Path(out).is_file():
        Path(out).write_bytes(data)
    else:
        write_atomically(Path(out), data)


@click.command("fills")
@click.option("--hour", required=True, help="Hourly partition, YYYY-MM-DD-HH:00 (UTC).")
@click.option("--symbol", required=True, help="Instrument of the partition (e.g. BTCUSDT).")
@click.option("--profile", default=None, help="Refuse unless the stored fills were simulated with this profile.")
@click.option("--data-dir", default=None, help="Asset store (default: $SHADOW_DATA_DIR).")
@click.option("--csv", "out", required=True, help="CSV file to write, or - for stdout.")
def fills_command(hour: str, symbol: str, profile: str | None, data_dir: str | None, out: str) -> None:
    """Write the simulated fills of one stored partition as CSV (columns: docs/fills.md).

    Exit status: 0 written, 2 an error (one `error:` line)."""
    try:
        _check_output(out)
        fills = stored_fills(hour, symbol, data_dir)
        stored = fills.attrs.get("profile")
        if profile is not None and stored != profile:
            raise ValueError(
                f"the stored shadow_fills of {symbol} {hour} are of profile {stored}, not {profile} (one profile is "
                f"stored per partition: run shadow-pipeline shadow --profile {profile} for it)"
            )
        _write(out, fills.to_csv(index=False, lineterminator="\n").encode())
    # FileNotFoundError: not materialized; PartitionOutOfRange: a ValueError; ImportError: an object store whose
    # filesystem package (s3fs, gcsfs, ...) is not installed
    except (ValueError, OSError, ImportError) as exc:
        _fail(f"{exc.strerror}: {exc.filename}" if isinstance(exc, OSError) and exc.strerror else str(exc))
        return
    if out != "-":
        click.echo(f"{len(fills)} fills of {symbol} {hour} written to {out}", err=True)


def main() -> None:
    """Run standalone (``python -m shadow_pipeline.cli_fills``) with the CLI's one-line usage errors."""
    try:
        fills_command.main(standalone_mode=False)
    except click.UsageError as exc:
        _fail(f"{exc.format_message()} (see fills -h)")
    except click.Abort:
        _fail("aborted")


if __name__ == "__main__":
    main()
