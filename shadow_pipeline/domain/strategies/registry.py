"""Strategies by name: the packaged ones, or a user's ``"package.module:attribute"`` imported by path.

A profile names its strategy (``"strategy"``), so a desk runs its own quoting logic in ``shadow``, ``dryrun``,
``tune`` and the launchpad without editing this project; a name that does not resolve to a :class:`Strategy`
fails with what was found instead, before any tick is simulated.
"""

from __future__ import annotations

import functools
import importlib

from shadow_pipeline.domain.strategies.interface import Strategy, StrategyError
from shadow_pipeline.domain.strategies.inventory_skew import INVENTORY_SKEW
from shadow_pipeline.domain.strategies.profiles import EXTERNAL_STRATEGY
from shadow_pipeline.domain.strategies.touch_offset import TOUCH_OFFSET

STRATEGIES = {s.name: s for s in (TOUCH_OFFSET, INVENTORY_SKEW)}


@functools.cache
def strategy_of(name: str) -> Strategy:
    """The strategy ``name`` (packaged, or ``module:attribute``), its ``decide`` compiled."""
    if name == EXTERNAL_STRATEGY:
        raise StrategyError(
            "strategy 'external' has no decide here: the bot's order stream (bot:orders:{symbol}) is the strategy; "
            "an engine that runs a strategy itself cannot run it (docs/reconciliation.md)"
        )
    if ":" not in name:
        if name not in STRATEGIES:
            known = ", ".join(STRATEGIES)
            raise StrategyError(f"unknown strategy {name!r}; packaged: {known}, or 'package.module:attribute'")
        return _checked(name, STRATEGIES[name])
    module_name, _, attribute = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise StrategyError(f"strategy {name!r}: cannot import {module_name!r}: {exc}") from exc
    if not hasattr(module, attribute):
        raise StrategyError(f"strategy {name!r}: module {module_name!r} has no attribute {attribute!r}")
    return _checked(name, getattr(module, attribute))


def _checked(name: str, found: object) -> Strategy:
    if not isinstance(found, Strategy):
        raise StrategyError(
            f"strategy {name!r} is a {type(found).__name__}, not a shadow_pipeline Strategy "
            "(build one with shadow_pipeline.domain.strategies.interface.Strategy; docs/strategies.md)"
        )
    found.compiled()
    return found
