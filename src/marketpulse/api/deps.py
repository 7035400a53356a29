"""What routes depend on: the :class:`ApiContext` given to ``create_app``, the per-app :class:`ApiState`, and the
``Annotated`` dependencies (API key, known symbol, time bounds).

Authentication contract (REST): no ``X-API-Key`` → 401 ``missing_api_key``; a key that is not accepted → 403
``invalid_api_key``; a key over its token bucket → 429 ``rate_limited`` with ``Retry-After`` (whole seconds).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi import Path as PathParam
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from marketpulse.api.auth import KeyRecord, KeyRing, RateLimiter, keys_path, retry_after_header
from marketpulse.api.config import ApiConfig
from marketpulse.api.errors import ApiError
from marketpulse.api.hub import Hub
from marketpulse.bus.base import Bus
from marketpulse.store.base import HistoryStore, OnlineStore

SYMBOL_PATTERN = r"^[A-Za-z0-9.^=_-]{1,32}$"
ONLINE_KINDS = ("ticks", "bars", "bars_60s", "features_60s", "sentiment", "predictions", "signals")
HISTORY_KINDS = ("bars",)


def _no_stats() -> dict[str, Any]:
    return {}


@dataclass
class ApiContext:
    """What the API serves from. ``keys`` defaults to the key file of ``config`` under ``data_dir`` (plus
    ``config.bootstrap_key``); ``stats`` returns the pipeline's counters, rates and latencies (called per
    ``/v1/stats`` request, from a worker thread: it must be thread-safe and quick). ``inline_online``: read the
    online store on the event loop instead of the thread pool (default: only for the in-process memory store,
    which never blocks; a network store such as Redis is always read from the thread pool)."""

    online: OnlineStore
    history: HistoryStore
    bus: Bus | None = None
    config: ApiConfig = field(default_factory=ApiConfig)
    stats: Callable[[], dict[str, Any]] = _no_stats
    data_dir: Path = Path("data")
    keys: KeyRing | None = None
    inline_online: bool | None = None

    def __post_init__(self) -> None:
        if self.inline_online is None:  # an in-process dict never blocks: read it on the event loop
            from marketpulse.store.memory import MemoryOnlineStore

            self.inline_online = isinstance(self.online, MemoryOnlineStore)
        if self.keys is None:
            secret = self.config.bootstrap_key.get_secret_value() if self.config.bootstrap_key else None
            self.keys = KeyRing(keys_path(self.config, self.data_dir), secret)


class ApiState:
    """Per-app runtime: the context, rate limiter, hub, request counters and a short-lived symbol cache."""

    def __init__(self, context: ApiContext, hub: Hub) -> None:
        self.context, self.hub = context, hub
        self.config = context.config
        assert context.keys is not None
        self.keys: KeyRing = context.keys
        self.limiter = RateLimiter()
        self.requests: dict[str, int] = {"total": 0, "2xx": 0, "4xx": 0, "5xx": 0}
        self._symbols: frozenset[str] = frozenset()
        self._symbols_at = -1e9
        self._lock = threading.Lock()

    def authorize(self, key: str | None) -> KeyRecord:
        """The key's record, or :class:`ApiError` 401/403/429 (see the module docstring)."""
        if not key:
            raise ApiError(401, "missing_api_key", "an API key is required (header X-API-Key)")
        record = self.keys.verify(key)
        if record is None:
            raise ApiError(403, "invalid_api_key", "the API key is not valid")
        rate = record.rate_per_s or self.config.rate_per_s
        burst = record.burst or self.config.burst
        wait = self.limiter.take(record.id, rate, burst)
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"rate limit of {rate:g} requests/s (burst {burst}) exceeded; retry in {wait:.2f}s",
                {"Retry-After": retry_after_header(wait)},
            )
        return record

    async def online_get(self, kind: str, symbol: str) -> dict[str, Any] | None:
        """``online.get`` on the loop when inline reads are on, else in the thread pool."""
        if self.context.inline_online:
            return self.context.online.get(kind, symbol)
        return await run_in_threadpool(self.context.online.get, kind, symbol)

    def cached_symbols(self, max_age_s: float = 1.0) -> frozenset[str] | None:
        """The cached symbol set when fresh, else None (never touches a store)."""
        return self._symbols if time.monotonic() - self._symbols_at < max_age_s else None

    def symbols(self, max_age_s: float = 1.0) -> frozenset[str]:
        """Every symbol with live or stored data (cached for ``max_age_s``)."""
        now = time.monotonic()
        if now - self._symbols_at < max_age_s:
            return self._symbols
        found: set[str] = set()
        for kind in ONLINE_KINDS:
            found.update(self.context.online.symbols(kind))
        for kind in HISTORY_KINDS:
            found.update(self.context.history.symbols(kind))
        with self._lock:
            self._symbols, self._symbols_at = frozenset(found), now
        return self._symbols


