"""Processes a test starts in a session of their own (``start_new_session=True``): Dagster's CLI spawns code
servers and run workers, so the whole group is stopped, not only the process the test holds."""

from __future__ import annotations

import os
import signal
import subprocess

STOP_GRACE_S = 60.0


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, and SIGKILL it when it has not exited within the grace period."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
