"""Stage 6: the auto-tuner, walk-forward validated, and the tuned profile it proposes."""
