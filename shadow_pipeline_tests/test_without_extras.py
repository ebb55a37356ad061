"""The project installed without the ``scale`` extra (a plain ``pip install .``): the CLI and the code location
load, and a setting that needs the extra is one `error:` line naming what to install, never an import traceback.

Each case runs in a fresh interpreter where the extra's packages cannot be imported (``sys.modules[name] = None``
is how Python marks a module absent), since this environment has them installed."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shadow_pipeline import settings
from shadow_pipeline_tests.instance_helpers import REPO

SCALE_EXTRA = ("psycopg2", "dagster_postgres", "dagster_celery")
SECRET = "S3cret-pw"


def run_without_extra(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    hide = "; ".join(f"sys.modules[{name!r}] = None" for name in SCALE_EXTRA)
    return subprocess.run(
        [sys.executable, "-c", f"import sys; {hide}\n{code}"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_cli_starts_without_the_extra() -> None:
    done = run_without_extra("from shadow_pipeline.cli import main\nmain(['--help'])", {})
    assert done.returncode == 0, done.stderr
    assert "instance" in done.stdout


def test_the_code_location_loads_in_process_without_the_extra() -> None:
    code = (
        "import dagster as dg\n"
        "from shadow_pipeline.definitions import defs\n"
        "print(defs().resolve_job_def('pipeline_job').executor_def is dg.in_process_executor)"
    )
    done = run_without_extra(code, {settings.EXECUTOR_ENV: "celery"})
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr


CASES = {
    "postgres storage": (
        "from shadow_pipeline.cli_instance import instance\ninstance(['--out', 'unused/dagster.yaml'])",
        {settings.DAGSTER_PG_URL_ENV: f"postgresql+psycopg2://postgres:{SECRET}@127.0.0.1:5432/postgres"},
        f"error: ${settings.DAGSTER_PG_URL_ENV} is set, but the scale extra is not installed "
        "(no psycopg2, dagster_postgres): "
        "pip install '.[scale]' (or make setup), or unset the variable for SQLite",
    ),
    "celery executor": (  # every run's io_manager and every CLI command that runs check the settings first
        "from shadow_pipeline.cli import main\nmain(['demo'])",
        {settings.EXECUTOR_ENV: "celery"},
        f"error: ${settings.EXECUTOR_ENV}=celery needs dagster-celery: pip install '.[scale]' (or make setup)",
    ),
}


@pytest.mark.parametrize(("code", "env", "line"), CASES.values(), ids=CASES.keys())
def test_a_setting_that_needs_the_extra_is_one_error_line(code: str, env: dict[str, str], line: str) -> None:
    done = run_without_extra(code, env)
    assert done.returncode == 2
    assert done.stderr == line + "\n"
    assert SECRET not in done.stdout + done.stderr
