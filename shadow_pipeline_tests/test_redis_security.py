"""AUTH (ACL users) and TLS against real servers; passwords never appear in errors or logs."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sqlite3
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from shadow_pipeline.ingest.consumer import IngestOptions, TickConsumer
from shadow_pipeline.ingest.landing import LandingStore
from shadow_pipeline.redis_io.connect import RedisRefused, RedisUnavailable, connect
from shadow_pipeline.redis_io.server import RedisServer, _free_port, start_server
from shadow_pipeline.redis_io.url import RedisConfigError
from shadow_pipeline.resources import RedisResource
from shadow_pipeline_tests.ingest_helpers import replay_synthetic

PASSWORD = "Sup3r-s3cret"
SPECIAL = "Kq9@:/?#&Zr4"  # every character a URL gives a meaning to


def _consumer_lands_everything(url: str, landing: Path, **options: Any) -> None:
    """The consumer reads replies as raw bytes on the client's own connections: AUTH and TLS must carry over."""
    written = replay_synthetic(connect(url, **options), "secure:ticks", seconds=5, symbols=("BTCUSDT",))
    consumer = TickConsumer(
        LandingStore(landing),
        IngestOptions(stream="secure:ticks"),
        client_factory=lambda **kw: connect(url, **options, **kw),
    )
    report = consumer.drain()
    assert report.landed_total == written.entries > 0 and report.dead_letters == 0


def test_acl_user_connects_and_a_wrong_password_is_a_clear_redacted_error(caplog, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    server = start_server(["--user", "default", "off", "--user", "alice", "on", f">{PASSWORD}", "~*", "+@all"])
    try:
        caplog.set_level(logging.INFO)
        url = f"redis://alice:{PASSWORD}@127.0.0.1:{server.port}/0"
        assert connect(url).ping()
        assert RedisResource(url=url).describe() == f"redis://alice:***@127.0.0.1:{server.port}/0"
        _consumer_lands_everything(url, tmp_path)
        with pytest.raises(RedisUnavailable) as info:
            connect(f"redis://alice:wrong-{PASSWORD}@127.0.0.1:{server.port}/0")
        assert "refused the credentials" in str(info.value)
        assert PASSWORD not in str(info.value)
        assert PASSWORD not in caplog.text
    finally:
        server.stop()


@pytest.fixture(scope="module")
def acl_server() -> Iterator[RedisServer]:
    """Default user off; alice may do anything, pinger only PING, special has a password full of URL syntax."""
    server = start_server(
        [
            *("--user", "default", "off"),
            *("--user", "alice", "on", f">{PASSWORD}", "~*", "+@all"),
            *("--user", "pinger", "on", f">{PASSWORD}", "~*", "-@all"),
            *("--user", "special", "on", f">{SPECIAL}", "~*", "+@all"),
        ]
    )
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("userinfo", "refusal"),
    [
        (f"alice:wrong-{PASSWORD}@", "refused the credentials: invalid username-password pair"),
        (f"mallory:{PASSWORD}@", "refused the credentials: invalid username-password pair"),
        ("", "refused the credentials: Authentication required"),
        (f"pinger:{PASSWORD}@", "refused the user: this user has no permissions to run the 'ping' command"),
        (f"{PASSWORD}@", "refused the credentials"),
    ],
    ids=["wrong-password", "wrong-user", "no-password", "noperm", "bare-token"],
)
def test_a_refusal_is_one_redacted_line(acl_server: RedisServer, userinfo: str, refusal: str, caplog) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    with pytest.raises(RedisRefused) as info:
        connect(f"redis://{userinfo}127.0.0.1:{acl_server.port}/0", socket_timeout=2)
    message = str(info.value)
    assert refusal in message and f"127.0.0.1:{acl_server.port}/0" in message, message
    assert "\n" not in message and PASSWORD not in message and PASSWORD not in caplog.text
    assert isinstance(info.value, RedisUnavailable)  # callers that catch the wider class still do


def test_a_password_full_of_url_syntax_works_percent_encoded_and_never_shows(acl_server: RedisServer) -> None:
    encoded = f"redis://special:{quote(SPECIAL, safe='')}@127.0.0.1:{acl_server.port}/0"
    assert connect(encoded).ping()
    assert connect(f"redis://127.0.0.1:{acl_server.port}/0?username=special&password={quote(SPECIAL)}").ping()
    assert RedisResource(url=encoded).describe() == f"redis://special:***@127.0.0.1:{acl_server.port}/0"
    # Unencoded, redis-py would take "Kq9" for a port: the URL is refused before any connection, and says why.
    with pytest.raises(RedisConfigError) as info:
        connect(f"redis://special:{SPECIAL}@127.0.0.1:{acl_server.port}/0")
    assert "percent-encode" in str(info.value)
    for piece in ("Kq9", "Zr4", quote(SPECIAL, safe="")):
        assert piece not in str(info.value)


