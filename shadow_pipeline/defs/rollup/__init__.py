"""Stage 7: rollups of a day's hours per instrument, and the profiles kept for them compared side by side."""
