"""Market data: the tick schema, hour windows, sequence accounting, the reorder buffer, partition quality, feed
faults, the synthetic market and top-of-book statistics."""
