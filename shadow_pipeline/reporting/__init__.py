"""Presentation of shadow results: gate outcomes, the snapshot JSON, the Markdown report and KPI plots."""
