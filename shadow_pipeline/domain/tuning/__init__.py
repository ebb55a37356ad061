"""The auto-tuner: search space, ranking, walk-forward validation."""
