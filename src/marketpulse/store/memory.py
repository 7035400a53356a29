"""In-memory stores: the online store with TTL (the embedded default) and a history store without disk.

This module also holds the helpers every :class:`~marketpulse.store.base.HistoryStore` backend shares
(frame validation and conversion, time bounds, event fan-out), so that the SQLite backend — and the
Redis/Cassandra adapters to come — apply the contract of :mod:`marketpulse.store.base` identically.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.errors import StoreError
from marketpulse.events import AnyEvent, Event, decode, encode
from marketpulse.store.base import (
    FRAME_KINDS,
    NS_PER_DAY,
    HistoryStore,
    OnlineStore,
    decode_online_value,
    encode_online_value,
    event_id,
)


class MemoryOnlineStoreConfig(BaseModel):
    """``online_store.type: memory`` — a dict with expiry, in this process."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["memory"] = "memory"
    ttl_s: float = Field(86_400.0, description="default time-to-live of an entry (<= 0: never expires)")


# --------------------------------------------------------------------------------------------------------
# Helpers shared by the history backends
# --------------------------------------------------------------------------------------------------------

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
#: value columns (everything but ``symbol`` and ``ts``) of each frame kind
VALUE_COLUMNS: dict[str, tuple[str, ...]] = {
    k: tuple(c for c in cols if c not in ("symbol", "ts")) for k, cols in FRAME_KINDS.items()
}
_INT_COLUMNS = frozenset({"seq"})


def to_ns(ts: datetime, what: str = "timestamp") -> int:
    """Nanoseconds since the epoch of an aware datetime or pandas Timestamp (exact integer arithmetic)."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise StoreError(f"naive {what} {ts!r}: store times must be timezone-aware")
    if isinstance(ts, pd.Timestamp):
        return int(ts.as_unit("ns").value)
    return (ts - _EPOCH) // _US * 1000


def bounds_ns(start: datetime | None, end: datetime | None) -> tuple[int, int]:
    """Inclusive int64 nanosecond bounds ``(lo, hi)`` for ``start <= ts < end`` (``lo > hi``: nothing)."""
    lo = INT64_MIN if start is None else max(to_ns(start, "start"), INT64_MIN)
    hi = INT64_MAX if end is None else min(to_ns(end, "end") - 1, INT64_MAX)
    return lo, hi


def day_bounds(lo: int, hi: int) -> tuple[int, int]:
    """The ``day`` partitions that inclusive ns bounds touch."""
    return lo // NS_PER_DAY, hi // NS_PER_DAY


def check_frame_kind(kind: str) -> tuple[str, ...]:
    """The columns of a frame kind; :class:`StoreError` for any other kind."""
    try:
        return FRAME_KINDS[kind]
    except KeyError:
        raise StoreError(
            f"unknown frame kind {kind!r}: frames are one of {sorted(FRAME_KINDS)} (other kinds hold events)"
        ) from None


def check_event_kind(kind: str) -> None:
    if kind in FRAME_KINDS:
        raise StoreError(f"{kind!r} holds frames, not events: use write_frame/read_frame for it")
    if not kind:
        raise StoreError("an event kind must be a non-empty string")


@dataclass(frozen=True, slots=True)
class FrameColumns:
    """A validated frame as plain columns: ``symbol`` as Python strs, ``ts`` and ``day`` as int64 arrays."""

    symbol: list[str]
    ts: np.ndarray[Any, np.dtype[np.int64]]
    day: np.ndarray[Any, np.dtype[np.int64]]
    values: dict[str, np.ndarray[Any, Any]]

    def __len__(self) -> int:
        return len(self.symbol)


def frame_columns(kind: str, frame: pd.DataFrame) -> FrameColumns:
    """Validate a ``bars``/``ticks`` frame and convert it to numpy columns; :class:`StoreError` if bad."""
    columns = check_frame_kind(kind)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise StoreError(f"{kind} frame is missing columns {missing} (expected {list(columns)})")
    sym = frame["symbol"]
    if sym.isna().any():
        raise StoreError(f"{kind} frame has rows without a symbol")
    ts = frame["ts"]
    if not isinstance(ts.dtype, pd.DatetimeTZDtype):
        raise StoreError(f"{kind} frame column 'ts' must be timezone-aware datetime64 (UTC), not {ts.dtype}")
    if ts.isna().any():
        raise StoreError(f"{kind} frame has rows without a ts (NaT)")
    try:
        ts_ns = ts.dt.as_unit("ns").to_numpy(dtype="int64")
    except (OverflowError, ValueError) as e:  # OutOfBoundsDatetime is a ValueError
        raise StoreError(f"{kind} frame column 'ts' is out of the nanosecond range: {e}") from e
    values: dict[str, np.ndarray[Any, Any]] = {}
    for c in VALUE_COLUMNS[kind]:
        col = frame[c]
        try:
            if c in _INT_COLUMNS:
                if col.isna().any():
                    raise StoreError(f"{kind} frame column {c!r} has missing values")
                values[c] = col.to_numpy(dtype="int64")
            else:
                values[c] = col.to_numpy(dtype="float64", na_value=np.nan)
        except (TypeError, ValueError) as e:
            raise StoreError(f"{kind} frame column {c!r} is not numeric: {e}") from e
    return FrameColumns(
        symbol=sym.astype(str).to_numpy(dtype=object).tolist(),
        ts=ts_ns,
        day=ts_ns // NS_PER_DAY,
        values=values,
    )


def build_frame(kind: str, symbol: str, ts_ns: Any, values: dict[str, Any]) -> pd.DataFrame:
    """A read result in canonical form: :data:`FRAME_KINDS` column order, ``str`` symbol,
    ``datetime64[ns, UTC]`` ts, ``int64`` seq, ``float64`` values, a fresh RangeIndex."""
    columns = check_frame_kind(kind)
    ts = np.asarray(ts_ns, dtype="int64")
    data: dict[str, Any] = {
        "symbol": pd.Series([symbol] * len(ts), dtype="str"),
        "ts": pd.Series(pd.DatetimeIndex(ts.view("M8[ns]")).tz_localize("UTC").as_unit("ns")),
    }
    for c in VALUE_COLUMNS[kind]:
        data[c] = pd.Series(np.asarray(values[c], dtype="int64" if c in _INT_COLUMNS else "float64"))
    return pd.DataFrame(data, columns=list(columns))


def empty_frame(kind: str) -> pd.DataFrame:
    check_frame_kind(kind)
    return build_frame(kind, "", [], {c: [] for c in VALUE_COLUMNS[kind]})


def event_symbols(event: Event) -> list[str]:
    """The symbols an event is stored under: a post's ``symbols``, else its ``symbol``, else ``""``."""
    many = getattr(event, "symbols", None)
    if many:
        return list(dict.fromkeys(str(s) for s in many))
    one = getattr(event, "symbol", None)
    return [str(one)] if one is not None else [""]


