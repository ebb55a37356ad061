"""Several long-running tasks of one command (a consumer or live loop per shard) on threads of their own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def run_together(tasks: Sequence[tuple[str, Callable[[], T]]], stop: threading.Event) -> list[T]:
    """Each ``(thread name, task)`` to its end, the results in the tasks' order. The first error a task raised is
    raised here once all have ended: ``stop`` is set when one fails, so the others end too. The calling thread
    joins in short steps, because the signal handlers (SIGTERM sets ``stop``) run only on it."""
    results: list[T | None] = [None] * len(tasks)
    errors: list[BaseException] = []

    def run(number: int, task: Callable[[], T]) -> None:
        try:
            results[number] = task()
        except BaseException as exc:  # handed to the calling thread
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=run, args=(n, task), name=name) for n, (name, task) in enumerate(tasks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():
            thread.join(0.5)
    if errors:
        raise errors[0]
    return [result for result in results if result is not None]
