"""Dagster instance homes for tests that start Dagster processes: the project's instance file, on PostgreSQL when
$SHADOW_DAGSTER_PG_URL is set, in a database of the test's own (run history is never shared between tests)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import psycopg2
import pytest

from shadow_pipeline import settings
from shadow_pipeline.instance import PG_SCHEME, InstanceConfigError, check_reachable, instance_yaml

REPO = Path(__file__).resolve().parents[1]
# The CI machines' server (trust auth); $SHADOW_DAGSTER_PG_URL names another.
LOCAL_PG_URL = f"{PG_SCHEME}://postgres@127.0.0.1:5432/postgres"


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def connect(url: str) -> psycopg2.extensions.connection:
    """A psycopg2 connection (autocommit) to the database of a ``postgresql+psycopg2`` URL."""
    connection = psycopg2.connect(url.replace(PG_SCHEME, "postgresql", 1))
    connection.autocommit = True
    return connection


def reachable_pg_url() -> str:
    """$SHADOW_DAGSTER_PG_URL, else the local server's; the test skips when that server does not answer."""
    url = settings.dagster_pg_url() or LOCAL_PG_URL
    try:
        check_reachable(url)
    except InstanceConfigError as error:
        pytest.skip(f"no PostgreSQL for the instance storage: {error}")
    return url


@contextmanager
def fresh_database(url: str) -> Iterator[str]:
    """The URL of a new, empty database on ``url``'s server, dropped afterwards."""
    name = f"shadow_test_{uuid.uuid4().hex[:12]}"
    admin = connect(url)  # no `with`: psycopg2 opens a transaction there, and CREATE DATABASE refuses one
    admin.cursor().execute(f'CREATE DATABASE "{name}"')
    admin.close()
    try:
        yield _with_database(url, name)
    finally:
        admin = connect(url)
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _create_storage(home: Path) -> None:
    """Create the instance's storage here, once: processes started together on a fresh home (a daemon and a CLI)
    otherwise race to create the same SQLite files and tables."""
    dg.DagsterInstance.from_config(str(home)).dispose()


@contextmanager
def project_home(home: Path, base: str | None = None) -> Iterator[dict[str, str]]:
    """``home`` holding the instance file the project's make would write (``base``: other instance settings than
    dagster.yaml); yields the environment of processes on it. With $SHADOW_DAGSTER_PG_URL set, the storage is a
    fresh database, and this process's variable points at it meanwhile, so ``DagsterInstance.from_config(home)``
    here reads the same storage."""
    home.mkdir(parents=True, exist_ok=True)
    text = (REPO / "dagster.yaml").read_text() if base is None else base
    shared = settings.dagster_pg_url()
    if shared is None:
        (home / "dagster.yaml").write_text(instance_yaml(text, None))
        _create_storage(home)
        yield {settings.DAGSTER_HOME_ENV: str(home)}
        return
    with fresh_database(shared) as url:
        (home / "dagster.yaml").write_text(instance_yaml(text, url))
        os.environ[settings.DAGSTER_PG_URL_ENV] = url
        try:
            _create_storage(home)
            yield {settings.DAGSTER_HOME_ENV: str(home), settings.DAGSTER_PG_URL_ENV: url}
        finally:
            os.environ[settings.DAGSTER_PG_URL_ENV] = shared
