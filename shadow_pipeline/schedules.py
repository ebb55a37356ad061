"""Schedules: the clock-driven alternative to the closed-window sensor (stopped by default)."""

from __future__ import annotations

import dagster as dg

from shadow_pipeline.jobs import ingest_job

hourly_ingest_schedule = dg.build_schedule_from_partitioned_job(
    ingest_job,
    minute_of_hour=5,  # late ticks of the hour have arrived by then
    description="Ingests the previous hour for every symbol, five minutes past each hour (wall clock).",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
