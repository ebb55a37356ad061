"""Every environment variable the project reads, with its default, and the one getter of each.

The environment only supplies defaults: a Config or Resource field set in run config always wins, and no code
writes these variables to steer other code (the one exception is the child process of ``with-redis``, which
is handed the embedded server's URL). docs/configuration.md lists them for users.
"""

from __future__ import annotations

import importlib.util
import os
import re
from datetime import datetime
from pathlib import Path

from shadow_pipeline.domain.market.shards import MAX_SHARDS

HOUR_FORMAT = "%Y-%m-%d-%H:%M"  # Dagster's hourly partition keys

REDIS_URL_ENV = "REDIS_URL"
SYMBOLS_ENV = "SHADOW_SYMBOLS"
FIRST_HOUR_ENV = "SHADOW_FIRST_HOUR"
RETENTION_DAYS_ENV = "SHADOW_RETENTION_DAYS"
PARTITIONED_CHECKS_ENV = "SHADOW_PARTITIONED_CHECKS"
PARTITION_LAYOUT_ENV = "SHADOW_PARTITION_LAYOUT"
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
MAX_RETENTION_DAYS = 3660  # ten years: beyond, a fixed $SHADOW_FIRST_HOUR says the same
DATA_DIR_ENV = "SHADOW_DATA_DIR"
ARTIFACTS_DIR_ENV = "SHADOW_ARTIFACTS_DIR"
PROFILES_ENV = "SHADOW_PROFILES"
INSTRUMENTS_ENV = "SHADOW_INSTRUMENTS"
COMMIT_ENV = "SHADOW_COMMIT_SHA"
SLACK_TOKEN_ENV = "SLACK_BOT_TOKEN"
# Read by Dagster, not here: the celery executor's run config names it (`broker: {env: ...}`, docs/scaling.md).
CELERY_BROKER_ENV = "SHADOW_CELERY_BROKER"
DAGSTER_HOME_ENV = "DAGSTER_HOME"
DAGSTER_PG_URL_ENV = "SHADOW_DAGSTER_PG_URL"
MARKET_DATA_ENV = "SHADOW_MARKET_DATA"
INGEST_SLOT_ENV = "SHADOW_INGEST_SLOT"
DEFAULT_INGEST_SLOT = "0"
STREAM_SHARDS_ENV = "SHADOW_STREAM_SHARDS"
EXECUTOR_ENV = "SHADOW_EXECUTOR"
EXECUTORS = ("in_process", "multiprocess", "celery")  # docs/scaling.md, "Executors", says when to use which
# docs/partitions.md: an hour of one instrument per partition (the default), or a UTC day of an instrument group
PARTITION_LAYOUTS = ("hour_x_instrument", "day_x_group")

DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT")
# What an instrument id may hold (a partition key by Dagster's rules, and a folder name): SYMBOL[.venue].
_SYMBOL = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?")
# Late enough that the default two instruments stay within Dagster's guidance of 100,000 partitions per asset
# until 2029 (from 2020 they were 121,466 by late 2026); a user replaying older data moves it back, and a desk
# of many instruments takes the layout of docs/partitions.md.
DEFAULT_FIRST_HOUR = "2024-01-01-00:00"
DEFAULT_DATA_DIR = ".shadow_data"  # relative to the working directory (the repo); git-ignored
DEFAULT_ARTIFACTS_DIR = "artifacts"


class SettingsError(ValueError):
    """An environment variable that cannot be used; the message names it and the expected form."""