# --------------------------------------------------------------------------------------------------------
# Online store
# --------------------------------------------------------------------------------------------------------


class MemoryOnlineStore(OnlineStore):
    """Latest value per ``(kind, symbol)`` in a dict, with lazy expiry.

    Values are kept encoded (MessagePack), so a caller can neither mutate what is stored through the dict it
    put nor through one it got. ``clock`` (seconds, monotonic) is injectable so TTL is testable without
    sleeping. Expired entries are dropped when read and by an amortised sweep on writes. Thread-safe.
    """

    def __init__(
        self, config: MemoryOnlineStoreConfig | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.config = config or MemoryOnlineStoreConfig()
        self._clock = clock
        self._lock = threading.Lock()
        # kind -> symbol -> (encoded value, expiry time or None)
        self._data: dict[str, dict[str, tuple[bytes, float | None]]] = {}
        self._size = 0
        self._writes_since_sweep = 0

    def _expiry(self, ttl_s: float | None, now: float) -> float | None:
        ttl = self.config.ttl_s if ttl_s is None else ttl_s
        if math.isnan(ttl):
            raise StoreError("ttl_s must be a number of seconds, not NaN")
        return None if ttl <= 0 else now + ttl

    def _set(self, kind: str, symbol: str, blob: bytes, expires: float | None) -> None:
        entries = self._data.setdefault(kind, {})
        if symbol not in entries:
            self._size += 1
        entries[symbol] = (blob, expires)
        self._writes_since_sweep += 1
        if self._writes_since_sweep >= max(1024, self._size):
            self._sweep(self._clock())

    def _sweep(self, now: float) -> None:
        for kind in list(self._data):
            entries = self._data[kind]
            dead = [s for s, (_, exp) in entries.items() if exp is not None and now >= exp]
            for s in dead:
                del entries[s]
            self._size -= len(dead)
            if not entries:
                del self._data[kind]
        self._writes_since_sweep = 0

    def _live(self, kind: str, symbol: str, now: float) -> bytes | None:
        entries = self._data.get(kind)
        if entries is None:
            return None
        entry = entries.get(symbol)
        if entry is None:
            return None
        blob, expires = entry
        if expires is not None and now >= expires:
            del entries[symbol]
            self._size -= 1
            return None
        return blob

    def put(self, kind: str, symbol: str, value: dict[str, Any], ttl_s: float | None = None) -> None:
        blob = encode_online_value(kind, symbol, value)
        with self._lock:
            self._set(kind, symbol, blob, self._expiry(ttl_s, self._clock()))

    def put_many(self, kind: str, values: dict[str, dict[str, Any]], ttl_s: float | None = None) -> None:
        blobs = [(symbol, encode_online_value(kind, symbol, value)) for symbol, value in values.items()]
        with self._lock:
            expires = self._expiry(ttl_s, self._clock())
            for symbol, blob in blobs:
                self._set(kind, symbol, blob, expires)

    def get(self, kind: str, symbol: str) -> dict[str, Any] | None:
        with self._lock:
            blob = self._live(kind, symbol, self._clock())
        return None if blob is None else decode_online_value(blob)

    def get_many(self, kind: str, symbols: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        with self._lock:
            now = self._clock()
            blobs = {s: self._live(kind, s, now) for s in symbols}
        return {s: None if b is None else decode_online_value(b) for s, b in blobs.items()}

    def symbols(self, kind: str) -> list[str]:
        with self._lock:
            now = self._clock()
            entries = self._data.get(kind, {})
            return sorted(s for s in list(entries) if self._live(kind, s, now) is not None)

    def delete(self, kind: str, symbol: str) -> None:
        with self._lock:
            entries = self._data.get(kind)
            if entries is not None and entries.pop(symbol, None) is not None:
                self._size -= 1


# --------------------------------------------------------------------------------------------------------
# History store
# --------------------------------------------------------------------------------------------------------


def _first(item: tuple[Any, Any]) -> Any:
    return item[0]


class MemoryHistoryStore(HistoryStore):
    """The history contract in dicts: no disk, lost on exit. Thread-safe.

    Rows are keyed like the persistent backends (``(symbol, ts)``, ``(symbol, ts, seq)``,
    ``(kind, symbol, ts, id)``); events are kept encoded, so a read returns fresh objects.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # kind -> symbol -> key (ts or (ts, seq)) -> tuple of value columns
        self._frames: dict[str, dict[str, dict[Any, tuple[Any, ...]]]] = {k: {} for k in FRAME_KINDS}
        # kind -> symbol -> (ts, id) -> encoded event
        self._events: dict[str, dict[str, dict[tuple[int, str], bytes]]] = {}

    def write_frame(self, kind: str, frame: pd.DataFrame) -> int:
        cols = frame_columns(kind, frame)
        value_names = VALUE_COLUMNS[kind]
        ts_list = cols.ts.tolist()
        value_lists = [cols.values[c].tolist() for c in value_names]
        if kind == "ticks":
            seq_list = value_lists[value_names.index("seq")]
            keys: list[Any] = list(zip(ts_list, seq_list, strict=True))
        else:
            keys = ts_list
        rows = list(zip(*value_lists, strict=True))
        with self._lock:
            table = self._frames[kind]
            for symbol, key, row in zip(cols.symbol, keys, rows, strict=True):
                per_symbol = table.get(symbol)
                if per_symbol is None:
                    per_symbol = table[symbol] = {}
                per_symbol[key] = row
        return len(frame)

    def read_frame(
        self, kind: str, symbol: str, start: datetime | None = None, end: datetime | None = None
    ) -> pd.DataFrame:
        check_frame_kind(kind)
        lo, hi = bounds_ns(start, end)
        value_names = VALUE_COLUMNS[kind]
        with self._lock:
            per_symbol = self._frames[kind].get(symbol, {})
            if kind == "ticks":
                items = sorted(((k, v) for k, v in per_symbol.items() if lo <= k[0] <= hi), key=_first)
                ts = [k[0] for k, _ in items]
            else:
                items = sorted(((k, v) for k, v in per_symbol.items() if lo <= k <= hi), key=_first)
                ts = [k for k, _ in items]
        if not items:
            return empty_frame(kind)
        columns = list(zip(*(v for _, v in items), strict=True))
        return build_frame(kind, symbol, ts, dict(zip(value_names, columns, strict=True)))

    def write_events(self, kind: str, events: Sequence[Event]) -> int:
        check_event_kind(kind)
        rows = [
            (symbol, (to_ns(ev.ts, "event ts"), event_id(ev)), encode(ev))
            for ev in events
            for symbol in event_symbols(ev)
        ]
        with self._lock:
            table = self._events.setdefault(kind, {})
            for symbol, key, blob in rows:
                table.setdefault(symbol, {})[key] = blob
        return len(events)

    def read_events(
        self, kind: str, symbol: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[AnyEvent]:
        check_event_kind(kind)
        lo, hi = bounds_ns(start, end)
        with self._lock:
            per_symbol = self._events.get(kind, {}).get(symbol, {})
            blobs = [b for k, b in sorted(per_symbol.items(), key=_first) if lo <= k[0] <= hi]
        return [decode(b) for b in blobs]

    def _table(self, kind: str) -> dict[str, dict[Any, Any]]:
        if kind in FRAME_KINDS:
            return self._frames[kind]
        return self._events.get(kind, {})

    def count(self, kind: str, symbol: str | None = None) -> int:
        with self._lock:
            table = self._table(kind)
            if symbol is not None:
                return len(table.get(symbol, {}))
            return sum(len(rows) for rows in table.values())

    def symbols(self, kind: str) -> list[str]:
        with self._lock:
            return sorted(s for s, rows in self._table(kind).items() if rows)
