"""The Dagster instances of the tests: ``dagster_instance()`` for runs in the test's process, ``project_home`` for tests
that start Dagster processes. Both are on SQLite by default and, when $SHADOW_DAGSTER_PG_URL is set, on PostgreSQL in
a database of the test's own (run history is never shared between tests), so one variable moves the suite."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
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
# Copying a database that already holds Dagster's schema costs ~0.03 s a test over SQLite; a createdb that Dagster
# then migrates costs ~0.5 s, a shared database wiped between tests ~0.25 s (docs/scaling.md, "Instance storage").
_templates: dict[str, str] = {}  # server URL -> this process's template database on it


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


def _execute(url: str, statement: str) -> None:
    admin = connect(url)  # no `with`: psycopg2 opens a transaction there, and CREATE DATABASE refuses one
    admin.cursor().execute(statement)
    admin.close()


@contextmanager
def fresh_database(url: str, template: str | None = None) -> Iterator[str]:
    """The URL of a new database on ``url``'s server (empty, or a copy of ``template``), dropped afterwards."""
    name = f"shadow_test_{uuid.uuid4().hex[:12]}"
    _execute(url, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    try:
        yield _with_database(url, name)
    finally:
        _execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_storage(url: str) -> dict[str, object]:
    """The URL itself, not the variable: the instance ref carries it to run workers started before the test (a
    celery worker), whose $SHADOW_DAGSTER_PG_URL names the shared database. instance_for_test writes it to its own
    dagster.yaml in its temporary home (a test's folder)."""
    return {"storage": {"postgres": {"postgres_url": url}}}


@contextmanager
def _pointing_at(url: str, shared: str) -> Iterator[None]:
    """$SHADOW_DAGSTER_PG_URL names ``url`` meanwhile, for this process and the run workers it starts."""
    os.environ[settings.DAGSTER_PG_URL_ENV] = url
    try:
        yield
    finally:
        os.environ[settings.DAGSTER_PG_URL_ENV] = shared


def _template(shared: str) -> str:
    """A database holding Dagster's schema, made once per test process, that each test's database copies."""
    if shared not in _templates:
        name = f"shadow_tpl_{uuid.uuid4().hex[:12]}"
        _execute(shared, f'CREATE DATABASE "{name}"')
        _templates[shared] = name
        with dg.instance_for_test(overrides=_pg_storage(_with_database(shared, name))):
            pass  # the instance creates (migrates) the run, event log and schedule tables
    return _templates[shared]


def drop_templates() -> None:
    """At the session's end: the template databases this process made."""
    while _templates:
        shared, name = _templates.popitem()
        with suppress(psycopg2.Error):  # an unreachable server at teardown must not hide the tests' own result
            _execute(shared, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def dagster_instance(temp_dir: str | None = None) -> Iterator[dg.DagsterInstance]:
    """``dg.instance_for_test()``, with its runs, event logs and schedules in a fresh PostgreSQL database (dropped
    afterwards) when $SHADOW_DAGSTER_PG_URL is set. Every test that runs Dagster in its own process takes this, and
    the ``dagster_instance`` marker (conftest.py) finds those tests for CI's PostgreSQL pass."""
    shared = settings.dagster_pg_url()
    if shared is None:
        with dg.instance_for_test(temp_dir=temp_dir) as instance:
            yield instance
        return
    with (
        fresh_database(shared, _template(shared)) as url,
        dg.instance_for_test(temp_dir=temp_dir, overrides=_pg_storage(url)) as instance,
    ):
        yield instance


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
        with _pointing_at(url, shared):
            _create_storage(home)
            yield {settings.DAGSTER_HOME_ENV: str(home), settings.DAGSTER_PG_URL_ENV: url}
