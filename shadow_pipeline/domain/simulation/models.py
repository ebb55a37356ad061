"""The shadow's models by name: fill, latency and fee, one part each, as hftbacktest composes a backtest.

A profile chooses each by name (``fill.model``, ``latency_model``, ``fee_model``); :data:`FILL_MODELS`,
:data:`LATENCY_MODELS` and :data:`FEE_MODELS` are the one place a name meets its class, and every other module
asks the model object what it needs (its dry-run reality, the settings only it reads, its unknown knob, its
kernel arguments) instead of comparing names. Adding a fill model that the kernel's
two rules cover (a new parametrisation) is a class here plus its schema entry; a new fill *rule* also needs the
kernel's step 2 (``simulator.py``), which is one compiled loop for speed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, Protocol

import numpy as np

from shadow_pipeline.domain.strategies.profiles import (
    DEFAULT_PROB_EXPONENT,
    FILL_DWELL,
    FILL_QUEUE,
    QUEUE_POWER,
    QUEUE_PROBS,
    QUEUE_RISK_AVERSE,
    StrategyParams,
)

_MS = 1_000_000


@dataclass(frozen=True)
class Knob:
    """A fill model's unknown: the setting, its documented range and the chosen value (the sensitivity table
    reruns the shadow at both ends)."""

    name: str
    low: float
    high: float
    value: float

    def at(self, params: StrategyParams, value: float) -> StrategyParams:
        changes: dict[str, Any] = {self.name: value}  # the knob is the StrategyParams field of the same name
        return replace(params, **changes)


@dataclass(frozen=True)
class KernelFill:
    """What the kernel's step 2 takes of a fill model: the queue rule (else touch + dwell), the dwell and how
    unexplained decreases split around the order: ``prob`` the index in ``QUEUE_PROBS`` (``simulator.PROB_*``),
    ``share`` the constant share (risk_averse), ``exponent`` the power's, ``unit`` the base currency of a lot step
    (hftbacktest's probabilities take base-currency sizes)."""

    queue: bool
    dwell_ns: int
    share: float
    prob: int = 0
    exponent: float = DEFAULT_PROB_EXPONENT
    unit: float = 1.0


class FillModel(Protocol):
    """What the shadow, the dry-run, the tuner and the reports ask of a fill model."""

    name: ClassVar[str]  # as profiles name it (``fill.model``)
    reality: ClassVar[str]  # the dry-run's independent reality by default for a shadow of this model
    tunables: ClassVar[tuple[str, ...]]  # profile settings only this model reads (refused under another)

    @classmethod
    def of(cls, params: StrategyParams) -> FillModel: ...

    @property
    def label(self) -> str:
        """The model and its assumption, as reports, run notes and exported records name it."""
        ...

    def knob(self) -> Knob: ...

    def kernel(self, params: StrategyParams, latency: LatencyModel) -> KernelFill:
        """The kernel's arguments; raises ValueError for settings the model cannot run."""
        ...


@dataclass(frozen=True)
class TouchDwell:
    """The fill model ``dwell`` (the seed's touch + dwell proxy): dwell stands in for queue position.

    A live quote that has stood ``dwell_ms`` at its price fills all that remains when the opposite touch reaches
    it, and up to the trade's size when an opposite-aggressor trade prints at or through it. hftbacktest has no
    dwell model: this is its ``PartialFillExchange`` with every order taken to be at the front of its queue once
    it has dwelt (no ``QueueModel`` at all), except that a trade through the price fills at most its own size.
    """

    dwell_ms: float

    name: ClassVar[str] = FILL_DWELL
    reality: ClassVar[str] = FILL_QUEUE  # the dry-run's default: our queue-aware engine, a second opinion
    tunables: ClassVar[tuple[str, ...]] = ("touch_dwell_ms",)

    @classmethod
    def of(cls, params: StrategyParams) -> TouchDwell:
        return cls(params.touch_dwell_ms)

    @property
    def label(self) -> str:
        return f"dwell (touch_dwell_ms {self.dwell_ms:g})"

    @property
    def dwell_ns(self) -> int:
        return round(self.dwell_ms * _MS)

    def knob(self) -> Knob:
        """From filling as soon as a quote is live to 10 s, the longest dwell that matched a queue-aware engine on
        the recorded days we compared (docs/shadow-simulation.md, "Why queue is the default"); a chosen dwell
        beyond it widens the range (the bound stays a bound)."""
        return Knob("touch_dwell_ms", 0.0, max(10_000.0, self.dwell_ms), self.dwell_ms)

    def kernel(self, params: StrategyParams, latency: LatencyModel) -> KernelFill:
        return KernelFill(queue=False, dwell_ns=self.dwell_ns, share=0.0)


@dataclass(frozen=True)
class QueueAware:
    """The fill model ``queue``, the shadow's default (rules in ``docs/shadow-simulation.md``).

    An order joins the back of the displayed queue at its price; opposite-aggressor trades at the price take the
    queue ahead first and then fill it (partial fills), a trade through the price or the opposite touch reaching
    it fills all that remains; no dwell. ``queue_prob`` says what part of a displayed decrease that trades do not
    explain (cancellations) is taken to be ahead of the order: ``risk_averse`` (the default) a constant
    ``size_decrease_share`` (in [0, 1]); ``power`` and ``log`` hftbacktest's ``ProbQueueModel`` share, which grows
    with the queue ahead (``prob_exponent``: the power's n). Nearest in hftbacktest: its ``PartialFillExchange``
    with ``RiskAdverseQueueModel`` at share 0 (the queue ahead moves on trades only and never exceeds the
    displayed size), ``PowerProbQueueModel(n)`` / ``LogProbQueueModel`` under power / log. Top-of-book data adds
    rules of its own (a level that empties, an order behind the touch), listed in ``docs/dry-run.md``.
    """

    size_decrease_share: float = 0.0
    queue_prob: str = QUEUE_RISK_AVERSE
    prob_exponent: float = DEFAULT_PROB_EXPONENT

    name: ClassVar[str] = FILL_QUEUE
    reality: ClassVar[str] = "hftbacktest"  # the dry-run's default: an engine that shares none of this code
    tunables: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.size_decrease_share <= 1.0:
            raise ValueError(f"size_decrease_share {self.size_decrease_share} is not in [0, 1]")
        if self.queue_prob not in QUEUE_PROBS:
            raise ValueError(f"queue_prob {self.queue_prob!r} is not one of {', '.join(QUEUE_PROBS)}")
        if not self.prob_exponent > 0:
            raise ValueError(f"prob_exponent {self.prob_exponent} is not above 0")

    @classmethod
    def of(cls, params: StrategyParams) -> QueueAware:
        return cls(params.size_decrease_share, params.queue_prob, params.prob_exponent)

    @property
    def label(self) -> str:
        if self.queue_prob == QUEUE_POWER:
            return f"queue (power {self.prob_exponent:g})"
        if self.queue_prob != QUEUE_RISK_AVERSE:
            return f"queue ({self.queue_prob})"
        named = " (risk-averse)" if self.size_decrease_share == 0 else ""
        return f"queue (size_decrease_share {self.size_decrease_share:g}{named})"

    def knob(self) -> Knob:
        """risk_averse: from nothing ahead of our order (hftbacktest's risk-averse queue) to every unexplained
        decrease ahead. power: from n = 1 (cancellations spread evenly over the queue) to 10 (almost all on the
        longer side of our order). log has no parameter: its range is its one assumption."""
        if self.queue_prob == QUEUE_POWER:
            return Knob("prob_exponent", 1.0, max(10.0, self.prob_exponent), self.prob_exponent)
        if self.queue_prob != QUEUE_RISK_AVERSE:
            return Knob("prob_exponent", self.prob_exponent, self.prob_exponent, self.prob_exponent)
        return Knob("size_decrease_share", 0.0, 1.0, self.size_decrease_share)

    def kernel(self, params: StrategyParams, latency: LatencyModel) -> KernelFill:
        if latency.cancel_ms > params.min_requote_ms + latency.order_entry_ms:
            # Sends on a side are min_requote_ms apart, so up to this bound a side rests at most its live order and
            # the one it replaced; the kernel tracks those two.
            raise ValueError(
                f"cancel latency {latency.cancel_ms} ms exceeds min_requote_ms + order_entry_latency_ms "
                f"({params.min_requote_ms} + {latency.order_entry_ms}): a side could rest three orders"
            )
        return KernelFill(
            queue=True,
            dwell_ns=0,
            share=self.size_decrease_share,
            prob=QUEUE_PROBS.index(self.queue_prob),
            exponent=self.prob_exponent,
            unit=params.lot_step,
        )


FILL_MODELS: dict[str, type[FillModel]] = {model.name: model for model in (QueueAware, TouchDwell)}


def fill_model_of(params: StrategyParams) -> FillModel:
    """The profile's fill model (``fill.model``): what the shadow runs and what its reports name."""
    model: FillModel = _named(FILL_MODELS, "fill", params.fill_model).of(params)
    return model


@dataclass(frozen=True)
class LatencyModel:
    """Constant delays of our own order path, ms (``docs/shadow-simulation.md``, step 1).

    ``decision_ms``: from the tick to the strategy's decision (also the decision leg of the latency KPI);
    ``order_entry_ms``: from the decision to the order being live at the exchange (a hedge executes after the
    same delay); ``cancel_ms``: from the decision to a cancel landing, used by the queue-aware fill model only
    (under touch + dwell a replaced order rests until its replacement lands). hftbacktest: ``ConstantLatency``
    with entry latency ``decision_ms + order_entry_ms`` and response latency 0 (the strategy knows its fills at
    the tick they happen); there one entry latency serves new orders and cancels alike, so a ``cancel_ms`` that
    differs from ``order_entry_ms`` would be a custom ``LatencyModel``. The feed leg is not in the order path:
    decisions are taken on exchange time.
    """

    decision_ms: float
    order_entry_ms: float
    cancel_ms: float

    name: ClassVar[str] = "constant"

    def __post_init__(self) -> None:
        for name in ("decision_ms", "order_entry_ms", "cancel_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} {getattr(self, name)} is negative")

    @classmethod
    def of(cls, params: StrategyParams, cancel_ms: float | None = None) -> LatencyModel:
        """The profile's latencies; ``cancel_ms`` None: cancels take as long as order entry."""
        entry = params.order_entry_latency_ms
        return cls(params.decision_latency_ms, entry, entry if cancel_ms is None else cancel_ms)

    @property
    def entry_ns(self) -> int:
        """From the deciding tick to the order live (or the hedge executed)."""
        return round((self.decision_ms + self.order_entry_ms) * _MS)

    @property
    def cancel_ns(self) -> int:
        """From the deciding tick to the cancel landed."""
        return round((self.decision_ms + self.cancel_ms) * _MS)


@dataclass(frozen=True)
class FeeModel:
    """Fees as a fraction of traded value (price * qty), by liquidity side; negative is a rebate (0.0002 = 2 bps).

    Maker fills (our resting quotes) pay ``maker_rate``, taker fills (hedges) ``taker_rate``. hftbacktest:
    ``TradingValueFeeModel(CommonFees(maker_fee, taker_fee))``, which takes the same fractions.
    """

    maker_rate: float
    taker_rate: float

    name: ClassVar[str] = "trading_value"

    @classmethod
    def of(cls, params: StrategyParams) -> FeeModel:
        return cls(params.maker_fee_rate, params.taker_fee_rate)

    def rates(self, is_maker: np.ndarray) -> np.ndarray:
        """The fee rate of each fill."""
        return np.where(is_maker, self.maker_rate, self.taker_rate)


LATENCY_MODELS: dict[str, type[LatencyModel]] = {LatencyModel.name: LatencyModel}
FEE_MODELS: dict[str, type[FeeModel]] = {FeeModel.name: FeeModel}


def latency_model_of(params: StrategyParams) -> LatencyModel:
    """The profile's latency model (``latency_model``)."""
    return _named(LATENCY_MODELS, "latency", params.latency_model).of(params)


def fee_model_of(params: StrategyParams) -> FeeModel:
    """The profile's fee model (``fee_model``)."""
    return _named(FEE_MODELS, "fee", params.fee_model).of(params)


def _named(models: dict[str, Any], kind: str, name: str) -> Any:
    if name not in models:
        raise ValueError(f"unknown {kind} model {name!r}; known: {', '.join(models)}")
    return models[name]
