"""Market logic with no Dagster and no Redis: tick schema, recordings, synthetic market, faults, sequence math."""
