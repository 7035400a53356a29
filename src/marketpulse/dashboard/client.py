"""The dashboard's only window on the system: a small, forgiving client of the MarketPulse REST API.

Contract: every call returns a :class:`Reply` and **never raises** for anything the network or the server does
(connection refused, timeout, 4xx/5xx, a body that is not JSON). A page built on it shows "no data yet" instead
of a traceback. ``404`` is the normal answer for "nothing there yet" (e.g. ``/v1/signals/{symbol}`` before the
fusion stage has produced one) and is reported as :attr:`Reply.missing`.

The helpers below the client (:func:`items`, :func:`bars_frame`, :func:`quote_price`, :func:`to_timestamp` …)
turn the API's JSON into plain values and frames and tolerate the field names shifting slightly (``ts`` or
``timestamp``, a bare list or ``{"bars": [...]}``), so the page does not depend on every detail of the API.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
import pandas as pd

from marketpulse.dashboard import API_KEY_ENV, API_URL_ENV, DEFAULT_API_URL

API_KEY_HEADER = "X-API-Key"

BAR_FIELDS = ("ts", "open", "high", "low", "close", "volume")
_TS_KEYS = ("ts", "timestamp", "time", "t")


@dataclass(frozen=True)
class Reply:
    """One API answer. ``status`` is None when no HTTP answer came back at all (``error`` says why)."""

    status: int | None
    data: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.error is None

    @property
    def missing(self) -> bool:
        """The API answered 404: the resource does not exist (yet)."""
        return self.status == 404

    @property
    def reachable(self) -> bool:
        return self.status is not None

    def dict(self) -> dict[str, Any]:
        """The body when it is a JSON object and the call succeeded, else ``{}``."""
        return self.data if self.ok and isinstance(self.data, dict) else {}


class ApiClient:
    """Synchronous client of the REST API (``X-API-Key`` auth). Thread-safe as far as ``httpx.Client`` is.

    ``transport`` replaces the network (tests pass an ``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_API_URL,
        api_key: str | None = None,
        *,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        headers = {"Accept": "application/json"}
        if api_key:
            headers[API_KEY_HEADER] = api_key
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)

    @classmethod
    def from_env(cls, base_url: str | None = None, api_key: str | None = None, **kwargs: Any) -> ApiClient:
        """Arguments first, then ``MARKETPULSE_API_URL`` / ``MARKETPULSE_API_KEY``, then the default URL."""
        url = base_url or os.environ.get(API_URL_ENV) or DEFAULT_API_URL
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        return cls(url, key or None, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the one network call ------------------------------------------------------------------------------------
    def get(self, path: str, **params: Any) -> Reply:
        """``GET path`` with the non-None ``params``; never raises (see the module docstring)."""
        query = {k: v for k, v in params.items() if v is not None}
        try:
            response = self._http.get(path, params=query)
        except httpx.TimeoutException:
            return Reply(None, error=f"timeout after {self._http.timeout.read}s: {self.base_url}{path}")
        except httpx.HTTPError as e:
            return Reply(None, error=f"API unreachable at {self.base_url}: {type(e).__name__}: {e}")
        try:
            body: Any = response.json() if response.content else None
        except ValueError:
            body = None
            if response.is_success:
                return Reply(response.status_code, error=f"not JSON: {response.text[:120]!r}")
        if response.is_success:
            return Reply(response.status_code, body)
        return Reply(response.status_code, body, error_message(response.status_code, body))

    # -- endpoints -----------------------------------------------------------------------------------------------
    def health(self) -> Reply:
        return self.get("/health")

    def openapi(self) -> Reply:
        """The API's OpenAPI document (to learn which optional endpoints this server has)."""
        return self.get("/openapi.json")

    def symbols(self) -> Reply:
        return self.get("/v1/symbols")

    def quote(self, symbol: str) -> Reply:
        return self.get(f"/v1/quotes/{_seg(symbol)}")

    def latest_bar(self, symbol: str, interval: int = 60) -> Reply:
        return self.get(f"/v1/bars/{_seg(symbol)}/latest", interval=interval)

    def bars(
        self,
        symbol: str,
        start: datetime | str | None = None,
        end: datetime | str | None = None,
        limit: int | None = None,
        interval: int | None = None,
    ) -> Reply:
        return self.get(f"/v1/bars/{_seg(symbol)}", start=_iso(start), end=_iso(end), limit=limit, interval=interval)

    def indicators(self, symbol: str, interval: int = 60) -> Reply:
        return self.get(f"/v1/indicators/{_seg(symbol)}", interval=interval)

    def sentiment(self, symbol: str) -> Reply:
        return self.get(f"/v1/sentiment/{_seg(symbol)}")

    def sentiment_history(self, symbol: str, limit: int | None = None) -> Reply:
        """Optional endpoint: a 404 means the API keeps no sentiment history (the page then samples the latest)."""
        return self.get(f"/v1/sentiment/{_seg(symbol)}/history", limit=limit)

    def prediction(self, symbol: str) -> Reply:
        return self.get(f"/v1/predictions/{_seg(symbol)}")

    def prediction_history(self, symbol: str, limit: int | None = None) -> Reply:
        return self.get(f"/v1/predictions/{_seg(symbol)}/history", limit=limit)

    def signal(self, symbol: str) -> Reply:
        return self.get(f"/v1/signals/{_seg(symbol)}")

    def signal_history(self, symbol: str, limit: int | None = None) -> Reply:
        """Optional endpoint: stored fused signals, oldest first (``{"signals": [...]}``), each with its weights."""
        return self.get(f"/v1/signals/{_seg(symbol)}/history", limit=limit)

    def alerts(self, symbol: str | None = None, limit: int | None = None) -> Reply:
        return self.get("/v1/alerts", symbol=symbol, limit=limit)

    def stats(self) -> Reply:
        return self.get("/v1/stats")


# -- one refresh ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Snapshot:
    """Every answer one refresh needs, fetched once."""

    quote: Reply
    latest_bar: Reply
    bars: Reply
    indicators: Reply
    sentiment: Reply
    prediction: Reply
    predictions: Reply
    signal: Reply
    alerts: Reply
    health: Reply
    stats: Reply
    sentiment_history: Reply | None = None
    signals: Reply | None = None
    """The signal history; None when the API does not list the endpoint (an older server)."""


SENTIMENT_HISTORY = "/v1/sentiment/{symbol}/history"
SIGNAL_HISTORY = "/v1/signals/{symbol}/history"


def fetch(client: ApiClient, symbol: str, n_bars: int, paths: frozenset[str] = frozenset()) -> Snapshot:
    """One refresh's answers; optional endpoints are asked only when the API lists them."""
    return Snapshot(
        quote=client.quote(symbol),
        latest_bar=client.latest_bar(symbol, 60),
        bars=client.bars(symbol, limit=n_bars),
        indicators=client.indicators(symbol, 60),
        sentiment=client.sentiment(symbol),
        prediction=client.prediction(symbol),
        predictions=client.prediction_history(symbol, limit=500),
        signal=client.signal(symbol),
        alerts=client.alerts(limit=50),
        health=client.health(),
        stats=client.stats(),
        sentiment_history=client.sentiment_history(symbol, limit=2_000) if SENTIMENT_HISTORY in paths else None,
        signals=client.signal_history(symbol, limit=500) if SIGNAL_HISTORY in paths else None,
    )


# -- parsing helpers (pure) ------------------------------------------------------------------------------------------
def error_message(status: int, body: Any) -> str:
    """``{"error": {"code", "message"}}`` → ``"404 not_found: message"``; anything else → a short fallback."""
    if isinstance(body, Mapping):
        err = body.get("error")
        if isinstance(err, Mapping):
            code, message = err.get("code"), err.get("message")
            return f"{status} {code or 'error'}: {message or ''}".rstrip(": ")
        if isinstance(err, str):
            return f"{status}: {err}"
        detail = body.get("detail")
        if detail:
            return f"{status}: {detail}"
    return f"HTTP {status}"


def openapi_paths(data: Any) -> frozenset[str]:
    """The path templates of an OpenAPI document (``/v1/quotes/{symbol}`` …); empty when it is not one."""
    paths = data.get("paths") if isinstance(data, Mapping) else None
    return frozenset(p for p in paths if isinstance(p, str)) if isinstance(paths, Mapping) else frozenset()


def items(data: Any, *keys: str) -> list[dict[str, Any]]:
    """The list of objects in ``data``: the list itself, or the first list under ``keys`` (then ``items``, ``data``,
    ``results``, ``rows``) of an object. Non-object entries are dropped."""
    seq: Any = data
    if isinstance(data, Mapping):
        seq = None
        for key in (*keys, "items", "data", "results", "rows"):
            if isinstance(data.get(key), list):
                seq = data[key]
                break
    if not isinstance(seq, list):
        return []
    return [x for x in seq if isinstance(x, dict)]


def symbols_of(data: Any) -> list[str]:
    """``{"symbols": ["AAPL", ...]}`` or ``{"symbols": [{"symbol": "AAPL"}, ...]}`` or a bare list → sorted names."""
    seq = data.get("symbols") if isinstance(data, Mapping) else data
    if not isinstance(seq, list):
        return []
    out = set()
    for x in seq:
        if isinstance(x, str) and x:
            out.add(x)
        elif isinstance(x, Mapping) and isinstance(x.get("symbol"), str):
            out.add(x["symbol"])
    return sorted(out)


def unwrap(data: Any, *keys: str) -> dict[str, Any]:
    """An object possibly wrapped once: ``{"quote": {...}}`` → ``{...}``; otherwise ``data`` (or ``{}``)."""
    if not isinstance(data, dict):
        return {}
    for key in keys:
        inner = data.get(key)
        if isinstance(inner, dict):
            return inner
    return data


def number(value: Any) -> float | None:
    """A finite float, or None (for None, NaN, ±inf, strings that are not numbers, booleans)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def to_timestamp(value: Any) -> pd.Timestamp | None:
    """ISO 8601 text or epoch seconds / ms / µs / ns (guessed by magnitude) → tz-aware UTC ``Timestamp``."""
    if value is None or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            if not math.isfinite(value):
                return None
            magnitude = abs(value)
            unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"
            return pd.Timestamp(int(value) if unit != "s" else value, unit=unit, tz="UTC")
        ts = pd.Timestamp(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if ts is pd.NaT:
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def timestamp_of(obj: Mapping[str, Any]) -> pd.Timestamp | None:
    for key in _TS_KEYS:
        if key in obj:
            return to_timestamp(obj[key])
    return None


def quote_price(quote: Mapping[str, Any]) -> float | None:
    """The latest price of a quote object (``price``, else ``last`` / ``close``)."""
    q = unwrap(dict(quote), "quote", "tick")
    for key in ("price", "last", "close"):
        x = number(q.get(key))
        if x is not None:
            return x
    return None


def bars_frame(data: Any) -> pd.DataFrame:
    """History bars → a frame ``ts, open, high, low, close, volume`` sorted by ``ts`` (tz-aware UTC), rows with an
    unreadable time or close dropped. Short names (``o h l c v``) are accepted."""
    aliases = {"o": "open", "h": "high", "l": "low", "c": "close", "v": "volume"}
    rows = []
    for bar in items(data, "bars"):
        ts = timestamp_of(bar)
        row: dict[str, Any] = {"ts": ts}
        for key, value in bar.items():
            name = aliases.get(key, key)
            if name in BAR_FIELDS[1:]:
                row[name] = number(value)
        rows.append(row)
    frame = pd.DataFrame(rows, columns=list(BAR_FIELDS))
    frame = frame.dropna(subset=["ts", "close"])
    if frame.empty:
        return frame.reset_index(drop=True)
    for col in ("open", "high", "low"):
        frame[col] = frame[col].fillna(frame["close"])
    frame["volume"] = frame["volume"].fillna(0.0)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame.sort_values("ts").drop_duplicates("ts", keep="last").reset_index(drop=True)


def records_frame(data: Any, *keys: str) -> pd.DataFrame:
    """A list of objects (see :func:`items`) → a frame with a parsed ``ts`` column, sorted by it when present."""
    rows = items(data, *keys)
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows)
    stamps = [timestamp_of(r) for r in rows]
    frame["ts"] = pd.to_datetime(pd.Series(stamps, dtype="object"), utc=True)
    frame = frame.dropna(subset=["ts"])
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects → ``{"a.b.c": leaf}`` (lists of scalars kept as leaves; lists of objects indexed)."""
    out: dict[str, Any] = {}
    if isinstance(data, Mapping):
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
    elif isinstance(data, list) and any(isinstance(x, Mapping) for x in data):
        for i, value in enumerate(data):
            out.update(flatten(value, f"{prefix}{i}."))
    elif prefix:
        out[prefix[:-1]] = data
    return out


def format_price(price: float | None) -> str:
    """The price as the page shows it: two decimals with thousands separators (four significant digits below 1)."""
    if price is None:
        return "n/a"
    return f"{price:,.2f}" if abs(price) >= 1 else f"{price:.4g}"


def _seg(symbol: str) -> str:
    return quote(symbol.strip(), safe="")


def _iso(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def first_number(obj: Mapping[str, Any], keys: Iterable[str]) -> float | None:
    """The first finite number under one of ``keys``."""
    for key in keys:
        x = number(obj.get(key))
        if x is not None:
            return x
    return None
