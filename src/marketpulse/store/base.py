"""The store seams: :class:`OnlineStore` (latest state per symbol) and :class:`HistoryStore` (time series).

History schema (mirrors the Cassandra one: partition by ``(symbol, day)``, clustering by ``ts``):

* ``bars``  — columns :data:`BAR_COLUMNS`;  key ``(symbol, ts)``
* ``ticks`` — columns :data:`TICK_COLUMNS`; key ``(symbol, ts, seq)`` (``seq`` numbers ticks that share a
  timestamp, in source order, so replays are deterministic)
* any other kind (``posts``, ``news``, ``sentiment``, ``predictions``, ``signals``, ``deadletter`` ...) —
  encoded events, key ``(kind, symbol, ts, id)``.

Writes are idempotent upserts on the key: writing the same rows twice leaves the store unchanged.
``ts`` columns in frames are ``datetime64[ns, UTC]``. Range reads are inclusive of ``start`` and exclusive
of ``end`` and return rows sorted by ``ts`` (then ``seq`` / ``id``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import msgspec
import pandas as pd

from marketpulse.errors import StoreError
from marketpulse.events import AnyEvent, Event

BAR_COLUMNS = ("symbol", "ts", "open", "high", "low", "close", "volume")
TICK_COLUMNS = ("symbol", "ts", "seq", "price", "size")
FRAME_KINDS = {"bars": BAR_COLUMNS, "ticks": TICK_COLUMNS}

NS_PER_DAY = 86_400 * 10**9


_VALUE_ENC = msgspec.msgpack.Encoder()
_VALUE_DEC = msgspec.msgpack.Decoder()


def encode_online_value(kind: str, symbol: str, value: dict[str, Any]) -> bytes:
    """The compact form every online store keeps (MessagePack; NaN and ±inf kept as floats).

    :class:`~marketpulse.errors.StoreError` when ``value`` is not a JSON-compatible dict."""
    if not isinstance(value, dict):
        raise StoreError(f"online value for {kind}/{symbol} must be a dict, not {type(value).__name__}")
    try:
        return _VALUE_ENC.encode(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise StoreError(f"online value for {kind}/{symbol} is not JSON-compatible: {e}") from e


def decode_online_value(blob: bytes) -> Any:
    """The inverse of :func:`encode_online_value` (raises ``msgspec.DecodeError`` on foreign bytes)."""
    return _VALUE_DEC.decode(blob)


def event_id(event: Event) -> str:
    """The ``id`` part of an event's history key: its own id when it has one, else its type."""
    return str(getattr(event, "id", None) or getattr(event, "ref_id", None) or type(event).__name__)


class OnlineStore(ABC):
    """Latest value per ``(kind, symbol)`` with an optional time-to-live.

    Values are JSON-compatible dicts. ``get`` returns ``None`` for a missing or expired entry.
    """

    @abstractmethod
    def put(self, kind: str, symbol: str, value: dict[str, Any], ttl_s: float | None = None) -> None:
        """Set the latest value; ``ttl_s`` None means the store's default TTL (0 or negative: no expiry)."""

    def put_many(self, kind: str, values: dict[str, dict[str, Any]], ttl_s: float | None = None) -> None:
        """Set many symbols at once (backends may pipeline)."""
        for symbol, value in values.items():
            self.put(kind, symbol, value, ttl_s)

    @abstractmethod
    def get(self, kind: str, symbol: str) -> dict[str, Any] | None:
        """The latest live value, or None."""

    def get_many(self, kind: str, symbols: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        return {s: self.get(kind, s) for s in symbols}

    @abstractmethod
    def symbols(self, kind: str) -> list[str]:
        """Sorted symbols with a live value of ``kind``."""

    @abstractmethod
    def delete(self, kind: str, symbol: str) -> None:
        """Remove an entry (no error when absent)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class HistoryStore(ABC):
    """Append-only time series with idempotent upserts and range reads by symbol and time."""

    @abstractmethod
    def write_frame(self, kind: str, frame: pd.DataFrame) -> int:
        """Upsert rows of ``bars`` or ``ticks`` (columns as in :data:`FRAME_KINDS`); returns rows given."""

    @abstractmethod
    def read_frame(
        self, kind: str, symbol: str, start: datetime | None = None, end: datetime | None = None
    ) -> pd.DataFrame:
        """Rows of ``symbol`` with ``start <= ts < end`` sorted by time; empty frame with the columns if none."""

    @abstractmethod
    def write_events(self, kind: str, events: Sequence[Event]) -> int:
        """Upsert events under ``kind``; an event with several symbols (a post) is stored once per symbol,
        one without a symbol under ``""``. Returns events given."""

    @abstractmethod
    def read_events(
        self, kind: str, symbol: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[AnyEvent]:
        """Events of ``kind`` for ``symbol`` with ``start <= ts < end`` sorted by (ts, id)."""

    @abstractmethod
    def count(self, kind: str, symbol: str | None = None) -> int:
        """Stored rows of ``kind`` (for one symbol, or all)."""

    @abstractmethod
    def symbols(self, kind: str) -> list[str]:
        """Sorted symbols that have rows of ``kind``."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
