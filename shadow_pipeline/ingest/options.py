"""The ingest options, declared once: default, range and help of each.

``IngestSettings`` is the one declaration. The ``tick_stream`` resource is built on it (so the launchpad shows
and checks the same fields), ``IngestOptions`` adds the consumer's name to it, and the ``ingest`` command's
options are generated from its fields (``cli_options``): a default, a bound or a help text changes here only.
Beyond the ranges a value is a typo, and an infinite one would overflow the int nanoseconds it becomes.
"""

from __future__ import annotations

import socket
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shadow_pipeline.domain.market.reorder import DEFAULT_CAPACITY
from shadow_pipeline.redis_io.keys import CONSUMER_GROUP, dead_letter_stream
from shadow_pipeline.redis_io.streams import DEFAULT_STREAM
from shadow_pipeline.settings import ingest_slot

_DAY_MS = 86_400_000
GroupStart = Literal["0", "$"]  # where a new group starts: everything in the stream, or only new entries


def default_consumer_name(slot: str | None = None) -> str:
    """``<host>-<slot>``: the same after a restart on the same host (or pod slot), so that a restarted consumer
    finds its own pending entries first. Two consumers on one host need different slots (``--slot``);
    ``$SHADOW_INGEST_SLOT`` sets the default slot (e.g. a StatefulSet ordinal)."""
    return f"{socket.gethostname()}-{slot or ingest_slot()}"


class IngestSettings(BaseModel):
    """How a consumer reads the tick stream; every field is also a run config field and a CLI option."""

    stream: str = Field(default=DEFAULT_STREAM, description="The tick stream the feed handler writes.")
    group: str = Field(default=CONSUMER_GROUP, description="Consumer group of Shadow Mode.")
    batch: int = Field(default=20_000, ge=1, le=1_000_000, description="Entries per XREADGROUP.")
    block_ms: int = Field(default=1000, ge=0, le=_DAY_MS, description="XREADGROUP BLOCK while serving.")
    claim_idle_ms: int = Field(
        default=60_000, ge=0, le=_DAY_MS, description="Claim entries idle this long from any consumer (XAUTOCLAIM)."
    )
    dead_after_ms: int = Field(
        default=10_000,
        ge=0,
        le=_DAY_MS,
        description="A consumer that has not read for this long while owning entries is dead: its entries are claimed.",
    )
    drain_wait_ms: int = Field(
        default=15_000,
        ge=0,
        le=_DAY_MS,
        description="A drain waits this long for entries live consumers hold; then it reports itself incomplete.",
    )
    claim_every_ms: int = Field(
        default=2_000,
        ge=0,
        le=_DAY_MS,
        description="While serving: claim and heartbeat this often (at most dead_after_ms / 3).",
    )
    max_deliveries: int = Field(
        default=10,
        ge=1,
        le=1_000_000,
        description="Dead-letter an entry whose processing failed this often (not: was delivered this often).",
    )
    forget_after_ms: int = Field(
        default=600_000,
        ge=0,
        le=7 * _DAY_MS,
        description="Delete consumers idle this long that own nothing from the group.",
    )
    watermark_ms: float = Field(
        default=40.0, ge=0, le=3_600_000, description="Reorder watermark in exchange time (ms); at most an hour."
    )
    buffer_capacity: int = Field(
        default=DEFAULT_CAPACITY, ge=1, le=100_000_000, description="Ticks the reorder buffer holds per symbol."
    )
    land_every: int = Field(
        default=20_000,
        ge=1,
        le=100_000_000,
        description="Released ticks gathered before a landing write (fewer, larger Parquet files).",
    )
    land_every_ms: int = Field(
        default=1_000, ge=0, le=_DAY_MS, description="Land released ticks at least this often (a quiet feed)."
    )
    group_start_id: GroupStart = Field(
        default="0", description='Where a new group starts: "0" everything in the stream, "$" only new entries.'
    )
    reconnect_seconds: float = Field(
        default=60.0, ge=0, le=86_400, description="Keep retrying a lost connection this long, then give up."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.dead_after_ms <= self.block_ms:
            # A serving consumer reads (or heartbeats) at least every block_ms: below that, a live one looks dead.
            raise ValueError(
                f"ingest option dead_after_ms ({self.dead_after_ms}) must exceed block_ms ({self.block_ms})"
            )
        if 0 < self.drain_wait_ms <= self.dead_after_ms:
            # A drain must outwait dead_after_ms to tell a consumer killed just before it from a live one.
            raise ValueError(
                f"ingest option drain_wait_ms ({self.drain_wait_ms}) must exceed dead_after_ms ({self.dead_after_ms})"
            )
        return self

    def ingest_settings(self) -> dict[str, Any]:
        """The values of IngestSettings' own fields (a subclass, e.g. the resource, has more)."""
        return {name: getattr(self, name) for name in IngestSettings.model_fields}


class IngestOptions(IngestSettings):
    """One consumer's options: the settings and the consumer's name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    consumer: str = Field(default_factory=default_consumer_name, description="This consumer's name in the group.")

    @property
    def dead_letter_stream(self) -> str:
        return dead_letter_stream(self.stream)

    @property
    def claim_every_seconds(self) -> float:
        """The claim and heartbeat period: often enough that a live consumer never looks dead."""
        return min(self.claim_every_ms, self.dead_after_ms / 3) / 1000
