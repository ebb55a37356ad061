"""Queue-aware replay: the reality source the dry-run validator holds the shadow's predictions against.

The shadow's touch + dwell rule is a proxy for queue position; this replay models the queue itself, as far as
top-of-book data allows (``docs/dry-run.md``, "Queue-aware replay: what it assumes"). It quotes exactly as the
shadow does (the same kernel runs the decision, requote, latency, inventory and hedge rules), so any difference
in fills comes from the fill rule alone:

- an order joins the back of the queue at its price (queue ahead = the displayed touch size), at the front
  when it improves the touch, and behind an unknown queue while its price is behind the touch, until the price
  becomes the touch (then: behind the size displayed at that moment);
- opposite-aggressor trades at the price take the queue ahead first, then fill us (partial fills); a trade
  through the price or the opposite touch reaching it fills all that remains; the level emptying on the touch
  after trades at the price fills all that remains, without such trades it means everyone ahead left;
- the queue ahead never exceeds the size displayed at the price, and ``size_decrease_share`` of a decrease
  trades do not explain also counts as ahead of us;
- an order being replaced or cancelled rests, and can fill, until its cancel lands.
"""

from __future__ import annotations

import pandas as pd

from shadow_pipeline.domain.profiles import StrategyParams
from shadow_pipeline.domain.simulator import QueueOptions, Simulation, run

__all__ = ["DEFAULT_OPTIONS", "QueueOptions", "queue_replay"]

DEFAULT_OPTIONS = QueueOptions()  # risk-averse queue, cancels as fast as orders


def queue_replay(ticks: pd.DataFrame, params: StrategyParams, options: QueueOptions = DEFAULT_OPTIONS) -> Simulation:
    """The shadow's quotes over one symbol's ticks (sorted by ``ts_server``), filled by queue position.

    Returns the simulator's ``Simulation`` (so ``iteration_kpis`` applies unchanged) with one more fills column,
    ``queue_ahead_at_entry`` (base currency; NaN for hedges and for orders that went live behind the touch).
    Same input, same output.
    """
    cancel_ms = params.order_entry_latency_ms if options.cancel_latency_ms is None else options.cancel_latency_ms
    if cancel_ms > params.min_requote_ms + params.order_entry_latency_ms:
        # Sends on a side are min_requote_ms apart, so up to this bound a side rests at most its live order and
        # the one it replaced; the kernel tracks those two.
        raise ValueError(
            f"cancel_latency_ms {cancel_ms} exceeds min_requote_ms + order_entry_latency_ms "
            f"({params.min_requote_ms} + {params.order_entry_latency_ms}): a side could rest three orders"
        )
    return run(ticks, params, options)
