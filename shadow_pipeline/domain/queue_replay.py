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

from dataclasses import dataclass

import pandas as pd

from shadow_pipeline.domain.profiles import StrategyParams
from shadow_pipeline.domain.simulator import FeeModel, LatencyModel, QueueAware, Simulation, run


@dataclass(frozen=True)
class QueueOptions:
    """Knobs of the queue-aware replay that top-of-book data cannot settle (``docs/dry-run.md``); the profile gives
    everything else.

    ``size_decrease_share``: the fill model's share of unexplained size decreases taken to be ahead of the order
    (:class:`~shadow_pipeline.domain.simulator.QueueAware`; 0 is hftbacktest's risk-averse model).
    ``cancel_latency_ms``: the latency model's decision-to-cancel-landing delay, when it differs from order entry
    (``None``: ``order_entry_latency_ms``; :class:`~shadow_pipeline.domain.simulator.LatencyModel`).
    """

    size_decrease_share: float = 0.0
    cancel_latency_ms: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.size_decrease_share <= 1.0:
            raise ValueError(f"size_decrease_share {self.size_decrease_share} is not in [0, 1]")
        if self.cancel_latency_ms is not None and self.cancel_latency_ms < 0:
            raise ValueError(f"cancel_latency_ms {self.cancel_latency_ms} is negative")


DEFAULT_OPTIONS = QueueOptions()  # risk-averse queue, cancels as fast as orders


def queue_replay(ticks: pd.DataFrame, params: StrategyParams, options: QueueOptions = DEFAULT_OPTIONS) -> Simulation:
    """The shadow's quotes over one symbol's ticks (sorted by ``ts_server``), filled by queue position.

    Returns the simulator's ``Simulation`` (so ``iteration_kpis`` applies unchanged) with one more fills column,
    ``queue_ahead_at_entry`` (base currency; NaN for hedges and for orders that went live behind the touch).
    Same input, same output.
    """
    latency = LatencyModel.of(params, cancel_ms=options.cancel_latency_ms)
    return run(ticks, params, QueueAware(options.size_decrease_share), latency, FeeModel.of(params))
