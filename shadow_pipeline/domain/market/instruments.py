"""Instruments: what a price and a size mean on one venue, and the one text form of an instrument's id.

The same symbol names different instruments on different venues (Binance spot BTCUSDT quotes in 0.01, the USD-M
perpetual in 0.1), so a symbol alone cannot pick a grid, a fee or a partition: an :class:`InstrumentId` is
symbol + venue, and a venue code (``binance-usdm``) fixes the exchange and the market. The registry is data, not
code (``shadow_pipeline/instruments/instruments.json``, its schema next to it), so that a new venue or symbol is
an edit of a JSON file, and a user file (``$SHADOW_INSTRUMENTS``) merged over it adds or corrects entries without a
release. See docs/instruments.md.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

from shadow_pipeline import user_json
from shadow_pipeline.settings import INSTRUMENTS_ENV, instruments_file

# A bare symbol means this venue, so that a single-venue feed (and every partition key, Redis key and profile
# entry written before venues existed) keeps meaning what it meant.
DEFAULT_VENUE = "binance-usdm"
SEPARATOR = "."
_SYMBOL = r"[A-Z0-9]{1,24}"
_VENUE = r"[a-z][a-z0-9]{0,15}-[a-z][a-z0-9]{0,15}"
SYMBOL_PATTERN = re.compile(_SYMBOL)
VENUE_PATTERN = re.compile(_VENUE)
_ID_PATTERN = re.compile(rf"({_SYMBOL})(?:\.({_VENUE}))?")

_PACKAGE = "shadow_pipeline.instruments"
_DATA_FILE = "instruments.json"
_SCHEMA_FILE = "instruments.schema.json"


class InstrumentError(ValueError):
    """An id that does not parse, an instrument the registry does not hold, or a registry file that is invalid."""


@dataclass(frozen=True, order=True)
class InstrumentId:
    """``SYMBOL.venue``; :attr:`key` is the form partitions and Redis keys use (bare for the default venue)."""

    symbol: str
    venue: str = DEFAULT_VENUE

    @classmethod
    def parse(cls, text: str) -> InstrumentId:
        """``BTCUSDT`` (the default venue) or ``BTCUSDT.bybit-linear``; case is normalized (symbol upper, venue
        lower), so ``btcusdt.Bybit-Linear`` from a command line means the same instrument."""
        symbol, separator, venue = text.strip().partition(SEPARATOR)
        normalized = symbol.upper() + separator + venue.lower()
        match = _ID_PATTERN.fullmatch(normalized)
        if match is None:
            raise InstrumentError(
                f"{text!r} is not an instrument id: want SYMBOL (1-24 of A-Z0-9, on {DEFAULT_VENUE}) or "
                "SYMBOL.venue (venue like bybit-linear)"
            )
        return cls(match.group(1), match.group(2) or DEFAULT_VENUE)

    def __str__(self) -> str:
        return f"{self.symbol}{SEPARATOR}{self.venue}"

    @property
    def key(self) -> str:
        return self.symbol if self.venue == DEFAULT_VENUE else str(self)


def instrument_key(symbol: str, venue: str | None) -> str:
    """The key of ``symbol`` on ``venue`` (None or empty: the default venue); inputs are already valid."""
    return symbol if not venue or venue == DEFAULT_VENUE else f"{symbol}{SEPARATOR}{venue}"


@dataclass(frozen=True)
class Venue:
    """A venue code and what it names: which exchange, which market (spot, linear or inverse). A recording reader
    compares these with what its file's messages show, so that a code names a market rather than a spelling."""

    code: str
    exchange: str
    market: str

    def __str__(self) -> str:
        return f"{self.code} ({self.exchange} {self.market})"


@dataclass(frozen=True)
class Instrument:
    """One tradable instrument. Quantities count ``lot_step`` units of ``contract_multiplier`` base currency."""

    id: InstrumentId
    exchange: str
    market: str  # spot, linear or inverse
    tick_size: float
    lot_step: float
    min_qty: float
    contract_multiplier: float
    maker_fee_rate: float
    taker_fee_rate: float
    source: str

    def strategy_defaults(self) -> dict[str, float]:
        """The instrument's part of a strategy's parameters: the bottom layer of a profile's resolution."""
        return {
            "tick_size": self.tick_size,
            "lot_step": self.lot_step,
            "min_lot": self.min_qty,
            "maker_fee_rate": self.maker_fee_rate,
            "taker_fee_rate": self.taker_fee_rate,
        }


