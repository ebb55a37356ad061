"""The live shadow: the hourly shadow's KPIs for each window as soon as it closes (docs/live-shadow.md)."""
