"""Failed asset checks turned into alerts (Redis stream, log, Slack)."""
