"""Plain code, no Dagster and no Redis, grouped by concern: market data, simulation, strategies, KPIs and gates,
validation, tuning (the venue readers live next to the feed, in ``shadow_pipeline.feed.readers``)."""
