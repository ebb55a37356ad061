"""Pieces of the run notes (domain/kpis/run_notes.py): the commit that produced a number and the ingest quality."""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shadow_pipeline.settings import commit_override


@functools.cache
def commit_sha() -> str:
    """$SHADOW_COMMIT_SHA (set it in images without .git), else the checkout's HEAD, else "unknown"."""
    override = commit_override()
    if override:
        return override
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def ingest_note(quality: Mapping[str, Any]) -> str:
    """``seq_gaps=<n> reordered=<n> bp_drops=<n>`` from the partition's tick_quality (n/a when unknown)."""
    names = {"seq_gaps": "gaps", "reordered": "reordered", "bp_drops": "drops"}
    return " ".join(f"{label}={quality.get(key, 'n/a')}" for label, key in names.items())
