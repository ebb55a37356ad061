"""Strategy profiles: a JSON file of named profiles plus per-instrument overrides.

Profiles are data, not code, so a shadow run can be re-pointed (``SHADOW_PROFILES``) without a release, and a
bad file must fail loudly with the file, the JSON path and the broken rule rather than run a wrong strategy.
Resolution for (profile, instrument) layers single keys: the instrument registry's entry (grid, lots, fees;
``domain.market.instruments``) < profile < ``symbols[instrument]`` < ``profile.symbols[instrument]``, so that any
instrument in the registry runs without a profile entry, and an entry states only what it changes. A ``symbols``
key is an instrument id (a bare symbol: the default venue). See ``docs/shadow-simulation.md`` for the format.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from shadow_pipeline import user_json
from shadow_pipeline.domain.market.instruments import InstrumentError, InstrumentId, load_registry, whole_lots
from shadow_pipeline.settings import profiles_file

_PACKAGE = "shadow_pipeline.profiles"
_DATA_FILE = "shadow_profiles.json"
_SCHEMA_FILE = "shadow_profiles.schema.json"
_log = logging.getLogger(__name__)
_deprecations_said: set[str] = set()  # one warning per file and process, however often a run loads it


FILL_QUEUE, FILL_DWELL = "queue", "dwell"
# How the queue model splits a displayed decrease that trades do not explain (``fill.queue_prob``): a constant
# share ahead of our order (``risk_averse``, hftbacktest's model at share 0) or hftbacktest's ProbQueueModel
# probability of our position, power or log. The kernel takes the index (``simulator.PROB_*``).
QUEUE_PROBS = ("risk_averse", "power", "log")
QUEUE_RISK_AVERSE, QUEUE_POWER, QUEUE_LOG = QUEUE_PROBS
DEFAULT_PROB_EXPONENT = 3.0  # hftbacktest's examples use 2 and 3
DEFAULT_FILL = {
    "model": FILL_QUEUE,
    "size_decrease_share": 0.0,
    "queue_prob": QUEUE_RISK_AVERSE,
    "prob_exponent": DEFAULT_PROB_EXPONENT,
}
DEFAULT_STRATEGY = "touch_offset"
# The strategy of a bot outside this project: its order stream decides (``strategies/external``), nothing here does.
EXTERNAL_STRATEGY = "external"


class ProfileError(ValueError):
    """A profile file that cannot be used, or a (profile, symbol) that it does not define."""


@dataclass(frozen=True)
class StrategyParams:
    """One strategy for one symbol. Quantities are base currency; ``max_inventory`` counts lots (``min_lot``)."""

    profile: str
    symbol: str
    tick_size: float
    lot_step: float
    min_lot: float
    quote_offset_ticks: int
    touch_dwell_ms: float
    min_requote_ms: float
    max_inventory: int
    hedge_mode: str
    hedge_target: float
    maker_fee_rate: float
    taker_fee_rate: float
    order_entry_latency_ms: float
    markout_horizon_s: float
    decision_latency_ms: float
    # The fill model (``simulator.fill_model_of``); the default is the packaged profiles' choice (run notes
    # written before the setting existed read back as dwell: ``RunNotes.from_json``).
    fill_model: str = FILL_QUEUE
    size_decrease_share: float = 0.0
    queue_prob: str = QUEUE_RISK_AVERSE
    prob_exponent: float = DEFAULT_PROB_EXPONENT
    # The quoting logic (``strategies/registry.py``): a packaged name or a user's ``module:attribute``, and its
    # own parameters (``Strategy.parameters``; the strategy checks them). Run notes written before the setting
    # existed ran touch_offset, the default.
    strategy: str = DEFAULT_STRATEGY
    strategy_params: Mapping[str, float] = field(default_factory=dict)
    # The latency and fee models by name (``simulation/models.py``); one of each so far.
    latency_model: str = "constant"
    fee_model: str = "trading_value"

    @property
    def max_position(self) -> float:
        """Largest |position| in base currency."""
        return self.max_inventory * self.min_lot


@dataclass(frozen=True)
class Thresholds:
    """Go/No-Go gates; a report passes when every one holds."""

    min_maker_share: float
    min_net_bps: float
    max_p95_latency_ms: float
    max_risk_ratio: float
    min_windows: int
    min_ticks_per_window: int
    # The per-order reconciliation's gates (docs/reconciliation.md). Defaults: profile files and run notes
    # written before they existed load with them.
    min_fill_precision: float = 0.85
    min_fill_recall: float = 0.85
    max_net_bps_gap: float = 0.3


@dataclass(frozen=True)
class Profiles:
    """A validated profile file; ``source`` names it in later errors."""

    source: str
    data: Mapping[str, Any]

    @property
    def names(self) -> list[str]:
        return sorted(self.data["profiles"])


def _json_path(parts: Any) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


@functools.cache
def _schema() -> dict[str, Any]:
    text = resources.files(_PACKAGE).joinpath(_SCHEMA_FILE).read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@dataclass(frozen=True)
class Range:
    """The bounds of one numeric setting, as the profiles schema declares them: the schema is the one place a
    range is written, and the tuner, the single-parameter overrides and the run configs take theirs from here.
    Every bound is finite, so a value within them is finite too."""

    name: str
    minimum: float
    maximum: float
    exclusive_minimum: bool
    integer: bool

    def check(self, value: float) -> float | int:
        """``value`` as the setting's type, or ProfileError with the rule it broke."""
        if not math.isfinite(float(value)):
            raise ProfileError(f"{self.name}: {value} is not a finite number")
        if self.integer and float(value) != int(value):
            raise ProfileError(f"{self.name}: {value} is not an integer")
        number: float | int = int(value) if self.integer else float(value)
        low_ok = number > self.minimum if self.exclusive_minimum else number >= self.minimum
        if not low_ok or number > self.maximum:
            raise ProfileError(f"{self.name}: {value} is out of range (want {self.describe()})")
        return number

    def describe(self) -> str:
        return f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g} and <= {self.maximum:g}"

    def constraints(self) -> dict[str, Any]:
        """The bounds as pydantic ``Field`` constraints, for a run config that carries the setting."""
        low = "gt" if self.exclusive_minimum else "ge"
        return {low: self.minimum, "le": self.maximum, "allow_inf_nan": False}


