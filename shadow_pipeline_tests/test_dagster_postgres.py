"""Instance storage on PostgreSQL, chosen by $SHADOW_DAGSTER_PG_URL: a materialization through the instance the
project's instance file describes lands its run and events in PostgreSQL tables (and nothing in SQLite), and
every unusable value of the variable is one `error:` line from `shadow-pipeline instance`, without the password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from shadow_pipeline.settings import DAGSTER_PG_URL_ENV
from shadow_pipeline_tests.instance_helpers import REPO, connect, fresh_database, reachable_pg_url

SECRET = "S3cret-pw"


@dg.asset
def probe() -> int:
    return 1


def test_runs_and_events_land_in_postgres(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_database(reachable_pg_url()) as url:
        monkeypatch.setenv(DAGSTER_PG_URL_ENV, url)
        home = tmp_path / "home"
        done = subprocess.run(
            [sys.executable, "-m", "shadow_pipeline.cli_instance", "--out", str(home / "dagster.yaml")],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert url not in (home / "dagster.yaml").read_text()  # the file names the variable, not its value
        with dg.DagsterInstance.from_config(str(home)) as instance:
            result = dg.materialize([probe], instance=instance)
        assert result.success
        with connect(url) as db, db.cursor() as cursor:
            cursor.execute("SELECT status FROM runs WHERE run_id = %s", (result.run_id,))
            assert cursor.fetchall() == [("SUCCESS",)]
            cursor.execute("SELECT count(*) FROM event_logs WHERE run_id = %s", (result.run_id,))
            assert cursor.fetchone()[0] > 0
        db.close()
        assert not list(home.rglob("*.db"))  # no SQLite storage beside it


HOSTILE = {
    "not a URL": "just some words",
    "NaN": "nan",
    "bare postgresql picks psycopg 3": f"postgresql://postgres:{SECRET}@127.0.0.1:5432/postgres",
    "another database": f"mysql+psycopg2://root:{SECRET}@127.0.0.1:3306/db",
    "port out of range": f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:99999999999999999999/db",
    "no host": f"postgresql+psycopg2://postgres:{SECRET}@/db",
    "no database": f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432",
    "unreachable": f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:1/postgres",
    "huge": f"postgresql+psycopg2://postgres:{SECRET}@" + "h" * 100_000 + "/db",
    # libpq's "invalid dsn" message quotes the text around a bad escape
    "bare % in the password": f"postgresql+psycopg2://postgres:{SECRET}%pass@127.0.0.1:5432/postgres",
    "bad escape in the password": f"postgresql+psycopg2://postgres:%zz{SECRET}@127.0.0.1:5432/postgres",
    "bad escape in the database": f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432/db%zz{SECRET}",
    "no such database": f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432/no_such_database_{SECRET[:4]}",
    # libpq splits at the first @: its message would name the password's tail as the host
    "@ in the password": f"postgresql+psycopg2://postgres:{SECRET}@{SECRET}@127.0.0.1:5432/postgres",
    "@ in the user": f"postgresql+psycopg2://a@{SECRET}:{SECRET}@127.0.0.1:5432/postgres",
    # Dagster reads the variable unstripped: "database "postgres\n" does not exist" in every process
    "a secret's trailing newline": f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432/postgres\n",
    "leading space": f" postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432/postgres",
    "tab in the database": f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432/post\tgres",
}


# What the line must say for the values refused before any connection (a connection would fail too, for its own reason).
SAYS = {
    "@ in the password": "write it as %40",
    "@ in the user": "write it as %40",
    "a secret's trailing newline": "holds whitespace",
    "leading space": "holds whitespace",
    "tab in the database": "holds whitespace",
}


@pytest.mark.parametrize(("name", "value"), HOSTILE.items(), ids=HOSTILE.keys())
def test_an_unusable_storage_url_is_one_error_line(tmp_path: Path, name: str, value: str) -> None:
    out = tmp_path / "dagster.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "shadow_pipeline.cli_instance", "--out", str(out)],
        cwd=REPO,
        env={**os.environ, DAGSTER_PG_URL_ENV: value},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert DAGSTER_PG_URL_ENV in done.stderr
    assert SAYS.get(name, "") in done.stderr
    assert SECRET not in done.stderr + done.stdout
    assert not out.exists()


def test_without_the_variable_the_instance_stays_on_sqlite(tmp_path: Path) -> None:
    out = tmp_path / "dagster.yaml"
    env = {k: v for k, v in os.environ.items() if k != DAGSTER_PG_URL_ENV}
    done = subprocess.run(
        [sys.executable, "-m", "shadow_pipeline.cli_instance", "--out", str(out)], cwd=REPO, env=env, text=True
    )
    assert done.returncode == 0
    assert out.read_text() == (REPO / "dagster.yaml").read_text()
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert dg.materialize([probe], instance=instance).success
    assert list(tmp_path.rglob("*.db"))  # SQLite under the home


@pytest.mark.parametrize("base", ["missing.yaml", "."], ids=["missing", "a folder"])
def test_an_unreadable_base_file_is_one_error_line(tmp_path: Path, base: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shadow_pipeline.cli_instance", "--base", base, "--out", str(tmp_path / "x.yaml")],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
