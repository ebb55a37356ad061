"""Ingest: the consumer-group reader that lands ticks from the Redis Stream exactly once."""
