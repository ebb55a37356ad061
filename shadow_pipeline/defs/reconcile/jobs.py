"""The bot's loop for one partition: a profile with strategy external from the stream to its order-by-order check."""

import dagster as dg

from shadow_pipeline.defs.run_queue import shadow_tags

RECONCILE_JOB = "reconcile_job"

reconcile_job = dg.define_asset_job(
    name=RECONCILE_JOB,
    selection=dg.AssetSelection.groups("ingest", "shadow", "export", "dryrun", "reconcile"),
    tags=shadow_tags(),  # it drains the stream and shadows: the queue's limits apply to it as to shadow_job
    description="One (hour, symbol) of a bot's own orders (profile strategy external): ingest, the shadow of the "
    "bot's order stream, KPI export, the per-window dry-run against the bot's fills, and the per-order "
    "reconciliation of every order with its real fills (docs/reconciliation.md).",
)
