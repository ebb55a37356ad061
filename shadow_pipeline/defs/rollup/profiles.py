"""Results kept per profile: what lets a second profile on the same partition leave the first visible.

The partitions are hour x symbol and a MultiPartitionsDefinition takes no third dimension, so the profile is a
key of the result rather than of the partition (docs/rollups.md, "Profiles side by side"): every shadow_report
run also keeps its snapshot and windows under ``profiles/<profile>/`` (its run is tagged with the profile:
``defs/shadow/tags.PROFILE_TAG``), while the newest run stays the asset's materialization.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from shadow_pipeline.reporting.rollup import keep_result
from shadow_pipeline.resources import ArtifactsResource


def keep_profile_result(artifacts: ArtifactsResource, snapshot: dict[str, Any], windows: pd.DataFrame) -> Path:
    """Keep the partition's snapshot and windows under its profile; a profile name that cannot be a folder fails
    the run with the reason."""
    try:
        folder = artifacts.profile_folder(snapshot["hour"], snapshot["symbol"], snapshot["profile"])
    except ValueError as exc:
        raise dg.Failure(str(exc)) from None
    keep_result(folder, snapshot, windows)
    return folder
