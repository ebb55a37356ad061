"""Stage 2: the strategy quoted on the ticks, KPIs per window, the Go/No-Go report and its gates."""
