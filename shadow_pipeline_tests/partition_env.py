"""Running a test where the partitions have instruments the session's do not, or skipping one that needs the
default checks form.

The partitions are fixed when the code loads (``$SHADOW_SYMBOLS``), and a recording of another venue lands in
its venue's partition (``BTCUSDT.bybit-linear``). A test that materializes such a partition calls
:func:`has_partitions` first: in a session without them it runs itself again in a child pytest whose
``$SHADOW_SYMBOLS`` adds them (on the same Redis), asserts that the child passed, and tells the caller to return.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shadow_pipeline.defs.partitions import PARTITIONED_CHECKS, configured_symbols, instrument_keys
from shadow_pipeline.settings import REDIS_URL_ENV, SYMBOLS_ENV

# For a test of the partitioned checks (the default), in a session run with $SHADOW_PARTITIONED_CHECKS=false.
needs_partitioned_checks = pytest.mark.skipif(
    not PARTITIONED_CHECKS, reason="$SHADOW_PARTITIONED_CHECKS=false: the inline checks are plain in this session"
)
_CHILD = "SHADOW_TEST_PARTITIONS_CHILD"  # set in the child, so that a child without the partitions fails, not loops


def has_partitions(request: pytest.FixtureRequest, redis_url: str, *keys: str) -> bool:
    """True when this process has the partitions of instruments ``keys``; else the test ran in a child (see the
    module) and the caller returns."""
    wanted = instrument_keys(keys)
    missing = sorted(set(wanted) - set(configured_symbols()))
    if not missing:
        return True
    assert not os.environ.get(_CHILD), f"the child pytest still lacks partitions {missing}"
    env = {
        **os.environ,
        SYMBOLS_ENV: ",".join(instrument_keys([*configured_symbols(), *wanted])),
        REDIS_URL_ENV: redis_url,
        _CHILD: "1",
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=short", "--show-capture=no"]
    run = subprocess.run(
        [*command, request.node.nodeid],
        cwd=request.config.rootpath,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    return False