def test_unreachable_is_redacted_too() -> None:
    with pytest.raises(RedisUnavailable) as info:
        connect(f"redis://alice:{PASSWORD}@127.0.0.1:1/0?password={PASSWORD}", socket_connect_timeout=1)
    assert not isinstance(info.value, RedisRefused)
    assert "cannot reach Redis at redis://alice:***@127.0.0.1:1/0?password=***" in str(info.value)
    assert PASSWORD not in str(info.value)


def test_a_tls_option_on_a_plain_url_is_a_config_error_without_the_password() -> None:
    """redis-py builds the first connection at the first command and raises TypeError for an option the
    connection does not take: a RedisConfigError (one CLI line), not a traceback."""
    with pytest.raises(RedisConfigError) as info:
        RedisResource(url=f"redis://:{PASSWORD}@127.0.0.1:1/0", ssl_ca_certs="/etc/ca.crt").get_client()
    assert str(info.value) == "redis-py refuses the options given for Redis at redis://:***@127.0.0.1:1/0"


def _make_certs(folder: Path) -> tuple[Path, Path, Path]:
    ca_key, ca_crt = folder / "ca.key", folder / "ca.crt"
    key, csr, crt = folder / "server.key", folder / "server.csr", folder / "server.crt"
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run = lambda *args: subprocess.run(args, check=True, capture_output=True)  # noqa: E731
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_crt),
    )
    run(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        str(key),
        "-out",
        str(csr),
    )
    run(
        "openssl",
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_crt),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        str(ext),
        "-out",
        str(crt),
    )
    return ca_crt, crt, key


def test_tls_with_a_private_ca(tmp_path: Path) -> None:
    try:
        ca, crt, key = _make_certs(tmp_path)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("openssl is not available to make test certificates")
    tls_port = _free_port()
    try:
        server = start_server(
            [
                "--tls-port",
                str(tls_port),
                "--tls-cert-file",
                str(crt),
                "--tls-key-file",
                str(key),
                "--tls-ca-cert-file",
                str(ca),
                "--tls-auth-clients",
                "no",
                "--requirepass",
                PASSWORD,
            ]
        )
    except OSError as exc:
        pytest.skip(f"this server binary has no TLS support: {exc}")
    try:
        url = f"rediss://:{PASSWORD}@127.0.0.1:{tls_port}/0"
        assert connect(url, ssl_ca_certs=str(ca)).ping()
        assert connect(f"{url}?ssl_ca_certs={ca}").ping()
        assert RedisResource(url=url, ssl_ca_certs=str(ca)).get_client().ping()
        _consumer_lands_everything(url, tmp_path / "landing", ssl_ca_certs=str(ca))
        with pytest.raises(RedisUnavailable) as info:  # the system CAs do not know our CA
            connect(url)
        assert PASSWORD not in str(info.value)
    finally:
        server.stop()


@dataclasses.dataclass(frozen=True)
class _Error:
    """The fields of Dagster's error info that launch reads (its class is not public API)."""

    cls_name: str
    message: str
    cause: _Error | None = None
    context: _Error | None = None


def test_a_failed_runs_reason_is_its_root_cause_redacted_on_one_line() -> None:
    from shadow_pipeline.launch import _root_message

    error = _Error

    root = error("ConnectionError", f"redis.exceptions.ConnectionError: lost redis://:{PASSWORD}@db:6379/0\n  again\n")
    handled = error("KeyError", "KeyError: 'x'\n")
    for wrapped in (
        error("DagsterExecutionStepExecutionError", 'Error occurred while executing op "landing_zone":\n', cause=root),
        error("DagsterExecutionStepExecutionError", "Error occurred while executing op:\n", context=root),
    ):
        assert _root_message(wrapped) == "redis.exceptions.ConnectionError: lost redis://:***@db:6379/0 again"
    # A user exception raised while handling another: its own message, not the handled one's.
    assert _root_message(error("ValueError", "ValueError: no such hour\n", context=handled)).startswith("ValueError")


# A password that every parser stumbles on, around a marker that cannot occur by chance: brackets (urllib takes
# them for an IPv6 host), a fullwidth at sign (U+FF20, NFKC), whitespace and ']', a '/' that moves the host, no
# host at all, a query value redis-py rejects, a scheme it does not know. None may show the marker.
MARKER = "Mk9Qz7Wv"


