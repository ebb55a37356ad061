"""What a consumer does when the landing zone refuses a write (docs/ingest.md, "Troubleshooting").

Entries are acked only after their write returns, so a refused write never loses a tick: its entries stay
pending. What differs is who can fix it. A full disk (ENOSPC, or EDQUOT for a quota) is fixed by someone freeing
space, after which the very same write succeeds: a serving consumer waits for that with no bound, visible as
``shadow_ingest_landing_blocked`` and a WARNING line per attempt (a time-out would only turn a full disk into a
restart loop that hits the same full disk). A batch (a drain, Dagster's ``landing_zone``) has a caller who reruns
it, so it stops at once. A read-only file system, missing permissions or an I/O error do not pass by waiting:
both stop, with one line that says what to fix.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass

from shadow_pipeline.ingest.metrics import IngestMetrics

log = logging.getLogger(__name__)
FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
FIRST_RETRY_SECONDS = 0.5
MAX_RETRY_SECONDS = 30.0  # while blocked: a WARNING line, and one write attempt, at least this often
_NOTHING_LOST = "nothing was acked that was not landed"


class LandingError(RuntimeError):
    """The landing zone refused a write and the consumer stopped; the message is one line for the operator."""


def free_space(path: str) -> str:
    """Space left to unprivileged writers on ``path``'s file system (the nearest folder that exists)."""
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    try:
        free = float(shutil.disk_usage(path).free)
    except OSError:
        return "unknown"
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if free < 1024 or unit == "GiB":
            return f"{free:.0f} {unit}" if unit == "bytes" else f"{free:.1f} {unit}"
        free /= 1024
    raise AssertionError("unreachable")


def refusal(exc: OSError, root: str, then: str) -> LandingError:
    """The one line for a refused write: what is wrong, what to do, and that nothing was lost."""
    reason = exc.strerror or str(exc)
    if exc.errno in FULL:
        return LandingError(
            f"landing zone {root} is full ({reason}; {free_space(root)} free): free space under {root}, "
            f"then {then}; {_NOTHING_LOST}"
        )
    if exc.errno == errno.EROFS:
        fix = "remount it read-write or choose another landing zone"
        return LandingError(f"landing zone {root} is on a read-only file system: {fix}, then {then}; {_NOTHING_LOST}")
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in (errno.EACCES, errno.EPERM):
        fix = "give the consumer's user write access to it"
        return LandingError(
            f"landing zone {root} is not writable{where}: {reason}: {fix}, then {then}; {_NOTHING_LOST}"
        )
    return LandingError(f"cannot write to landing zone {root}{where}: {reason}: fix it, then {then}; {_NOTHING_LOST}")


@dataclass
class LandingAttempts:
    """Runs each landing write (``LandingStore.write(attempts=...)``): ``stop`` is the serving consumer's stop
    event, and with it a full disk is waited out until space is freed or the consumer is stopped; without it (a
    batch) any refusal raises :class:`LandingError` at once."""

    root: str
    metrics: IngestMetrics
    stop: threading.Event | None = None

    def __call__(self, write: Callable[[], None]) -> None:
        wait = FIRST_RETRY_SECONDS
        try:
            while True:
                try:
                    write()
                    return
                except OSError as exc:
                    self.metrics.landing_errors.labels(errno.errorcode.get(exc.errno or 0, str(exc.errno))).inc()
                    if self.stop is None:
                        raise refusal(exc, self.root, "run the drain again") from exc
                    if exc.errno not in FULL or self.stop.is_set():
                        raise refusal(exc, self.root, "start the consumer again") from exc
                    self.metrics.landing_blocked.set(1)
                    log.warning(
                        "landing zone %s is full (%s; %s free): free space under %s; nothing is acked meanwhile, "
                        "next attempt in %.1f s",
                        self.root,
                        exc.strerror,
                        free_space(self.root),
                        self.root,
                        wait,
                    )
                # Stopped while blocked: one last attempt at once, then the refusal above.
                wait = 0.0 if self.stop.wait(wait) else min(wait * 2, MAX_RETRY_SECONDS)
        finally:
            self.metrics.landing_blocked.set(0)
