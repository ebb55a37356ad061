"""The project as a newcomer meets it: the dg layout works, and the environment is read in one place only."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import shadow_pipeline

PACKAGE = Path(shadow_pipeline.__file__).resolve().parent
ROOT = PACKAGE.parent
DG = Path(sys.executable).with_name("dg")
ENV_WRITE = re.compile(
    r"os\.environ\s*\[[^\]]+\]\s*=|os\.environ\.(setdefault|update|pop|clear)\(|os\.putenv\(|del\s+os\.environ"
)
ENV_READ = re.compile(r"os\.environ|os\.getenv\(")
# with-redis hands the embedded server's URL to its child process: the one place that passes the environment on.
ENV_READERS = {PACKAGE / "settings.py", PACKAGE / "cli.py"}
COPY_IGNORED = shutil.ignore_patterns(
    ".git", ".venv", ".dagster_home", ".shadow_data", "artifacts", "__pycache__", "*.egg-info", ".*_cache"
)


def _lines(pattern: re.Pattern[str]) -> dict[Path, list[str]]:
    found: dict[Path, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = enumerate(path.read_text().splitlines(), 1)
        hits = [f"{n}: {line.strip()}" for n, line in lines if pattern.search(line)]
        if hits:
            found[path] = hits
    return found


def test_no_code_writes_the_environment_to_steer_other_code() -> None:
    assert _lines(ENV_WRITE) == {}


def test_the_environment_is_read_in_settings_only() -> None:
    readers = _lines(ENV_READ)
    assert set(readers) <= ENV_READERS, readers
    assert all("env={**os.environ" in hit for hit in readers.get(PACKAGE / "cli.py", [])), readers


def _dg(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(project), "DAGSTER_HOME": str(project / ".dagster_home")}
    env["VIRTUAL_ENV"] = sys.prefix
    return subprocess.run([str(DG), *args], cwd=project, env=env, capture_output=True, text=True, timeout=600)


def test_dg_scaffold_adds_an_asset_that_loads_without_another_edit(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=COPY_IGNORED)
    (project / ".dagster_home").mkdir()
    (project / ".dagster_home/dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    scaffold = _dg(project, "scaffold", "defs", "dagster.asset", "probe.py")
    assert scaffold.returncode == 0, scaffold.stderr[-2000:]
    assert (project / "shadow_pipeline/defs/probe.py").exists()
    listed = _dg(project, "list", "defs", "--json")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assets = {a["asset_key"] for a in json.loads(listed.stdout)["assets"]}
    assert {"probe", "landing_zone", "raw_ticks", "shadow_report", "live_ready_profile"} <= assets
    checked = _dg(project, "check", "defs")
    assert checked.returncode == 0, checked.stderr[-2000:]


PLAIN_CODE = [PACKAGE / "domain", PACKAGE / "feed" / "recordings.py", PACKAGE / "feed" / "readers"]
FORBIDDEN_IMPORT = re.compile(r"^\s*(import|from)\s+(dagster\w*|redis)\b", re.MULTILINE)
CONCERNS = {"market", "simulation", "strategies", "kpis", "validation", "tuning"}


def test_plain_code_imports_neither_dagster_nor_redis() -> None:
    files = [p for root in PLAIN_CODE for p in ([root] if root.is_file() else sorted(root.rglob("*.py")))]
    assert len(files) > 20
    offenders = {str(p.relative_to(PACKAGE)): FORBIDDEN_IMPORT.findall(p.read_text()) for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_domain_depends_on_nothing_outside_it() -> None:
    """The layers point inward: feed, ingest, Redis I/O and Dagster code use the domain, never the other way
    (``settings``, the one reader of the environment and a leaf, names the default files)."""
    outward = re.compile(r"^\s*(?:from|import)\s+shadow_pipeline\.(?!domain\b|settings\b)(\w+)", re.MULTILINE)
    found = {str(p.relative_to(PACKAGE)): outward.findall(p.read_text()) for p in (PACKAGE / "domain").rglob("*.py")}
    assert {k: v for k, v in found.items() if v} == {}


def test_domain_is_grouped_by_concern() -> None:
    domain = PACKAGE / "domain"
    assert {p.name for p in domain.iterdir() if p.is_dir() and p.name != "__pycache__"} == CONCERNS
    assert sorted(p.name for p in domain.glob("*.py")) == ["__init__.py"]  # every module sits in its concern


PRIVATE_DAGSTER = re.compile(r"^\s*(from|import)\s+dagster\w*\._", re.MULTILINE)


def test_no_private_dagster_module_is_imported() -> None:
    """Dagster's underscore modules change without notice between releases; the public ``dagster`` API does not."""
    files = [*sorted(PACKAGE.rglob("*.py")), *sorted((ROOT / "shadow_pipeline_tests").rglob("*.py"))]
    offenders = {str(p.relative_to(ROOT)): PRIVATE_DAGSTER.findall(p.read_text()) for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}
