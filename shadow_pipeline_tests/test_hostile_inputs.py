"""Hostile input (issue 19, items 3 and 4): every bad option, file or setting is one ``error:`` line and exit 2,
before any Redis work, and every numeric setting has one declared range that the profiles schema, the tuner,
the overrides, the run configs and the CLI options share."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import click
import pytest
import redis
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shadow_pipeline import cli, user_json
from shadow_pipeline.defs.shadow.assets import ShadowConfig
from shadow_pipeline.domain.strategies.profiles import ProfileError, load_profiles, resolve, setting_range
from shadow_pipeline.domain.tuning.search_space import TUNABLES, with_values
from shadow_pipeline.settings import REDIS_URL_ENV

HOUR = "2024-08-09-00:00"
UNREACHABLE = "redis://127.0.0.1:1/0"  # a case that got as far as Redis would say "cannot reach Redis" instead


def _packaged_text() -> str:
    return resources.files("shadow_pipeline.profiles").joinpath("shadow_profiles.json").read_text()


# --- the loader ---------------------------------------------------------------------------------------------


def test_the_loader_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "profiles.fifo"
    os.mkfifo(fifo)  # nobody writes it: a plain open would block forever
    for path, said in ((fifo, "not a regular file"), ("/dev/zero", "not a regular file"), (tmp_path, "a folder")):
        with pytest.raises(user_json.JsonInputError, match=f"^{path}: {said}"):
            user_json.load(path)
    with pytest.raises(user_json.JsonInputError, match=r"absent\.json: cannot read: No such file"):
        user_json.load(tmp_path / "absent.json")


def test_the_loader_bounds_size_and_encoding(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * user_json.MAX_BYTES + b"{}")
    with pytest.raises(user_json.JsonInputError, match=r"big\.json: larger than the 4,194,304 bytes allowed"):
        user_json.load(big)
    latin = tmp_path / "latin.json"
    latin.write_bytes(b'{"description": "caf\xe9"}')
    with pytest.raises(user_json.JsonInputError, match=r"latin.json: not UTF-8 text \(byte 20\)"):
        user_json.load(latin)
    with pytest.raises(user_json.JsonInputError, match="--space: 4,194,305 characters"):
        user_json.parse(" " * (user_json.MAX_BYTES + 1), "--space")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"tick_size": NaN}', "NaN is not a number JSON allows"),
        ('{"x": [Infinity]}', "Infinity is not a number JSON allows"),
        ('{"x": -Infinity}', "-Infinity is not a number JSON allows"),
        ('{"x": 1e400}', "1e400 overflows a float"),
        ('{"x": 1' + "0" * 400 + "}", r"integer 100000000000\.\.\.\(401 digits\) is out of range"),
        (
            '{"x": -' + "9" * 5000 + "}",
            r"integer -9{11}\.\.\.\(5000 digits\) is out of range",
        ),  # past Python's own int() limit
        ('{"x": 9223372036854775808}', "integer 9223372036854775808 is out of range"),
        ("[" * 65 + "]" * 65, "nested 65 deep, more than the 64 allowed"),
        ("[" * 50_000 + "]" * 50_000, "nested 50000 deep"),  # the soak's RecursionError
        ('{"x": ', r"not JSON \(line 1, column 7\)"),
    ],
)
def test_the_loader_refuses_non_finite_huge_and_deep_json(text: str, said: str) -> None:
    with pytest.raises(user_json.JsonInputError, match=f"^--space: {said}"):
        user_json.parse(text, "--space")


def test_the_loader_reads_what_settings_hold() -> None:
    assert user_json.parse('{"a": [1.5, -2, 9223372036854775807, 5e-324, "[[[{"]}', "x") == {
        "a": [1.5, -2, 2**63 - 1, 5e-324, "[[[{"]  # brackets in a string are not nesting
    }
    deepest = "[" * user_json.MAX_DEPTH + "]" * user_json.MAX_DEPTH
    assert user_json.parse(deepest, "x") is not None
    assert user_json.parse(_packaged_text(), "packaged")["profiles"]


_OVERFLOWING_FLOAT = st.builds(
    lambda mantissa, exponent, sign: f"{sign}{mantissa}e{exponent}",
    st.integers(1, 9),
    st.integers(309, 100_000),
    st.sampled_from(["", "-"]),
)
_HUGE_INT = st.one_of(st.integers(min_value=2**63), st.integers(max_value=-(2**63))).map(str)
_NON_FINITE = st.sampled_from(["NaN", "Infinity", "-Infinity"])


@settings(max_examples=150, deadline=None)
@given(st.one_of(_OVERFLOWING_FLOAT, _HUGE_INT, _NON_FINITE), st.sampled_from(['{"k": %s}', "[0, %s]", "%s"]))
def test_no_non_finite_or_overflowing_number_gets_through(number: str, shape: str) -> None:
    with pytest.raises(user_json.JsonInputError, match=r"^--space: "):
        user_json.parse(shape % number, "--space")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["[", '{"k": ']), min_size=user_json.MAX_DEPTH + 1, max_size=60_000))
def test_no_nesting_past_the_limit_gets_through(openers: list[str]) -> None:
    text = "".join(openers) + "0" + "".join("]" if o == "[" else "}" for o in reversed(openers))
    with pytest.raises(user_json.JsonInputError, match=f"nested {len(openers)} deep"):
        user_json.parse(text, "--space")


# --- the bounds ---------------------------------------------------------------------------------------------


def _schema() -> dict[str, Any]:
    text = resources.files("shadow_pipeline.profiles").joinpath("shadow_profiles.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def _numbers(node: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") in ("number", "integer"):
            yield path, node
        for key, value in node.items():
            yield from _numbers(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _numbers(value, f"{path}[{i}]")


def test_every_setting_in_the_profiles_schema_has_finite_bounds() -> None:
    defs = _schema()["$defs"]
    found = [
        (path, node) for section in ("params", "thresholds", "tune") for path, node in _numbers(defs[section], section)
    ]
    assert len(found) >= 20
    for path, node in found:
        low = node.get("minimum", node.get("exclusiveMinimum"))
        assert low is not None and "maximum" in node, f"{path} has no lower or upper bound"
        assert -1e12 < float(low) < float(node["maximum"]) < 1e12, path
    # The candidate values of tune.space are bounded by their parameter's range (SearchSpace.of), not here.
    assert set(defs["tune"]["properties"]["space"]["properties"]) == set(TUNABLES)


def _with(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, old
    return text.replace(old, new, 1)


@pytest.mark.parametrize(
    ("old", "new", "said"),
    [
        ('"min_lot": 0.002', '"tick_size": NaN, "min_lot": 0.002', "NaN is not a number JSON allows"),
        (
            '"min_lot": 0.002',
            '"tick_size": 5e-324, "min_lot": 0.002',
            "$.symbols.BTCUSDT.params.tick_size: 5e-324 is less than",
        ),
        ('"min_lot": 0.002', '"tick_size": 1e999, "min_lot": 0.002', "1e999 overflows a float"),
        ('"max_inventory": 5', '"max_inventory": 1e18', "max_inventory: 1e+18 is greater than the maximum of 100000"),
        ('"max_inventory": 5', '"max_inventory": 100001', "max_inventory: 100001 is greater than the maximum"),
        ('"min_net_bps": 2.5', '"min_net_bps": NaN', "NaN is not a number JSON allows"),
        ('"min_net_bps": 2.5', '"min_net_bps": -1e300', "min_net_bps: -1e+300 is less than the minimum of -10000"),
        ('"max_risk_ratio": 0.4', '"max_risk_ratio": Infinity', "Infinity is not a number JSON allows"),
        ('"min_windows": 48', '"min_windows": 1' + "0" * 400, "integer 100000000000...(401 digits) is out of range"),
        ('"markout_horizon_s": 5', '"markout_horizon_s": 1e300', "markout_horizon_s: 1e+300 is greater than"),
        ('"seed": 0', '"seed": 4294967296', "seed: 4294967296 is greater than the maximum of 4294967295"),
    ],
)
def test_the_profiles_file_refuses_non_finite_and_absurd_settings(
    tmp_path: Path, old: str, new: str, said: str
) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(_with(_packaged_text(), old, new))
    with pytest.raises(ProfileError) as raised:
        load_profiles(path)
    assert str(raised.value).startswith(f"{path}: ") and said in str(raised.value), str(raised.value)


def test_the_tuner_the_overrides_and_the_run_config_share_the_schema_ranges() -> None:
    params = _schema()["$defs"]["params"]["properties"]
    declared = {
        "max_inventory": params["max_inventory"],
        "min_requote_ms": params["requote"]["properties"]["min_requote_ms"],
        "hedge.target": params["hedge"]["properties"]["target"],
        "touch_dwell_ms": params["touch_dwell_ms"],
    }
    for name, node in declared.items():
        bounds = TUNABLES[name].range
        assert (bounds.minimum, bounds.maximum) == (node["minimum"], node["maximum"]), name
    assert TUNABLES["max_inventory"].range.maximum == 100_000  # the cap the tuner always had; now the file's too
    base, _ = resolve(load_profiles(), "moderate", "BTCUSDT")
    with pytest.raises(ProfileError, match=r"max_inventory: 100001 is out of range \(want >= 1 and <= 100000\)"):
        with_values(base, {"max_inventory": 100_001})
    # a run config (the launchpad, the CLI) refuses what the profile's range refuses
    configs: list[dict[str, Any]] = [
        {"min_lot": 2e9},
        {"min_lot": 0.0},
        {"touch_dwell_ms": float("nan")},
        {"min_windows": 10**7},
    ]
    for setting in configs:
        with pytest.raises(ValueError, match=next(iter(setting))):
            ShadowConfig(**setting)
    with pytest.raises(ValueError, match="does not divide 3600"):
        ShadowConfig(window_seconds=7)
    # and so does the CLI option, whose type is built from the config field
    option = cli._config_range(ShadowConfig, "min_lot")
    assert isinstance(option, click.FloatRange)
    assert (option.min, option.max, option.min_open) == (0, TUNABLES["min_lot"].range.maximum, True)
    windows = cli._config_range(ShadowConfig, "min_windows")
    assert isinstance(windows, click.IntRange)
    assert windows.max == setting_range("thresholds", "min_windows").maximum


# --- the commands -------------------------------------------------------------------------------------------


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Files a user might point an option at, and an environment where reaching Redis would be an error."""
    monkeypatch.setenv(REDIS_URL_ENV, UNREACHABLE)
    monkeypatch.setenv("SHADOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SHADOW_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 50_000 + "]" * 50_000)
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    files = {"fifo": str(fifo), "deep": str(deep), "file": str(a_file), "tmp": str(tmp_path)}
    for name, (old, new) in {
        "nan_tick": ('"min_lot": 0.002', '"tick_size": NaN, "min_lot": 0.002'),
        "tiny_tick": ('"min_lot": 0.002', '"tick_size": 5e-324, "min_lot": 0.002'),
        "huge_inventory": ('"max_inventory": 5', '"max_inventory": 1e18'),
        "nan_gate": ('"min_net_bps": 2.5', '"min_net_bps": NaN'),
    }.items():
        path = tmp_path / f"{name}.json"
        path.write_text(_with(_packaged_text(), old, new))
        files[name] = str(path)
    return files