def setting_range(section: str, name: str) -> Range:
    """The range of ``name`` (dotted for a nested setting: ``hedge.target``) in a ``$defs`` section of the
    profiles schema (``params``, ``thresholds``, ``tune``)."""
    node = _schema()["$defs"][section]
    for part in name.split("."):
        node = node["properties"][part]
    exclusive = "exclusiveMinimum" in node
    return Range(
        name=name,
        minimum=float(node["exclusiveMinimum" if exclusive else "minimum"]),
        maximum=float(node["maximum"]),
        exclusive_minimum=exclusive,
        integer=node["type"] == "integer",
    )


def _read(path: str | Path | None) -> tuple[str, Any]:
    """(source description, JSON value) of the explicit path, else $SHADOW_PROFILES, else the packaged file."""
    chosen = path if path is not None else profiles_file()
    try:
        if chosen is None:
            packaged = resources.files(_PACKAGE).joinpath(_DATA_FILE)
            return str(packaged), user_json.parse(packaged.read_text(encoding="utf-8"), str(packaged))
        return str(chosen), user_json.load(chosen)
    except user_json.JsonInputError as exc:
        raise ProfileError(str(exc)) from None


def load_profiles(path: str | Path | None = None) -> Profiles:
    """Read and validate a profile file (``None``: ``$SHADOW_PROFILES``, else the packaged file)."""
    source, data = _read(path)
    validator = jsonschema.Draft202012Validator(_schema())
    errors = sorted(validator.iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.message))
    if errors:
        error = jsonschema.exceptions.best_match(errors) or errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ProfileError(f"{source}: {_json_path(error.absolute_path)}: {error.message}{more}")
    _drop_requote_rule(source, data)
    return Profiles(source, data)


def _params_layers(data: Mapping[str, Any]) -> list[tuple[list[str], dict[str, Any]]]:
    """(JSON path, ``params`` object) of every layer of a validated file."""
    layers = [(["symbols", key], entry) for key, entry in data["symbols"].items()]
    for name, profile in data["profiles"].items():
        layers.append((["profiles", name], profile))
        layers += [(["profiles", name, "symbols", key], entry) for key, entry in profile.get("symbols", {}).items()]
    return [([*path, "params"], layer["params"]) for path, layer in layers if "params" in layer]


def _drop_requote_rule(source: str, data: Mapping[str, Any]) -> None:
    """``requote.rule`` had one value and was never read: a file that still carries it (older packaged and tuned
    files did) loads as without it, with one warning line (once per file and process) saying where to delete it.
    A later version may refuse it."""
    found = []
    for path, params in _params_layers(data):
        if "rule" in params.get("requote", {}):
            del params["requote"]["rule"]
            found.append(_json_path([*path, "requote", "rule"]))
    said = (
        f"{source}: requote.rule is deprecated and ignored (on_touch_change is the only rule): "
        f"delete {', '.join(found)}"
    )
    if found and said not in _deprecations_said:
        _deprecations_said.add(said)
        _log.warning(said)


def _entry(entries: Mapping[str, Any], instrument: InstrumentId) -> Mapping[str, Any]:
    """The entry of ``instrument`` in a ``symbols`` object, whichever id form its key uses (bare or full)."""
    for key, entry in entries.items():
        if InstrumentId.parse(key) == instrument:
            return dict(entry)
    return {}


