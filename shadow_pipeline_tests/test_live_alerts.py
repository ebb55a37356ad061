"""The live alert rules name only metrics the feed and the live shadow export, and promtool accepts them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from shadow_pipeline.feed.live.metrics import FeedMetrics
from shadow_pipeline.live.metrics import LiveMetrics

RULES = Path(__file__).resolve().parents[1] / "docs/alerts/live.rules.yml"
_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created")


def _exported() -> set[str]:
    names: set[str] = set()
    for registry in (FeedMetrics("binance-usdm").registry, LiveMetrics().registry):
        for family in registry.collect():
            names.add(family.name)
            names.update(family.name + suffix for suffix in _SUFFIXES)
    return names


def test_every_metric_in_the_rules_is_exported() -> None:
    rules = [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} >= {"FeedSilent", "FeedReconnecting", "LiveShadowSlow", "LiveShadowStale"}
    exported = _exported()
    for rule in rules:
        named = set(re.findall(r"\b(shadow_[a-z_]+)\b", rule["expr"]))
        assert named, rule["alert"]
        assert named <= exported, (rule["alert"], named - exported)


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_accepts_the_rules() -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