def _invoke(args: list[str]) -> Result:
    return CliRunner().invoke(cli.main, args, prog_name="shadow-pipeline")


def _refused(result: Result, said: str = "") -> str:
    """The one error line of a refusal: exit 2, no traceback, nothing else on stderr but log lines."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert "Redis" not in errors[0], errors[0]  # refused before any Redis work
    assert said in errors[0], errors[0]
    return errors[0]


SPACE = ["tune", "--hours", HOUR, "--symbols", "BTCUSDT", "--space"]
# (args with {file} placeholders, what the error line says)
COMMAND_CASES: list[tuple[list[str], str]] = [
    (
        [*SPACE, '{"min_requote_ms": {"min": 0, "max": 1e308, "step": 5e-324}}'],
        "min_requote_ms: 1e+308 is out of range",
    ),
    ([*SPACE, '{"min_requote_ms": {"min": 0, "max": 1000, "step": 5e-324}}'], "inf values (more than 10,000)"),
    ([*SPACE, '{"max_inventory": [1' + "0" * 400 + "]}"], "space: integer 100000000000...(401 digits) is out of range"),
    ([*SPACE, "[" * 50_000 + "]" * 50_000], "space: nested 50000 deep"),
    ([*SPACE, '{"max_inventory": [NaN]}'], "space: NaN is not a number JSON allows"),
    ([*SPACE, '{"max_inventory": [1e18]}'], "max_inventory: 1e+18 is out of range"),
    (["tune", "--hours", HOUR, "--profiles-file", "{deep}"], "deep.json: nested 50000 deep"),
    (["tune", "--hours", HOUR, "--profiles-file", "/dev/zero"], "/dev/zero: not a regular file"),
    (["tune", "--hours", HOUR, "--profiles-file", "{fifo}"], "fifo.json: not a regular file"),
    (["tune", "--hours", HOUR, "--profiles-file", "{tmp}"], "a folder"),
    (["tune", "--hours", HOUR, "--profiles-file", "{huge_inventory}"], "max_inventory: 1e+18 is greater than"),
    (["tune", "--hours", HOUR, "--window-seconds", "1e300"], "Invalid value for '--window-seconds': 1e+300"),
    (["tune", "--hours", HOUR, "--window-seconds", "inf"], "Invalid value for '--window-seconds': inf"),
    (["tune", "--hours", HOUR, "--window-seconds", "7"], "window_seconds 7 does not divide 3600"),
    (["tune", "--hours", HOUR, "--min-windows", "99999999999"], "Invalid value for '--min-windows'"),
    (["tune", "--hours", HOUR, "--max-sets", "1000000"], "Invalid value for '--max-sets'"),
    (["tune", "--hours", HOUR, "--seed", "1" + "0" * 400], "Invalid value for '--seed'"),
    (["tune", "--hours", HOUR, "--workers", "0"], "Invalid value for '--workers'"),
    (["tune", "--hours", HOUR, "--data-dir", "{file}"], "a-file is a file, not a folder"),
    (["shadow", "--hour", HOUR, "--profiles-file", "{nan_tick}"], "nan_tick.json: NaN is not a number JSON allows"),
    (["shadow", "--hour", HOUR, "--profiles-file", "{tiny_tick}"], "tick_size: 5e-324 is less than the minimum"),
    (["shadow", "--hour", HOUR, "--profiles-file", "{nan_gate}"], "nan_gate.json: NaN is not a number JSON allows"),
    (["shadow", "--hour", HOUR, "--profiles-file", "{fifo}"], "not a regular file"),
    (["shadow", "--hour", HOUR, "--window-seconds", "nan"], "'nan' is not a finite number"),
    (["shadow", "--hour", HOUR, "--window-seconds", "-inf"], "Invalid value for '--window-seconds'"),
    (["shadow", "--hour", HOUR, "--min_lot", "nan"], "'nan' is not a finite number"),
    (["shadow", "--hour", HOUR, "--min-lot", "1e300"], "Invalid value for '--min_lot' / '--min-lot': 1e+300"),
    (["shadow", "--hour", HOUR, "--touch_dwell_ms", "inf"], "Invalid value for '--touch_dwell_ms'"),
    (["shadow", "--hour", HOUR, "--min_lot", "0.0025"], "min_lot: 0.0025 is not a positive multiple"),
    (["shadow", "--hour", HOUR, "--artifacts-dir", "{file}/reports"], "a-file is a file, not a folder"),
    (["dryrun", "--hour", HOUR, "--duration", "inf"], "Invalid value for '--duration'"),
    (["dryrun", "--hour", HOUR, "--iterations", "0"], "Invalid value for '--iterations'"),
    (["dryrun", "--hour", HOUR, "--profiles-file", "/dev/zero"], "/dev/zero: not a regular file"),
    (["ingest", "--drain", "--watermark-ms", "inf"], "Invalid value for '--watermark-ms': inf"),
    (["ingest", "--drain", "--watermark-ms", "nan"], "'nan' is not a finite number"),
    (["ingest", "--drain", "--metrics-port", "70000"], "Invalid value for '--metrics-port': 70000"),
    (["ingest", "--drain", "--metrics-port", "0"], "Invalid value for '--metrics-port': 0"),
    (["ingest", "--drain", "--landing", "{file}"], "a-file is a file, not a folder"),
    (["ingest", "--drain", "--textfile", "/nonexistent/x.prom"], "folder /nonexistent does not exist"),
    (["ingest", "--drain", "--textfile", "{tmp}"], "is a folder"),
    (["ingest", "--drain", "--pushgateway", "http://:9091"], "is not a Pushgateway address"),
    (["ingest", "--drain", "--pushgateway", "ftp://host:9091"], "is not a Pushgateway address"),
    (["ingest", "--drain", "--pushgateway", "host:99999"], "is not a Pushgateway address"),
    (["ingest", "--drain", "--reconnect-seconds", "1e309"], "Invalid value for '--reconnect-seconds'"),
    (["ingest", "--drain", "--batch", "0"], "Invalid value for '--batch'"),
    (["export", "--hour", HOUR, "--ttl", "0"], "Invalid value for '--ttl'"),
    (["export", "--hour", HOUR, "--maxlen", "1" + "0" * 30], "Invalid value for '--maxlen'"),
    (["export", "--hour", HOUR, "--data-dir", "{file}"], "a-file is a file, not a folder"),
    (["replay", "--minutes", "inf"], "Invalid value for '--minutes': inf"),
    (["replay", "--speed", "nan"], "'nan' is not a finite number"),
    (["replay", "--seed", "-1"], "Invalid value for '--seed'"),
    (["replay", "--jitter-ms", "inf"], "fault jitter_ms=inf is outside [0, 3600000]"),
    (["replay", "--batch-size", "0"], "batch_size must be 1 to 1000000"),
    (["audit", "{tmp}", "--profiles-file", "{fifo}"], "not a regular file"),
]


@pytest.mark.parametrize(("args", "said"), COMMAND_CASES, ids=[" ".join(a)[:60] for a, _ in COMMAND_CASES])
def test_a_hostile_option_is_one_error_line_and_exit_2(hostile: dict[str, str], args: list[str], said: str) -> None:
    for name, path in hostile.items():
        args = [arg.replace(f"{{{name}}}", path) for arg in args]
    _refused(_invoke(args), said)


# Every numeric option of every command, with a value outside any sensible range.
NUMERIC_OPTIONS: dict[str, list[str]] = {
    "tune --hours " + HOUR: ["--window-seconds", "--min-windows", "--max-sets", "--seed", "--train-hours", "--workers",
                             "--min_lot", "--touch_dwell_ms"],
    "shadow --hour " + HOUR: ["--window-seconds", "--min-windows", "--min_lot", "--touch_dwell_ms"],
    "dryrun --hour " + HOUR: ["--duration", "--iterations", "--min_lot", "--touch_dwell_ms"],
    "export --hour " + HOUR: ["--ttl", "--maxlen"],
    "replay": ["--minutes", "--seed", "--maxlen", "--speed", "--batch-size", "--drop", "--jitter-ms"],
    "ingest --drain": ["--batch", "--block-ms", "--claim-idle-ms", "--dead-after-ms", "--drain-wait-ms",
                       "--max-deliveries", "--land-every-ms", "--watermark-ms", "--buffer-capacity",
                       "--reconnect-seconds", "--metrics-port"],
    "demo": ["--minutes", "--seed"],
}  # fmt: skip
_OUT_OF_RANGE = st.one_of(
    st.sampled_from(["nan", "NaN", "inf", "-inf", "Infinity", "1e309", "-1e309"]),
    st.floats(min_value=1e11, allow_infinity=True).map(repr),
    st.floats(max_value=-1e11, allow_infinity=True).map(repr),
    st.integers(min_value=10**11, max_value=10**400).map(str),
    st.integers(max_value=-1).map(str),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.sampled_from([(command, option) for command, options in NUMERIC_OPTIONS.items() for option in options]),
    _OUT_OF_RANGE,
)
def test_no_numeric_option_takes_a_non_finite_or_out_of_range_value(
    hostile: dict[str, str], command_option: tuple[str, str], value: str
) -> None:
    command, option = command_option
    _refused(_invoke([*command.split(), f"{option}={value}"]))


def test_a_real_process_exits_2_with_one_line_and_no_traceback(hostile: dict[str, str]) -> None:
    """Click's own usage errors and the command's refusals, as a shell sees them."""
    runs = [
        [*SPACE, '{"min_requote_ms": {"min": 0, "max": 1e308, "step": 5e-324}}'],
        ["ingest", "--drain", "--watermark-ms", "inf"],
        ["shadow", "--hour", HOUR, "--profiles-file", hostile["fifo"]],
        ["tune", "--hours", HOUR, "--profiles-file", hostile["deep"]],
    ]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "shadow_pipeline.cli", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for args in runs
    ]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 2 and "Traceback" not in err, err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), err
        assert out == ""


def test_a_metrics_push_that_fails_comes_after_the_report(
    redis_url: str, redis_client: redis.Redis, stream: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The drain landed and acked everything: its report is printed first, then why the metrics were not pushed."""
    monkeypatch.setenv(REDIS_URL_ENV, redis_url)
    replayed = _invoke(["replay", "--minutes", "0.05", "--symbols", "BTCUSDT", "--stream", stream])
    assert replayed.exit_code == 0, replayed.stderr
    args = ["ingest", "--drain", "--stream", stream, "--landing", str(tmp_path / "landing")]
    drained = _invoke([*args, "--pushgateway", "http://127.0.0.1:1", "--textfile", str(tmp_path / "m.prom")])
    assert drained.exit_code == 2 and "Traceback" not in drained.stderr, drained.stderr
    report = json.loads(drained.stdout)
    assert report["landed_total"] > 0 and report["complete"]
    errors = [line for line in drained.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: metrics not pushed to http://127.0.0.1:1: "), errors
    assert "shadow_ingest_ticks" in (tmp_path / "m.prom").read_text()  # the sink that works still got them
    assert redis_client.xpending(stream, "shadow")["pending"] == 0
