"""The recording readers' public names, where callers have always imported them (``shadow_pipeline.feed.readers``
holds one module per venue format)."""

from shadow_pipeline.feed.readers.binance import read_binance
from shadow_pipeline.feed.readers.bybit import read_bybit
from shadow_pipeline.feed.readers.bybit_archive import read_bybit_archives
from shadow_pipeline.feed.readers.files import RecordingError
from shadow_pipeline.feed.readers.frames import SOURCE_COLUMNS

__all__ = ["SOURCE_COLUMNS", "RecordingError", "read_binance", "read_bybit", "read_bybit_archives"]
