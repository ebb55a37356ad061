"""Stage 1: the tick stream drained into the landing zone, raw and normalized ticks per partition."""