# Dependencies are ``async def`` so they run on the event loop (a sync one costs a thread-pool hop per request);
# only a stale symbol cache is refreshed in the thread pool, because stores may block.


async def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


State = Annotated[ApiState, Depends(get_state)]
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="an API key (mpk_...)")


async def require_key(state: State, key: Annotated[str | None, Security(api_key_header)]) -> KeyRecord:
    return state.authorize(key)


_QUERY_NAMES: dict[int, frozenset[str]] = {}  # id(route) -> names (routes live as long as their app)


def _query_names(route: Any) -> frozenset[str]:
    """The query parameter names a route declares (its own and its dependencies'), cached per route."""
    names = _QUERY_NAMES.get(id(route))
    if names is None:
        found: set[str] = set()
        todo = [route.dependant]
        while todo:
            dependant = todo.pop()
            found.update(p.alias for p in dependant.query_params)
            todo.extend(dependant.dependencies)
        names = _QUERY_NAMES[id(route)] = frozenset(found)
    return names


async def reject_unknown_query(request: Request) -> None:
    """422 ``validation_error`` for a query parameter the route does not declare (a typo such as ``limt`` would
    otherwise be silently ignored)."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    allowed = _query_names(route)
    unknown = sorted(set(request.query_params.keys()) - allowed)
    if unknown:
        raise ApiError(422, "validation_error", f"unknown query parameter(s) {unknown}; allowed: {sorted(allowed)}")


GUARDS = [Depends(require_key), Depends(reject_unknown_query)]


async def known_symbol(
    state: State,
    symbol: Annotated[str, PathParam(pattern=SYMBOL_PATTERN, description="ticker, case-insensitive")],
) -> str:
    """The upper-cased symbol; 404 ``unknown_symbol`` when nothing is known about it."""
    sym = symbol.upper()
    known = state.cached_symbols()
    if known is None or sym not in known:
        known = await run_in_threadpool(state.symbols)
    if sym not in known:
        raise ApiError(404, "unknown_symbol", f"unknown symbol {sym!r}")
    return sym


Symbol = Annotated[str, Depends(known_symbol)]


_RFC3339 = re.compile(r"(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EPOCH_MS = re.compile(r"[0-9]{1,14}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: the OpenAPI schema of a time query parameter (exactly what :func:`parse_time` accepts)
TIME_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        {"type": "string", "format": "date"},
        {"type": "string", "pattern": f"^{_EPOCH_MS.pattern}$"},
    ]
}


def parse_time(value: str | None, name: str) -> datetime | None:
    """An RFC 3339 date-time (``2014-05-01T13:30:00Z``, any offset), a date (midnight UTC) or epoch milliseconds
    (``1398951000000``); 422 ``validation_error`` otherwise. Times beyond the datetime range are clamped."""
    if value is None:
        return None
    text = value
    try:
        if _EPOCH_MS.fullmatch(text):
            return _EPOCH + timedelta(milliseconds=int(text))
        if _DATE.fullmatch(text):
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        m = _RFC3339.fullmatch(text)
        if m is None:
            raise ValueError(text)
        day, clock, fraction, offset = m.groups()
        frac = f".{fraction[:6]}" if fraction else ""
        ts = datetime.fromisoformat(f"{day}T{clock}{frac}{'+00:00' if offset in 'Zz' else offset}")
    except (ValueError, OverflowError) as e:
        message = f"{name}: expected an RFC 3339 date-time, a date or epoch milliseconds, got {value!r}"
        raise ApiError(422, "validation_error", message) from e
    try:
        return ts.astimezone(UTC)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 is before datetime.min in UTC
        return (datetime.min if ts.year == 1 else datetime.max).replace(tzinfo=UTC)


def time_range(start: str | None, end: str | None) -> tuple[datetime | None, datetime | None]:
    """Both bounds parsed; ``start`` after ``end`` is an empty range (200 with no rows), not an error."""
    return parse_time(start, "start"), parse_time(end, "end")


__all__ = ["ApiContext", "ApiState", "State", "Symbol", "parse_time", "require_key", "time_range"]
