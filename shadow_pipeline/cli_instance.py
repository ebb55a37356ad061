"""``shadow-pipeline instance``: write $DAGSTER_HOME/dagster.yaml, on PostgreSQL when $SHADOW_DAGSTER_PG_URL is set."""

from __future__ import annotations

from pathlib import Path

import click

from shadow_pipeline import settings
from shadow_pipeline.cli_errors import fail
from shadow_pipeline.instance import InstanceConfigError, check_instance_settings, check_reachable, instance_yaml


@click.command("instance")
@click.option(
    "--base",
    type=click.Path(path_type=Path),
    default=Path("dagster.yaml"),
    show_default=True,
    help="The checked-in instance settings to start from.",
)
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Default: $DAGSTER_HOME/dagster.yaml.")
def instance(base: Path, out: Path | None) -> None:
    """Write the Dagster instance file; with $SHADOW_DAGSTER_PG_URL set, its storage is that PostgreSQL (checked
    reachable first, so a wrong URL is found here and not in the first run)."""
    home = settings.dagster_home()
    if out is None and home is None:
        fail(f"${settings.DAGSTER_HOME_ENV} is not set; set it or pass --out")
    target = out if out is not None else Path(str(home)) / "dagster.yaml"
    try:
        text = base.read_text()
    except (OSError, UnicodeDecodeError) as error:
        fail(f"cannot read the instance settings {base}: {error}")
    url = settings.dagster_pg_url()
    try:
        written = instance_yaml(text, url)
        check_instance_settings(written)
        if url is not None:
            check_reachable(url)
    except InstanceConfigError as error:
        fail(str(error))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(written)
    except OSError as error:
        fail(f"cannot write {target}: {error}")
    click.echo(f"{target}: storage on {'PostgreSQL' if url else 'SQLite'}")


if __name__ == "__main__":
    instance()
