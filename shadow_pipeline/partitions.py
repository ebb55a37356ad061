"""Partitions of ticks: exchange-time hour x symbol.

The symbol list is configuration, not code: ``$SHADOW_SYMBOLS`` (comma-separated) when set, else BTCUSDT and
ETHUSDT. Adding a symbol is an environment change and a reload of the code location.
"""

from __future__ import annotations

import os

import dagster as dg

SYMBOLS_ENV = "SHADOW_SYMBOLS"
DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT")
FIRST_HOUR = "2024-08-08-00:00"  # the oldest recordings we replay (Binance, 2024-08-08 23:00 UTC)


def configured_symbols() -> list[str]:
    raw = os.environ.get(SYMBOLS_ENV, "")
    symbols = [s.strip().upper() for s in raw.split(",") if s.strip()] or list(DEFAULT_SYMBOLS)
    return sorted(dict.fromkeys(symbols))


hourly = dg.HourlyPartitionsDefinition(start_date=FIRST_HOUR, timezone="UTC")
tick_partitions = dg.MultiPartitionsDefinition(
    {"hour": hourly, "symbol": dg.StaticPartitionsDefinition(configured_symbols())}
)


def hour_and_symbol(partition_key: str) -> tuple[str, str]:
    """(hour key, symbol) of a partition key, also when a CLI run hands over the plain ``hour|symbol`` string."""
    keys = tick_partitions.get_partition_key_from_str(str(partition_key)).keys_by_dimension
    return keys["hour"], keys["symbol"]


def partition_key(hour: str, symbol: str) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({"hour": hour, "symbol": symbol})
