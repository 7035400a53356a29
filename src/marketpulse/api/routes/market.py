"""Market data: symbols, latest quote, latest bar, bar history, latest indicators.

Online kinds read: ``ticks`` (quotes), ``bars`` (source bars, ``interval=source``), ``bars_<N>s`` (engine bars),
``features_<N>s`` (indicators). History: frame kind ``bars``.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query

from marketpulse.api.deps import GUARDS, State, Symbol, time_range
from marketpulse.api.errors import ApiError, responses
from marketpulse.api.models import Bar, BarHistory, Indicators, LatestBar, Quote, Symbols
from marketpulse.api.routes.common import End, Limit, Start, ns_dt, num, require

router = APIRouter(prefix="/v1", tags=["market"], dependencies=GUARDS, responses=responses(401, 403, 429))
NOT_FOUND = responses(404)
Interval = Annotated[
    str, Query(pattern=r"^(source|[0-9]{1,6})$", description="'source' (bars as ingested) or seconds, e.g. 60")
]
Seconds = Annotated[int, Query(ge=1, le=999_999, description="bar length in seconds")]
_META = ("ts", "interval_s", "schema")


@router.get("/symbols", response_model=Symbols, summary="Every symbol with live or stored data")
def symbols(state: State) -> Symbols:
    found = sorted(state.symbols(max_age_s=0.0))
    return Symbols(symbols=found, count=len(found))


@router.get("/quotes/{symbol}", response_model=Quote, responses=NOT_FOUND, summary="The latest tick")
async def quote(state: State, symbol: Symbol) -> Quote:
    value = require(await state.online_get("ticks", symbol), "quote", symbol)
    return Quote(
        symbol=symbol,
        ts=ns_dt(value["ts"]),
        price=num(value.get("price")),
        size=num(value.get("size")),
        synthetic=bool(value.get("synthetic", False)),
    )


@router.get("/bars/{symbol}/latest", response_model=LatestBar, responses=NOT_FOUND, summary="The latest bar")
async def latest_bar(state: State, symbol: Symbol, interval: Interval = "60") -> LatestBar:
    kind = "bars" if interval == "source" else f"bars_{int(interval)}s"
    value = require(await state.online_get(kind, symbol), f"{interval} bar", symbol)
    seconds = value.get("interval_s", None if interval == "source" else int(interval))
    return LatestBar(
        symbol=symbol,
        interval=interval if interval == "source" else str(int(interval)),
        interval_s=int(seconds) if seconds is not None else None,
        ts=ns_dt(value["ts"]),
        **{c: num(value.get(c)) for c in ("open", "high", "low", "close", "volume")},
    )


@router.get("/bars/{symbol}", response_model=BarHistory, responses=NOT_FOUND, summary="Stored bars in a time range")
def bar_history(state: State, symbol: Symbol, start: Start = None, end: End = None, limit: Limit = 1000) -> BarHistory:
    """Source bars with ``start <= ts < end`` sorted by time; the newest ``limit`` when more match."""
    lo, hi = time_range(start, end)
    frame = state.context.history.read_frame("bars", symbol, lo, hi)
    truncated = len(frame) > limit
    frame = frame.iloc[-limit:]
    ts = frame["ts"].to_numpy("datetime64[ns]").view(np.int64)
    cols = {c: frame[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")}
    bars = [Bar(ts=ns_dt(t), **{c: num(v[i]) for c, v in cols.items()}) for i, t in enumerate(ts)]
    return BarHistory(symbol=symbol, start=lo, end=hi, count=len(bars), truncated=truncated, bars=bars)


@router.get("/indicators/{symbol}", response_model=Indicators, responses=NOT_FOUND, summary="Latest feature vector")
async def indicators(state: State, symbol: Symbol, interval: Seconds = 60) -> Indicators:
    value = require(await state.online_get(f"features_{interval}s", symbol), f"{interval}s indicators", symbol)
    names = [k for k in value if k not in _META]
    if not names:
        raise ApiError(404, "not_found", f"no {interval}s indicators for {symbol} yet")
    return Indicators(
        symbol=symbol,
        interval_s=int(value.get("interval_s", interval)),
        ts=ns_dt(value["ts"]),
        schema_hash=str(value.get("schema", "")),
        names=names,
        values={n: num(value[n]) for n in names},
    )


__all__ = ["router"]
