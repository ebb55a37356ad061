"""Dagster definitions, one folder per stage of the flow; `definitions.py` loads them all.

Each stage folder holds that stage's assets, checks, jobs, sensors and schedules. Resources are bound once in
`resources.py`; the hour x symbol partitions are in `partitions.py`. The code the definitions call (domain,
ingest engine, Redis access, reporting) lives outside this folder and knows nothing about Dagster.
"""
