"""`shadow-pipeline loop` (`make loop`) as a user runs it: bot -> orders -> shadow, venue -> fills ->
reconciliation, on an embedded Redis it starts itself, exit 0, every order accounted for."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from shadow_pipeline.domain.validation.hftbacktest_engine import hftbacktest_available
from shadow_pipeline.settings import REDIS_URL_ENV

HOUR = "2024-08-09-00:00"


@pytest.mark.skipif(not hftbacktest_available(), reason="the paper venue needs the hbt extra")
def test_the_loop_runs_end_to_end_on_the_embedded_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != REDIS_URL_ENV}
    env.update(
        DAGSTER_HOME=str(tmp_path),
        SHADOW_DATA_DIR=str(tmp_path / "data"),
        SHADOW_ARTIFACTS_DIR=str(tmp_path / "artifacts"),
    )
    done = subprocess.run(
        ["shadow-pipeline", "loop", "--minutes", "3"], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [published] = re.findall(rf"^{HOUR} BTCUSDT\s+\d+\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", done.stdout, re.M)
    intents, orders, fills, added = (int(n) for n in published)
    assert intents > 0 and 0 < orders <= intents and 0 < fills == added
    report = json.loads((tmp_path / "artifacts/dryrun" / HOUR / "BTCUSDT/ORDER_RECONCILIATION.json").read_text())
    confusion = {row["group"]: row["orders"] for row in report["confusion"]}
    assert sum(confusion.values()) == orders  # every order of the bot is in exactly one group
    assert "another model" in done.stdout
