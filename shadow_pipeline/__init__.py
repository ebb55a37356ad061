"""Shadow Mode for market-making strategies: Redis Stream ticks to simulated fills, KPIs and gates, on Dagster."""
