"""Schedules: the clock-driven alternative to the closed-window sensor (stopped by default)."""

from __future__ import annotations

import dagster as dg

from shadow_pipeline.defs.pipeline.jobs import pipeline_job

hourly_pipeline_schedule = dg.build_schedule_from_partitioned_job(
    pipeline_job,
    minute_of_hour=5,  # late ticks of the hour have arrived by then
    description="Runs the previous hour for every symbol end to end, five minutes past each hour (wall clock).",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
