"""Small helpers shared by the route modules: online values → response fields, query parameter types."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import Query

from marketpulse.api.deps import TIME_SCHEMA
from marketpulse.api.errors import ApiError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MAX_LIMIT = 10_000

Start = Annotated[
    str | None,
    Query(description="inclusive lower bound: RFC 3339 date-time, date or epoch ms", json_schema_extra=TIME_SCHEMA),
]
End = Annotated[
    str | None,
    Query(description="exclusive upper bound: RFC 3339 date-time, date or epoch ms", json_schema_extra=TIME_SCHEMA),
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="at most this many rows (the newest)")]


def ns_dt(ns: Any) -> datetime:
    """Epoch nanoseconds (as stored in online values) → aware UTC datetime (microsecond precision)."""
    return _EPOCH + timedelta(microseconds=int(ns) // 1000)


def num(value: Any) -> float | None:
    """A JSON-safe float: ``None`` for missing, non-numeric or non-finite values."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def nums(values: Any) -> dict[str, float | None]:
    return {str(k): num(v) for k, v in values.items()} if isinstance(values, dict) else {}


def probs(values: Any) -> dict[str, float]:
    return {k: v for k, v in nums(values).items() if v is not None}


def require(value: dict[str, Any] | None, what: str, symbol: str) -> dict[str, Any]:
    """The online value, or 404 ``not_found`` (the symbol is known but has no ``what`` yet)."""
    if value is None or "ts" not in value:
        raise ApiError(404, "not_found", f"no {what} for {symbol} yet")
    return value


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of a stats tree (non-finite floats → null, unknown objects → str)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return str(value)


def newest(rows: list[Any], limit: int) -> tuple[list[Any], bool]:
    """The last ``limit`` of ``rows`` (sorted oldest first) and whether some were cut."""
    return (rows[-limit:], True) if len(rows) > limit else (rows, False)
