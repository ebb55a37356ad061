"""The tick consumer: XREADGROUP in batches, guard, reorder, land durably, then XACK.

Start-up order (so that nothing a crashed consumer held is lost): re-read this consumer's own pending
entries (the default name is stable across restarts: host and slot, no PID), claim what dead consumers own and
what any consumer left idle too long, then read new ones; while serving, claiming goes on periodically, and a
drain is complete only once nothing delivered before its end is pending (docs/ingest.md, "Claiming and
completeness"). An entry is acked only once the tick it carries is landed (or dropped by backpressure and
landed as a drop record, or written to the dead-letter stream in the same MULTI/EXEC as its XACK). Landing
dedups by entry id, so a redelivery after a crash between landing and ack never duplicates a tick.

The consumer's duties are the modules of this package: ``reading`` (new entries, one batch read ahead),
``claiming`` (its own pending entries, dead and idle consumers' entries), ``settling`` (landing, acking and
dead-lettering; a drain's completeness) and ``reconnecting``; ``tick_consumer`` binds them as the methods of
``TickConsumer``, so that a subclass can still override any one of them.
"""

from shadow_pipeline.ingest.consumer.report import IncompleteDrain, IngestReport, incomplete_message
from shadow_pipeline.ingest.consumer.tick_consumer import TickConsumer
from shadow_pipeline.ingest.options import IngestOptions, default_consumer_name

__all__ = [
    "IncompleteDrain",
    "IngestOptions",
    "IngestReport",
    "TickConsumer",
    "default_consumer_name",
    "incomplete_message",
]
