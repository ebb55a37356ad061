"""JSON Schemas shipped with the package (records written to Redis for downstream consumers)."""
