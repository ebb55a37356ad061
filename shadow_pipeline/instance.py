"""The Dagster instance file: the checked-in dagster.yaml, plus PostgreSQL storage when $SHADOW_DAGSTER_PG_URL is set.

Dagster reads one dagster.yaml from $DAGSTER_HOME and has no includes, so the storage choice is made when that
file is written (``make setup``'s instance rule, the tests' homes) rather than kept as a second checked-in copy
that would drift from the first. The storage section names the variable (``env:``), not its value: the password
stays in the environment and never lands in a file. The URL is checked here, before Dagster sees it, because
Dagster's own failure on a bad URL is a SQLAlchemy traceback that may quote it.
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import dagster as dg
import yaml

from shadow_pipeline.settings import DAGSTER_PG_URL_ENV

PG_SCHEME = "postgresql+psycopg2"
# SQLAlchemy 2 maps a bare postgresql:// to psycopg 3, which dagster-postgres does not ship.
# No userinfo in the example: every message passes through redact_text, which would mask it.
_EXAMPLE = f"{PG_SCHEME}://HOST:5432/DATABASE with the user and password before the host"
CONNECT_TIMEOUT_S = 5
MAX_HOST_LENGTH = 253  # DNS
# A % not followed by two hex digits: libpq's "invalid dsn" error would quote the text around it (the password).
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
STORAGE_SECTION = f"""
# Added because ${DAGSTER_PG_URL_ENV} is set: runs, event logs and schedules in PostgreSQL (docs/scaling.md).
storage:
  postgres:
    postgres_url:
      env: {DAGSTER_PG_URL_ENV}
"""


class InstanceConfigError(ValueError):
    """A storage URL that cannot work; the message names the variable and never quotes the URL."""


def validate_pg_url(url: str) -> None:
    """Refuse what dagster-postgres would fail on later: another scheme, no host, no database, a bad port."""
    if any(char.isspace() for char in url):  # Dagster would pass it on as is: "database "db\n" does not exist"
        raise InstanceConfigError(
            f"${DAGSTER_PG_URL_ENV} holds whitespace (a secret file's trailing newline?): remove it; "
            "Dagster reads the variable as it is"
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InstanceConfigError(
            f"${DAGSTER_PG_URL_ENV} is not a URL with a valid port; expected {_EXAMPLE}"
        ) from None
    if not parts.scheme or not parts.netloc:
        raise InstanceConfigError(f"${DAGSTER_PG_URL_ENV} is not a URL; expected {_EXAMPLE}")
    if parts.scheme != PG_SCHEME:
        raise InstanceConfigError(
            f"${DAGSTER_PG_URL_ENV} must use the scheme {PG_SCHEME}, not {parts.scheme[:30]!r} (SQLAlchemy 2 picks "
            f"psycopg 3 for a bare postgresql, and dagster-postgres does not ship it); expected {_EXAMPLE}"
        )
    if "@" in parts.netloc.rpartition("@")[0]:  # libpq splits at the first @ and would name the rest as the host
        raise InstanceConfigError(
            f"${DAGSTER_PG_URL_ENV} has an @ in its user or password: write it as %40; expected {_EXAMPLE}"
        )
    if not parts.hostname or not parts.path.strip("/") or port == 0:
        raise InstanceConfigError(f"${DAGSTER_PG_URL_ENV} needs a host and a database; expected {_EXAMPLE}")
    if len(parts.hostname) > MAX_HOST_LENGTH:  # libpq would spend its whole timeout resolving it
        raise InstanceConfigError(f"${DAGSTER_PG_URL_ENV}: the host name is longer than {MAX_HOST_LENGTH} characters")
    if _BAD_ESCAPE.search(parts.netloc + parts.path):
        raise InstanceConfigError(
            f"${DAGSTER_PG_URL_ENV} has a % that is not a percent-escape (%XX) in its user, password, host or "
            "database: write a literal % as %25"
        )


def check_installed() -> None:
    """PostgreSQL storage needs the ``scale`` extra, which a plain ``pip install .`` leaves out (SQLite needs
    nothing more): say so in one line rather than let Dagster fail on an import in every process."""
    missing = [name for name in ("psycopg2", "dagster_postgres") if importlib.util.find_spec(name) is None]
    if missing:
        raise InstanceConfigError(
            f"${DAGSTER_PG_URL_ENV} is set, but the scale extra is not installed (no {', '.join(missing)}): "
            "pip install '.[scale]' (or make setup), or unset the variable for SQLite"
        )


def check_reachable(url: str) -> None:
    """Connect once, so an unreachable server is one line now rather than a traceback in every run."""
    check_installed()
    import psycopg2  # the scale extra, checked above: the CLI must start without it

    try:
        psycopg2.connect(url.replace(PG_SCHEME, "postgresql", 1), connect_timeout=CONNECT_TIMEOUT_S).close()
    except psycopg2.Error as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise InstanceConfigError(
            f"cannot connect to the PostgreSQL of ${DAGSTER_PG_URL_ENV}: {_without_password(reason, url)}"
        ) from None


def _without_password(text: str, url: str) -> str:
    """``text`` with the URL's password masked, as written and decoded: libpq quotes the DSN in some messages."""
    password = urlsplit(url).password
    for shown in {password, unquote(password)} if password else set():
        text = text.replace(shown, "***")
    return text


