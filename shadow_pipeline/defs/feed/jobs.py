"""The feed stage's job: what `make demo` runs first to have live-like ticks in the stream."""

import dagster as dg

FEED_REPLAY_JOB = "feed_replay_job"

feed_replay_job = dg.define_asset_job(
    name=FEED_REPLAY_JOB,
    selection=dg.AssetSelection.groups("feed"),
    description="Replay a market (the synthetic one by default, or a recording) into the tick stream, as the "
    "exchange feed handler would. Called main_job before; it only ever fed the stream.",
)
