"""The faults a server injects and what it reports, shared by the server, its thread wrapper and the CLI."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServerFaults:
    """Each fault fires at most once per server (``slow_reader_seconds`` and ``max_connection_seconds`` apply to
    every connection); indices are 0-based and count what the server sent, see docs/venue-server.md."""

    drop_after: int | None = None
    lose_frames: int = 0
    stall_after: int | None = None
    stall_seconds: float = 0.0
    gap_at: int | None = None
    restart_at: int | None = None
    malformed_at: int | None = None
    slow_reader_seconds: float | None = None
    max_connection_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.drop_after is not None and self.drop_after < 1:
            raise ValueError(f"drop_after must be >= 1 (frames sent before the cut), got {self.drop_after}")
        for name in ("stall_after", "gap_at", "restart_at", "malformed_at"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if self.lose_frames < 0:
            raise ValueError(f"lose_frames must be >= 0, got {self.lose_frames}")
        for name in ("stall_seconds", "slow_reader_seconds", "max_connection_seconds"):
            seconds = getattr(self, name)
            # `not >=` also refuses NaN
            if seconds is not None and not (0 <= seconds < float("inf")):
                raise ValueError(f"{name} must be a finite number >= 0, got {seconds}")


@dataclass
class ServerStats:
    """``frames_sent`` counts market frames written to connections (one per connection it went to);
    ``frames_lost`` those that passed while a dropped client was away."""

    frames_sent: int = 0
    connections: int = 0
    rest_snapshots: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    done: bool = False
    frames_lost: int = 0

    def fired(self, fault: str) -> None:
        self.faults[fault] = self.faults.get(fault, 0) + 1
