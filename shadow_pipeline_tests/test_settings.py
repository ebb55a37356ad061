"""Settings from the environment: a malformed one never fails loading the definitions (whatever uses it says so in
one line), and the launchpad shows the setting in force, a secret as the variable it comes from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from shadow_pipeline import settings
from shadow_pipeline.defs.resources import resources
from shadow_pipeline.io_managers import ParquetIOManager
from shadow_pipeline.launch import _failure_text
from shadow_pipeline_tests.instance_helpers import dagster_instance

BAD = {
    settings.FIRST_HOUR_ENV: ("garbage", "$SHADOW_FIRST_HOUR='garbage': expected an hour as YYYY-MM-DD-HH:00"),
    settings.RETENTION_DAYS_ENV: ("seven", "$SHADOW_RETENTION_DAYS='seven': expected a whole number of days from 1"),
    settings.PARTITIONED_CHECKS_ENV: ("maybe", "$SHADOW_PARTITIONED_CHECKS='maybe': expected true or false"),
    settings.PARTITION_LAYOUT_ENV: ("hourly", "$SHADOW_PARTITION_LAYOUT='hourly': expected one of hour_x_instrument, "),
    settings.SYMBOLS_ENV: (";;", "$SHADOW_SYMBOLS=';;': expected comma-separated instrument ids of letters, digits"),
    settings.EXECUTOR_ENV: ("k8s", "$SHADOW_EXECUTOR='k8s': expected one of in_process, multiprocess, celery"),
}
LOAD = "import shadow_pipeline.definitions as d; d.defs(); import shadow_pipeline.cli; print('loaded')"


def _python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("variable", sorted(BAD))
def test_a_bad_variable_never_fails_loading_the_definitions(variable: str) -> None:
    value, message = BAD[variable]
    env = {**os.environ, variable: value}
    loaded = _python(LOAD, env)
    assert loaded.returncode == 0 and loaded.stdout.strip() == "loaded", loaded.stderr[-2000:]
    helped = _python("from shadow_pipeline.cli import main; main(['shadow', '--help'])", env)
    assert helped.returncode == 0, helped.stderr[-2000:]
    used = _python("from shadow_pipeline.cli import main; main(['shadow', '--symbols', 'BTCUSDT'])", env)
    lines = used.stderr.strip().splitlines()
    assert used.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {message}"), used.stderr


def test_a_run_fails_on_a_bad_variable_with_its_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(settings.FIRST_HOUR_ENV, "garbage")

    @dg.asset
    def probe() -> int:
        return 1

    with dagster_instance() as instance:  # a bare ephemeral() can be collected mid-run
        result = dg.materialize(
            [probe],
            resources={"io_manager": ParquetIOManager(base_path=str(tmp_path))},
            instance=instance,
            raise_on_error=False,
        )
    assert not result.success
    assert BAD[settings.FIRST_HOUR_ENV][1] in _failure_text(result)


def test_the_launchpad_shows_the_variable_of_a_secret_and_the_value_of_a_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(settings.REDIS_URL_ENV, "redis://u:s3cret@127.0.0.1:1/0")
    monkeypatch.setenv(settings.SLACK_TOKEN_ENV, "xoxb-s3cret")
    monkeypatch.setenv(settings.DATA_DIR_ENV, str(tmp_path / "data"))
    bound = resources().resources or {}
    assert bound["redis"].url == dg.EnvVar(settings.REDIS_URL_ENV)
    assert bound["alerts"].slack_token == dg.EnvVar(settings.SLACK_TOKEN_ENV)
    assert bound["landing"].base_path == str(tmp_path / "data" / "landing")
    assert bound["io_manager"].base_path == str(tmp_path / "data" / "assets")
    assert "s3cret" not in repr(bound)


def test_an_unset_secret_stays_unset_for_the_resources_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(settings.REDIS_URL_ENV, raising=False)
    monkeypatch.delenv(settings.SLACK_TOKEN_ENV, raising=False)
    bound = resources().resources or {}
    assert bound["redis"].url is None and bound["alerts"].slack_token is None


@pytest.mark.parametrize(("raw", "days"), [("7", 7), (" 7 ", 7), ("007", 7), ("3660", 3660), ("", None), (" ", None)])
def test_the_days_kept_are_a_whole_number_or_unset(monkeypatch: pytest.MonkeyPatch, raw: str, days: int | None) -> None:
    monkeypatch.setenv(settings.RETENTION_DAYS_ENV, raw)
    settings.check()
    assert settings.retention_days() == days


@pytest.mark.parametrize(
    "raw", ["0", "-1", "+7", "seven", "7.5", "1e3", "nan", "inf", "3661", "0x10", "7d", "\u0663", "9" * 5000]
)
def test_hostile_days_kept_are_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    """Refused where the partitions are used; the definitions meanwhile load keeping every hour (unset)."""
    monkeypatch.setenv(settings.RETENTION_DAYS_ENV, raw)
    with pytest.raises(settings.SettingsError) as refused:
        settings.check()
    said = str(refused.value)
    assert said.startswith("$SHADOW_RETENTION_DAYS=") and "from 1 to 3660" in said
    assert "\n" not in said and len(said) < 300
    assert settings.retention_days() is None


@pytest.mark.parametrize(
    ("raw", "partitioned"),
    [("", True), ("true", True), ("On", True), ("1", True), ("FALSE", False), (" no ", False), ("0", False)],
)
def test_partitioned_checks_are_a_yes_or_no(monkeypatch: pytest.MonkeyPatch, raw: str, partitioned: bool) -> None:
    monkeypatch.setenv(settings.PARTITIONED_CHECKS_ENV, raw)
    settings.check()
    assert settings.partitioned_checks() is partitioned


@pytest.mark.parametrize("raw", ["maybe", "2", "-1", "tru", "nan", "true false", "\u0661", "x" * 5000])
def test_hostile_partitioned_checks_are_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    """Refused where the partitions are used; the definitions meanwhile load with partitioned checks."""
    monkeypatch.setenv(settings.PARTITIONED_CHECKS_ENV, raw)
    with pytest.raises(settings.SettingsError) as refused:
        settings.check()
    said = str(refused.value)
    assert said.startswith("$SHADOW_PARTITIONED_CHECKS=") and said.endswith("expected true or false")
    assert "\n" not in said and len(said) < 120
    assert settings.partitioned_checks() is True


@pytest.mark.parametrize(("raw", "layout"), [("", "hour_x_instrument"), (" day_x_group ", "day_x_group")])
def test_the_partition_layout_is_one_of_two(monkeypatch: pytest.MonkeyPatch, raw: str, layout: str) -> None:
    monkeypatch.setenv(settings.PARTITION_LAYOUT_ENV, raw)
    settings.check()
    assert settings.partition_layout() == layout


@pytest.mark.parametrize(
    "raw", ["hourly", "DAY_X_GROUP", "day x group", "day_x_group,hour_x_instrument", "nan", "\u0661", "x" * 5000]
)
def test_a_hostile_partition_layout_is_one_line_naming_the_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    """Refused where the partitions are used; the definitions meanwhile load with the default layout."""
    monkeypatch.setenv(settings.PARTITION_LAYOUT_ENV, raw)
    with pytest.raises(settings.SettingsError) as refused:
        settings.check()
    said = str(refused.value)
    assert said.startswith("$SHADOW_PARTITION_LAYOUT=")
    assert said.endswith("expected one of hour_x_instrument, day_x_group")
    assert "\n" not in said and len(said) < 140
    assert settings.partition_layout() == "hour_x_instrument"


@pytest.mark.parametrize(("layout", "raw", "partitioned"), [("day_x_group", "", False), ("day_x_group", "yes", True)])
def test_the_checks_are_plain_by_default_under_day_x_group(
    monkeypatch: pytest.MonkeyPatch, layout: str, raw: str, partitioned: bool
) -> None:
    """A (day, group) partition's checks are joined over its units; plain, the checks tab stays fast at desk scale."""
    monkeypatch.setenv(settings.PARTITION_LAYOUT_ENV, layout)
    monkeypatch.setenv(settings.PARTITIONED_CHECKS_ENV, raw)
    settings.check()
    assert settings.partitioned_checks() is partitioned
