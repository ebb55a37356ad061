"""KPIs per window and their aggregate, the KPI catalogue, Go/No-Go gates, KPI records and run notes."""