def instance_yaml(base: str, pg_url: str | None) -> str:
    """The instance file for ``pg_url`` (None: ``base`` as is, SQLite under $DAGSTER_HOME)."""
    if pg_url is None:
        return base
    validate_pg_url(pg_url)
    return base.rstrip("\n") + "\n" + STORAGE_SECTION


def check_instance_settings(text: str) -> None:
    """Dagster's own reading of an instance file, and the run limits that would starve the queue: a tag limit
    below 1 keeps its runs queued for ever, as does ``max_concurrent_runs`` 0 (-1 is Dagster's "no limit"). So an
    operator's edit of the limits fails ``shadow-pipeline instance``, not every process that opens the file."""
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as error:  # the problem and where, not the quoted line: it may hold a literal secret
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InstanceConfigError(
            f"the instance settings are not YAML: {getattr(error, 'problem', None) or 'unreadable'}{at}"
        ) from None
    if loaded is None:  # an empty file: Dagster's defaults
        return
    if not isinstance(loaded, dict):
        raise InstanceConfigError("the instance settings are not a YAML mapping of settings")
    with tempfile.TemporaryDirectory(prefix="shadow-instance-") as home:
        # Dagster's own reading of the file, on a throwaway SQLite: the storage section is checked apart
        # (validate_pg_url, check_reachable), and opening it here would create tables in the real database.
        (Path(home) / "dagster.yaml").write_text(yaml.safe_dump({k: v for k, v in loaded.items() if k != "storage"}))
        try:
            dg.DagsterInstance.from_config(home).dispose()
        except Exception as error:  # Dagster's schema errors and its checks' invariant errors alike
            reason = " ".join(str(error).split()).split(" Expected: ")[0]  # not the whole schema it expected
            raise InstanceConfigError(f"the instance settings do not fit Dagster's schema: {reason[:400]}") from None
    for where, limits in _run_limits(loaded):
        for number, rule in enumerate(limits.get("tag_concurrency_limits") or []):  # Dagster's schema: has a limit
            if rule["limit"] < 1:
                raise InstanceConfigError(
                    f"{where}.tag_concurrency_limits[{number}] ({rule['key']}) has limit {rule['limit']}: "
                    "the runs it matches would stay queued for ever; use 1 or more"
                )
        most = limits.get("max_concurrent_runs", -1)
        if most == 0 or most < -1:
            raise InstanceConfigError(
                f"{where}.max_concurrent_runs is {most}: no run would start; use 1 or more, or -1 for no limit"
            )


def _run_limits(loaded: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The run limits wherever Dagster reads them: ``concurrency.runs``, or the older ``run_queue`` and the queued
    run coordinator's own ``config`` (Dagster refuses a file that mixes them)."""
    places = {
        "concurrency.runs": (loaded.get("concurrency") or {}).get("runs"),
        "run_queue": loaded.get("run_queue"),
        "run_coordinator.config": (loaded.get("run_coordinator") or {}).get("config"),
    }
    return [(where, limits) for where, limits in places.items() if isinstance(limits, dict)]