@dataclass(frozen=True)
class Registry:
    """The merged registry; ``source`` names the files it came from in errors."""

    source: str
    data: Mapping[str, Any]

    def get(self, instrument: InstrumentId | str) -> Instrument:
        """The instrument, or InstrumentError saying where to add it."""
        iid = instrument if isinstance(instrument, InstrumentId) else InstrumentId.parse(instrument)
        entry = self.data["instruments"].get(str(iid))
        if entry is None:
            listed = self.listings(iid.symbol)
            also = f" ({iid.symbol} is known on: {', '.join(map(str, listed))})" if listed else ""
            raise InstrumentError(
                f"no instrument {iid} in the instrument registry ({self.source}){also}: add it to the file "
                f"${INSTRUMENTS_ENV} names (docs/instruments.md)"
            )
        venue = self.data["venues"][iid.venue]
        return Instrument(
            id=iid,
            exchange=venue["exchange"],
            market=venue["market"],
            tick_size=entry["tick_size"],
            lot_step=entry["lot_step"],
            min_qty=entry["min_qty"],
            contract_multiplier=entry["contract_multiplier"],
            maker_fee_rate=entry.get("maker_fee_rate", venue["maker_fee_rate"]),
            taker_fee_rate=entry.get("taker_fee_rate", venue["taker_fee_rate"]),
            source=entry["source"],
        )

    @property
    def venues(self) -> list[str]:
        """Every venue code, sorted: the one list a venue option offers and the errors name."""
        return sorted(self.data["venues"])

    def venue(self, code: str) -> Venue:
        """The venue ``code`` names (any case), or InstrumentError listing the registry's venues."""
        entry = self.data["venues"].get(code.strip().lower())
        if entry is None:
            raise InstrumentError(
                f"no venue {code!r} in the instrument registry ({self.source}): choose from "
                f"{', '.join(self.venues)}, or add it to the file ${INSTRUMENTS_ENV} names (docs/instruments.md)"
            )
        return Venue(code.strip().lower(), entry["exchange"], entry["market"])

    def listings(self, symbol: str) -> list[InstrumentId]:
        """Every instrument of ``symbol`` in the registry, on any venue."""
        ids = (InstrumentId.parse(key) for key in self.data["instruments"])
        return sorted(iid for iid in ids if iid.symbol == symbol)


@functools.cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(resources.files(_PACKAGE).joinpath(_SCHEMA_FILE).read_text(encoding="utf-8"))
    return schema


def _check(data: Any, definition: str, source: str) -> None:
    """Validate ``data`` against one ``$defs`` entry of the schema: ``file`` for each file, ``registry`` after the
    merge (where every entry must be complete)."""
    schema = {"$defs": _schema()["$defs"], "$ref": f"#/$defs/{definition}"}
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    if errors:
        error = jsonschema.exceptions.best_match(errors) or errors[0]
        path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InstrumentError(f"{source}: {path}: {error.message}{more}")


def whole_lots(quantity: float, lot_step: float) -> int | None:
    """``quantity`` in lot steps when it is a positive whole number of them (float noise allowed), else None."""
    lots = quantity / lot_step
    if round(lots) < 1 or abs(lots - round(lots)) > 1e-9 * max(1.0, lots):
        return None
    return round(lots)


def _check_entries(data: Mapping[str, Any], source: str) -> None:
    """The rules a schema cannot state: an instrument's venue exists and its minimum is whole lots."""
    for key, entry in data["instruments"].items():
        venue = key.partition(SEPARATOR)[2]
        if venue not in data["venues"]:
            raise InstrumentError(f"{source}: $.instruments.{key}: venue {venue!r} is not in $.venues")
        if whole_lots(entry["min_qty"], entry["lot_step"]) is None:
            raise InstrumentError(
                f"{source}: $.instruments.{key}: min_qty {entry['min_qty']} is not a multiple of lot_step "
                f"{entry['lot_step']}"
            )


@functools.cache
def _packaged() -> tuple[str, Mapping[str, Any]]:
    text = resources.files(_PACKAGE).joinpath(_DATA_FILE)
    data = user_json.parse(text.read_text(encoding="utf-8"), str(text))
    _check(data, "file", str(text))
    return str(text), data


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on ``base`` per venue and per instrument, key by key: a user entry states only what it changes."""
    merged: dict[str, Any] = {}
    for section in ("venues", "instruments"):
        entries = {k: dict(v) for k, v in base.get(section, {}).items()}
        for key, entry in over.get(section, {}).items():
            entries[key] = {**entries.get(key, {}), **entry}
        merged[section] = entries
    return merged


def load_registry(path: str | Path | None = None) -> Registry:
    """The packaged registry with ``path`` (else ``$SHADOW_INSTRUMENTS``, when set) merged over it, validated."""
    packaged_source, data = _packaged()
    chosen = path if path is not None else instruments_file()
    source = packaged_source
    if chosen is not None:
        try:
            user = user_json.load(chosen)
        except user_json.JsonInputError as exc:
            raise InstrumentError(str(exc)) from None
        _check(user, "file", str(chosen))
        data = _merge(data, user)
        source = f"{packaged_source} + {chosen}"
    else:
        data = _merge(data, {})
    _check(data, "registry", source)
    _check_entries(data, source)
    return Registry(source, data)