def _hostile_urls(port: int) -> list[str]:
    return [
        f"redis://u:[{MARKER}]@127.0.0.1:{port}/0",
        f"redis://u:{MARKER}\uff20x@127.0.0.1:{port}/0",
        f"redis://u:{MARKER} x]y@127.0.0.1:{port}/0",
        f"redis://:{MARKER}/x@127.0.0.1:{port}/0",
        f"redis://:{MARKER}",
        f"redis://127.0.0.1:{port}/0?password={MARKER}&socket_timeout=x",
        f"REDIS://:{MARKER}@127.0.0.1:{port}/0",
    ]


def test_every_command_refuses_a_hostile_url_in_one_line_without_the_password(tmp_path: Path) -> None:
    """Each command that takes a Redis URL, with each URL: exit 2, one "error:" line that names REDIS_URL, no
    traceback, the marker nowhere. One process imports the CLI and forks a child per case (test_cli)."""
    from shadow_pipeline_tests.test_cli import COMMANDS, HOUR, _run_forked, _with

    commands = {**COMMANDS, "tune": ["tune", "--hours", HOUR, "--symbols", "BTCUSDT"]}
    urls = _hostile_urls(_free_port())
    cases = [(name, url) for name in commands for url in urls]
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (tmp_path / "forked").mkdir()
    outs = _run_forked([(commands[name], _with(url, tmp_path)) for name, url in cases], tmp_path / "forked")
    for (name, url), out in zip(cases, outs, strict=True):
        said = [line for line in out.stderr.splitlines() if line.strip()]
        assert out.returncode == 2 and len(said) == 1, (name, url, out.stdout, out.stderr)
        assert said[0].startswith("error: REDIS_URL is not a valid Redis URL: "), (name, said)
        assert MARKER not in out.stdout + out.stderr and "Traceback" not in out.stderr, (name, url)


def _holding(folder: Path, secret: str) -> list[str]:
    """Files under ``folder`` that hold ``secret``: as bytes, or in a cell of an SQLite database, zlib-compressed
    or not (Dagster compresses job snapshots)."""
    needle = secret.encode()
    found = [str(path) for path in folder.rglob("*") if path.is_file() and needle in path.read_bytes()]
    for database in folder.rglob("*.db"):
        with contextlib.closing(sqlite3.connect(database)) as db:
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for row in db.execute(f'SELECT * FROM "{table}"'):
                    for cell in row:
                        raw = cell if isinstance(cell, bytes) else str(cell).encode()
                        with contextlib.suppress(zlib.error):
                            raw += zlib.decompress(raw)
                        if needle in raw:
                            found.append(f"{database}:{table}")
    return found


DG_LAUNCH = [str(Path(sys.executable).parent / "dg"), "launch", "--job", "feed_replay_job"]


def test_dg_launch_stores_no_password_in_dagster_home(tmp_path: Path) -> None:
    """A run on a password-protected Redis (the URL given as {env: REDIS_URL} in run config), then a run whose
    REDIS_URL urllib cannot parse: neither leaves the password in the run storage, event logs or compute logs."""
    password = f"{MARKER} ]@:/#?%\uff20end"
    server = start_server(["--requirepass", password])
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((Path(__file__).parents[1] / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "SHADOW_DATA_DIR": str(tmp_path / "data")}
    env["SHADOW_SYMBOLS"] = "BTCUSDT"
    feed = {"ops": {"replayed_feed": {"config": {"minutes": 0.05}}}}
    from_env = {**feed, "resources": {"redis": {"config": {"url": {"env": "REDIS_URL"}}}}}
    runs = [
        (f"redis://:{quote(password, safe='')}@127.0.0.1:{server.port}/0", from_env),
        (f"redis://u:[{MARKER}]@127.0.0.1:{server.port}/0", feed),
    ]
    try:
        outs = [
            subprocess.run(
                [*DG_LAUNCH, "--config-json", json.dumps(config)],
                env={**env, "REDIS_URL": url},
                cwd=Path(__file__).parents[1],
                capture_output=True,
                text=True,
                timeout=300,
            )
            for url, config in runs
        ]
    finally:
        server.stop()
    assert any(home.rglob("*.err")) and any(home.rglob("*.db"))  # compute logs and run storage were written
    assert _holding(home, MARKER) == []
    assert [out.returncode for out in outs] == [0, 1], outs[0].stderr[-2000:]
    assert not [out for out in outs if MARKER in out.stdout + out.stderr]
    assert "REDIS_URL is not a valid Redis URL: a '[' or ']' outside an IPv6 host" in outs[1].stderr
