"""Stage 0: the stand-in feed handler (replays a market into the tick stream)."""
