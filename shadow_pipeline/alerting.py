"""Alerts from asset-check outcomes: each failed WARN or ERROR evaluation becomes one alert record.

Plain functions over Dagster's event records, so the sensor that calls them stays thin and the dedup key (run id
and the evaluation's storage id) is the same whoever writes the alert.
"""

from __future__ import annotations

import dagster as dg


def failed_evaluation(record: dg.EventLogRecord) -> dg.AssetCheckEvaluation | None:
    """The check evaluation of ``record`` when it did not pass (WARN or ERROR), else None."""
    event = record.event_log_entry.dagster_event
    evaluation = event.event_specific_data if event is not None else None
    if not isinstance(evaluation, dg.AssetCheckEvaluation) or evaluation.passed:
        return None
    return evaluation


def alert_fields(record: dg.EventLogRecord, evaluation: dg.AssetCheckEvaluation, partition: str) -> dict[str, str]:
    """``partition``: the evaluation's, else its run's (inline checks carry it only in the run's tags)."""
    return {
        "evaluation": f"{record.event_log_entry.run_id}:{record.storage_id}",
        "asset": evaluation.asset_key.to_user_string(),
        "check": evaluation.check_name,
        "partition": evaluation.partition or partition,
        "severity": evaluation.severity.value,
        "description": evaluation.description or "",
        "run_id": record.event_log_entry.run_id,
        "timestamp": f"{record.event_log_entry.timestamp:.3f}",
    }


def alert_text(fields: dict[str, str]) -> str:
    where = f" [{fields['partition']}]" if fields["partition"] else ""
    why = f": {fields['description']}" if fields["description"] else ""
    return f"{fields['severity']} {fields['asset']}.{fields['check']}{where} failed{why} (run {fields['run_id'][:8]})"
