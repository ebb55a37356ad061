"""Schedules: the clock-driven alternative to the closed-window sensor (stopped by default)."""

from __future__ import annotations

import dagster as dg

from shadow_pipeline.defs.pipeline.jobs import pipeline_job

hourly_pipeline_schedule = dg.build_schedule_from_partitioned_job(
    pipeline_job,
    minute_of_hour=5,  # late ticks of the hour have arrived by then
    description="Runs the last finished partition end to end for every instrument (under day x group: every "
    "group), five minutes past its end (wall clock): hourly, or daily under day x group.",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)