def _get(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def redis_url() -> str | None:
    """``$REDIS_URL``, or None when the project should start its own server."""
    return _get(REDIS_URL_ENV)


def ingest_slot() -> str:
    """This host's consumer slot (``$SHADOW_INGEST_SLOT``, e.g. a StatefulSet ordinal), else "0": the default
    consumer name is ``<host>-<slot>``, stable across restarts."""
    return _get(INGEST_SLOT_ENV) or DEFAULT_INGEST_SLOT


def stream_shards() -> int:
    """How many streams the ticks are spread over by instrument (``$SHADOW_STREAM_SHARDS``, default 1: the one
    stream ``lob:ticks``; docs/ingest.md, "Shards"). Unlike the other settings a malformed value raises
    SettingsError here rather than falling back: producers and consumers on different counts would write and read
    different streams, and the ticks of the difference would never be landed."""
    raw = _get(STREAM_SHARDS_ENV)
    if raw is None:
        return 1
    return _whole_number(STREAM_SHARDS_ENV, raw, MAX_SHARDS, f"a whole number of streams from 1 to {MAX_SHARDS}")


def _whole_number(name: str, raw: str, most: int, expected: str) -> int:
    """``raw`` as a whole number from 1 to ``most``, else SettingsError: ``$name=<raw>: expected <expected>``, a
    long value clipped. The length is checked first: int() refuses more than 4,300 digits with a message of its
    own."""
    if len(raw) > 20 or not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= most:
        raise SettingsError(f"${name}={_shown(raw)}: expected {expected}")
    return int(raw)


def _shown(raw: str) -> str:
    """A value as an error line quotes it: clipped, so that a pasted blob stays one readable line."""
    return repr(raw if len(raw) <= 40 else f"{raw[:20]}...({len(raw)} characters)")


def symbols() -> list[str]:
    """The partitions' instruments as written in ``$SHADOW_SYMBOLS`` (comma-separated ids: ``BTCUSDT`` on the
    default venue, ``BTCUSDT.bybit-linear``; ``defs.partitions`` turns them into instrument keys); the default when
    malformed (``check`` says so where the symbols are used)."""
    try:
        return _symbols()
    except SettingsError:
        return list(DEFAULT_SYMBOLS)


def first_hour() -> str:
    """The first hourly partition, ``YYYY-MM-DD-HH:00`` (UTC; a bare ``YYYY-MM-DD`` means its midnight); the
    default when malformed (``check`` says so where the partitions are used)."""
    try:
        return _first_hour()
    except SettingsError:
        return DEFAULT_FIRST_HOUR


def retention_days() -> int | None:
    """How many finished UTC days of hourly partitions to keep (``$SHADOW_RETENTION_DAYS``), the start moving with
    each load of the code location; None (unset, or malformed: ``check`` says so where the partitions are used)
    keeps every hour from the first (docs/partitions.md, "A moving start")."""
    try:
        return _retention_days()
    except SettingsError:
        return None


def partitioned_checks() -> bool:
    """Whether the checks of partitioned assets are partitioned like them (``$SHADOW_PARTITIONED_CHECKS``; by
    default under hour x instrument, not under day x group, where a partition's checks are joined over its units
    and the checks tab must stay fast: docs/partitions.md, "The checks at desk scale"); the default when malformed
    (``check`` says so)."""
    try:
        return _partitioned_checks()
    except SettingsError:
        return _checks_default()


def _checks_default() -> bool:
    return partition_layout() != "day_x_group"


def partition_layout() -> str:
    """What one partition of the tick stages holds (``$SHADOW_PARTITION_LAYOUT``, one of PARTITION_LAYOUTS): an
    hour of one instrument, or a UTC day of an instrument group, which keeps 500 instruments x 2 years within
    Dagster's guidance (docs/partitions.md); the default when malformed (``check`` says so)."""
    try:
        return _partition_layout()
    except SettingsError:
        return PARTITION_LAYOUTS[0]


def check() -> None:
    """Raise SettingsError, one line naming the variable, for the first malformed setting.

    The definitions load with the defaults in its place (``symbols``, ``first_hour``): a bad variable must not
    take the whole code location down, or the CLI's --help with it. A run (the io_manager every step starts)
    and a CLI command that uses the partitions call this first, so nothing runs on settings nobody chose.
    """
    _symbols()
    _first_hour()
    _retention_days()
    _partitioned_checks()
    _partition_layout()
    _executor()
    stream_shards()


def _symbols() -> list[str]:
    raw = _get(SYMBOLS_ENV) or ""
    chosen = [s.strip() for s in raw.split(",") if s.strip()] or list(DEFAULT_SYMBOLS)
    bad = [s for s in chosen if not _SYMBOL.fullmatch(s)]
    if bad:
        raise SettingsError(
            f"${SYMBOLS_ENV}={raw!r}: expected comma-separated instrument ids of letters, digits, _, - and one '.' "
            f"before a venue, e.g. BTCUSDT,BTCUSDT.bybit-linear (not {', '.join(map(repr, bad))})"
        )
    return list(dict.fromkeys(chosen))


def _first_hour() -> str:
    value = _get(FIRST_HOUR_ENV) or DEFAULT_FIRST_HOUR
    if len(value) == len("YYYY-MM-DD"):
        value += "-00:00"
    if not is_hour_key(value):
        raise SettingsError(
            f"${FIRST_HOUR_ENV}={value!r}: expected an hour as YYYY-MM-DD-HH:00, e.g. {DEFAULT_FIRST_HOUR}"
        )
    return value


def _retention_days() -> int | None:
    raw = _get(RETENTION_DAYS_ENV)
    if raw is None:
        return None
    expected = (
        f"a whole number of days from 1 to {MAX_RETENTION_DAYS}, or unset to keep every hour from ${FIRST_HOUR_ENV}"
    )
    return _whole_number(RETENTION_DAYS_ENV, raw, MAX_RETENTION_DAYS, expected)


def _partitioned_checks() -> bool:
    raw = _get(PARTITIONED_CHECKS_ENV)
    if raw is None:
        return _checks_default()
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise SettingsError(f"${PARTITIONED_CHECKS_ENV}={_shown(raw)}: expected true or false")


def _partition_layout() -> str:
    value = _get(PARTITION_LAYOUT_ENV) or PARTITION_LAYOUTS[0]
    if value not in PARTITION_LAYOUTS:
        raise SettingsError(f"${PARTITION_LAYOUT_ENV}={_shown(value)}: expected one of {', '.join(PARTITION_LAYOUTS)}")
    return value


def executor() -> str:
    """How a launched run executes its steps (``$SHADOW_EXECUTOR``, one of EXECUTORS); in-process when unset or
    malformed (``check`` says so when a run starts)."""
    try:
        return _executor()
    except SettingsError:
        return EXECUTORS[0]


def _executor() -> str:
    value = _get(EXECUTOR_ENV) or EXECUTORS[0]
    if value not in EXECUTORS:
        raise SettingsError(f"${EXECUTOR_ENV}={value!r}: expected one of {', '.join(EXECUTORS)}")
    if value == "celery" and importlib.util.find_spec("dagster_celery") is None:  # the scale extra
        raise SettingsError(f"${EXECUTOR_ENV}=celery needs dagster-celery: pip install '.[scale]' (or make setup)")
    return value


def is_hour_key(value: str) -> bool:
    """True for a whole hour in the partition key format (``2024-07-18-03:00``)."""
    try:
        stamp = datetime.strptime(value, HOUR_FORMAT)
    except ValueError:
        return False
    return stamp.minute == 0 and stamp.strftime(HOUR_FORMAT) == value


def data_dir() -> str:
    """Landing zone and Parquet assets: a folder or an object-store URL."""
    return _get(DATA_DIR_ENV) or DEFAULT_DATA_DIR


def artifacts_dir() -> Path:
    """Reports for people and tools (snapshots, Markdown, plots)."""
    return Path(_get(ARTIFACTS_DIR_ENV) or DEFAULT_ARTIFACTS_DIR)


def profiles_file() -> str | None:
    """A profiles JSON that replaces the packaged one, when set."""
    return _get(PROFILES_ENV)


def instruments_file() -> str | None:
    """An instrument registry JSON merged over the packaged one, when set."""
    return _get(INSTRUMENTS_ENV)


def commit_override() -> str | None:
    """The commit to record in run notes, for images without ``.git``."""
    return _get(COMMIT_ENV)


def slack_token() -> str | None:
    return _get(SLACK_TOKEN_ENV)


def dagster_home() -> str | None:
    return _get(DAGSTER_HOME_ENV)


def dagster_pg_url() -> str | None:
    """The PostgreSQL URL of the Dagster instance's storage (``postgresql+psycopg2://...``), or None for the
    embedded SQLite under $DAGSTER_HOME; ``shadow_pipeline.instance`` writes the instance file from it. Not
    stripped: Dagster reads the variable itself, as it is, so a secret's trailing newline must be refused, not
    mended here."""
    raw = os.environ.get(DAGSTER_PG_URL_ENV, "")
    return raw if raw.strip() else None


def market_data_dir(default: Path) -> Path:
    """Recorded market data for tests and benchmarks (``../shared/data/market`` by default)."""
    value = _get(MARKET_DATA_ENV)
    return Path(value) if value else default


def services_environment(redis_url: str) -> dict[str, str]:
    """The environment of services a command starts (``live-validate``): this one's, on ``redis_url``, so that
    each service resolves Redis as any command does and the URL (a password in it) is not on a command line."""
    return {**os.environ, REDIS_URL_ENV: redis_url}
