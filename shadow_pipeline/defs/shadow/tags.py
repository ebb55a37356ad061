"""The verdict as run tags: Dagster's runs list shows every No-Go run as a green Success (a No-Go is a verdict,
not a crash), so the run carries its verdict where that list shows it and filters on it.

- ``shadow/verdict``: ``GO`` or ``NO-GO``; a run over several partitions is ``NO-GO`` as soon as one is.
- ``shadow/no-go``: the No-Go partitions, as ``<hour>.<symbol>`` (``2024-08-09T00.ETHUSDT``), ``_``-joined.
- ``shadow/reason``: the first failed gate of the first No-Go partition, short (``net_bps_-3.21_lt_0``).
- ``shadow/profile``: the profile judged, so runs of several profiles on one partition are told apart
  (docs/rollups.md, "Profiles side by side").

Values keep to Dagster's strict tag rules (``[A-Za-z0-9_.-]``, at most 63 characters), so the UI can filter on
them; the full reasons are in the asset's metadata and the failed checks (docs/verdict.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import dagster as dg

from shadow_pipeline.domain.kpis.gates import GO, NO_GO, GateOutcome, Verdict

VERDICT_TAG = "shadow/verdict"
NO_GO_TAG = "shadow/no-go"
REASON_TAG = "shadow/reason"
PROFILE_TAG = "shadow/profile"
MAX_VALUE = 63  # Dagster's strict limit on a tag value
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_.-]")
_MORE = re.compile(r"^and-(\d+)-more$")  # the count of No-Go partitions that did not fit


def tag_value(text: str) -> str:
    """``text`` as a strict tag value: characters Dagster refuses become ``_``, cut at 63 characters."""
    return _NOT_ALLOWED.sub("_", text)[:MAX_VALUE]


def partition_label(hour: str, symbol: str) -> str:
    """``2024-08-09-00:00`` and ``ETHUSDT`` as ``2024-08-09T00.ETHUSDT``: the partition in tag characters."""
    return tag_value(f"{hour[:10]}T{hour[11:13]}.{symbol}")


def short_reason(outcome: GateOutcome) -> str:
    """A failed gate in tag characters: the KPI, its value and the bound it missed."""
    gate = outcome.gate
    if outcome.value is None:
        return tag_value(f"{gate.kpi}_unknown")
    return tag_value(f"{gate.kpi}_{outcome.value:.3g}_{'lt' if gate.at_least else 'gt'}_{gate.threshold:g}")


def _joined(labels: list[str], hidden: int) -> str:
    """Labels ``_``-joined within the limit; those that do not fit are counted (``and-3-more``) rather than cut."""
    for shown in range(len(labels), 0, -1):
        more = len(labels) - shown + hidden
        text = "_".join([*labels[:shown], *([f"and-{more}-more"] if more else [])])
        if len(text) <= MAX_VALUE:
            return text
    return f"and-{len(labels) + hidden}-more"


def verdict_tags(current: Mapping[str, str], hour: str, symbol: str, judged: Verdict) -> dict[str, str]:
    """The run's verdict tags after judging (hour, symbol), merged with those ``current`` already holds from the
    run's earlier partitions."""
    earlier = [label for label in current.get(NO_GO_TAG, "").split("_") if label]
    hidden = sum(int(m.group(1)) for m in map(_MORE.match, earlier) if m)
    if judged.go:
        if current.get(VERDICT_TAG) == NO_GO:
            return {}
        return {VERDICT_TAG: GO}
    failing = [label for label in earlier if not _MORE.match(label)] + [partition_label(hour, symbol)]
    first = next(o for o in judged.outcomes if not o.passed)
    return {
        VERDICT_TAG: NO_GO,
        NO_GO_TAG: _joined(list(dict.fromkeys(failing)), hidden),
        REASON_TAG: current.get(REASON_TAG) or short_reason(first),
    }


def tag_run(context: dg.AssetExecutionContext, hour: str, symbol: str, judged: Verdict, profile: str) -> dict[str, str]:
    """Add the verdict and profile tags to the running run; returns the tags added."""
    run = context.instance.get_run_by_id(context.run.run_id)
    tags = {**verdict_tags(run.tags if run else {}, hour, symbol, judged), PROFILE_TAG: tag_value(profile)}
    context.instance.add_run_tags(context.run.run_id, tags)
    return tags