def _layers(profiles: Profiles, name: str, symbol: str) -> tuple[str, list[Mapping[str, Any]]]:
    """The instrument's key (``symbol`` as the partitions spell it) and the layers of (profile, instrument)."""
    data = profiles.data
    if name not in data["profiles"]:
        raise ProfileError(f"{profiles.source}: unknown profile {name!r}; known: {', '.join(profiles.names)}")
    try:
        instrument = load_registry().get(symbol)
    except InstrumentError as exc:
        raise ProfileError(str(exc)) from None
    if instrument.contract_multiplier != 1:
        raise ProfileError(
            f"{instrument.id}: contract_multiplier {instrument.contract_multiplier:g} (the simulator counts "
            "quantities in base currency: only instruments with multiplier 1 can be shadowed)"
        )
    profile = data["profiles"][name]
    return instrument.id.key, [
        {"params": instrument.strategy_defaults()},
        profile,
        _entry(data["symbols"], instrument.id),
        _entry(profile.get("symbols", {}), instrument.id),
    ]


def resolve(profiles: Profiles, name: str, symbol: str) -> tuple[StrategyParams, Thresholds]:
    """The parameters and gates of profile ``name`` for instrument ``symbol`` (an id, bare for the default venue),
    overrides applied."""
    symbol, layers = _layers(profiles, name, symbol)
    params: dict[str, Any] = {}
    gates: dict[str, Any] = {}
    own: dict[str, float] = {}
    for layer in layers:
        params.update(layer.get("params", {}))
        own.update(layer.get("params", {}).get("strategy_params", {}))
        gates.update(layer.get("thresholds", {}))
    params["strategy_params"] = own
    if whole_lots(params["min_lot"], params["lot_step"]) is None:
        raise ProfileError(
            f"{profiles.source}: profile {name!r}, symbol {symbol!r}: min_lot {params['min_lot']} is not a multiple "
            f"of lot_step {params['lot_step']}"
        )
    requote, hedge = params.pop("requote"), params.pop("hedge")
    fill = {**DEFAULT_FILL, **params.pop("fill", {})}
    strategy = StrategyParams(
        profile=name,
        symbol=symbol,
        min_requote_ms=requote["min_requote_ms"],
        hedge_mode=hedge["mode"],
        hedge_target=hedge["target"],
        fill_model=fill["model"],
        size_decrease_share=fill["size_decrease_share"],
        queue_prob=fill["queue_prob"],
        prob_exponent=fill["prob_exponent"],
        **params,
    )
    _check_strategy(strategy, f"{profiles.source}: profile {name!r}, symbol {symbol!r}")
    return strategy, Thresholds(**gates)


def _check_strategy(params: StrategyParams, where: str) -> None:
    """Fail at load, not at the first tick, on a strategy that does not resolve or parameters it does not take."""
    from shadow_pipeline.domain.strategies.registry import strategy_of  # the registry imports this module

    if params.strategy == EXTERNAL_STRATEGY:
        if params.strategy_params:
            raise ProfileError(f"{where}: strategy external takes no strategy_params (the bot's orders decide)")
        return
    try:
        strategy_of(params.strategy).values(params)
    except ValueError as exc:
        raise ProfileError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class TuneSettings:
    """The auto-tuner's search for (profile, symbol): ``space`` as the file states it (``SearchSpace.of`` checks
    it against the instrument), the objective, the budget of parameter sets per fold and the sampler's seed."""

    space: Mapping[str, Any]
    objective: str = "net_bps"
    max_sets: int = 100
    seed: int = 0
    max_pbo: float = 0.5  # a Go needs PBO below it: a winner no better than the median set half the time is luck
    pbo_blocks: int = 16  # time blocks of the tuning windows for CSCV (even): C(16, 8) = 12,870 splits


def tune_settings(profiles: Profiles, name: str, symbol: str) -> TuneSettings:
    """``tune`` of (profile, symbol), layered as :func:`resolve` layers params; ``space`` merges per parameter."""
    settings: dict[str, Any] = {}
    space: dict[str, Any] = {}
    for layer in _layers(profiles, name, symbol)[1]:
        tune = dict(layer.get("tune", {}))
        space.update(tune.pop("space", {}))
        settings.update(tune)
    return TuneSettings(space=space, **settings)


INSTRUMENT_PARAMS = ("tick_size", "lot_step", "min_lot")


def profile_document(params: StrategyParams, thresholds: Thresholds, description: str) -> dict[str, Any]:
    """A profiles file holding exactly ``params`` and ``thresholds`` (the inverse of :func:`resolve`), so that
    a promoted or tuned strategy is used as it is: ``shadow --profiles-file`` and the launchpad accept it."""
    flat = {k: v for k, v in params.__dict__.items() if k not in ("profile", "symbol")}
    instrument = {name: flat.pop(name) for name in INSTRUMENT_PARAMS}
    flat["requote"] = {"min_requote_ms": flat.pop("min_requote_ms")}
    flat["hedge"] = {"mode": flat.pop("hedge_mode"), "target": flat.pop("hedge_target")}
    flat["fill"] = {
        "model": flat.pop("fill_model"),
        "size_decrease_share": flat.pop("size_decrease_share"),
        "queue_prob": flat.pop("queue_prob"),
        "prob_exponent": flat.pop("prob_exponent"),
    }
    return {
        "description": description,
        "profiles": {params.profile: {"description": description, "params": flat, "thresholds": thresholds.__dict__}},
        "symbols": {params.symbol: {"description": description, "params": instrument}},
    }
