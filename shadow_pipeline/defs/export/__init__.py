"""Stage 3: the KPIs exported to Redis for dashboards and the live bot's risk manager."""
