"""Derived views: sentiment, price predictions, fused signals and alerts.

Online kinds read: ``sentiment`` (combined aggregate), ``predictions``, ``signals`` (expected value:
``{"ts": ns, "score": float, "components": {...}, "weights": {...}}``). History event kinds: ``sentiment``
(per-post scores, for the per-source view), ``predictions``, ``signals``, ``alerts``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from marketpulse.api.deps import GUARDS, SYMBOL_PATTERN, TIME_SCHEMA, State, Symbol, parse_time, time_range
from marketpulse.api.errors import responses
from marketpulse.api.models import (
    AlertOut,
    Alerts,
    Prediction,
    PredictionHistory,
    Sentiment,
    SignalHistory,
    SignalOut,
    SourceSentiment,
)
from marketpulse.api.routes.common import End, Limit, Start, newest, ns_dt, num, nums, probs, require
from marketpulse.events import Alert, SentimentScore, Signal
from marketpulse.events import Prediction as PredictionEvent
from marketpulse.sentiment.aggregate import SentimentAggregator

router = APIRouter(prefix="/v1", tags=["signals"], dependencies=GUARDS, responses=responses(401, 403, 429))
NOT_FOUND = responses(404)


@router.get("/sentiment/{symbol}", response_model=Sentiment, responses=NOT_FOUND, summary="Combined and per source")
def sentiment(state: State, symbol: Symbol) -> Sentiment:
    """The engine's latest combined aggregate; ``sources`` recomputes each source's windowed aggregate at the same
    time from the stored per-post scores (engagement weights are not stored: each post counts 1)."""
    value = require(state.context.online.get("sentiment", symbol), "sentiment", symbol)
    at = ns_dt(value["ts"])
    agg = SentimentAggregator()
    window = timedelta(seconds=agg.config.window_s)
    for event in state.context.history.read_events("sentiment", symbol, at - window, at + timedelta(microseconds=1)):
        if isinstance(event, SentimentScore):
            agg.update(event)
    sources = []
    for source in agg.sources(symbol):
        part = agg.get_source(symbol, source, at)
        if part is not None:
            sources.append(
                SourceSentiment(
                    source=source,
                    polarity=part.polarity,
                    intensity=part.intensity,
                    probs=probs(part.probs),
                    count=part.count,
                    dispersion=part.dispersion,
                )
            )
    return Sentiment(
        symbol=symbol,
        ts=at,
        polarity=num(value.get("polarity")),
        intensity=num(value.get("intensity")),
        probs=probs(value.get("probs")),
        sources=sources,
    )


@router.get("/predictions/{symbol}", response_model=Prediction, responses=NOT_FOUND, summary="Latest prediction")
async def prediction(state: State, symbol: Symbol) -> Prediction:
    value = require(await state.online_get("predictions", symbol), "prediction", symbol)
    p_up = num(value.get("p_up"))
    horizon = value.get("horizon_s")
    return Prediction(
        symbol=symbol,
        ts=ns_dt(value["ts"]),
        p_up=p_up,
        p_down=num(value.get("p_down", None if p_up is None else 1.0 - p_up)),
        expected_move=num(value.get("expected_move")),
        confidence=num(value.get("confidence")),
        horizon_s=int(horizon) if horizon is not None else None,
        model=str(value["model"]) if value.get("model") is not None else None,
    )


@router.get(
    "/predictions/{symbol}/history", response_model=PredictionHistory, responses=NOT_FOUND, summary="Stored predictions"
)
def prediction_history(
    state: State, symbol: Symbol, start: Start = None, end: End = None, limit: Limit = 1000
) -> PredictionHistory:
    """Predictions with ``start <= ts < end`` sorted by time; the newest ``limit`` when more match."""
    lo, hi = time_range(start, end)
    stored = state.context.history.read_events("predictions", symbol, lo, hi)
    events = [e for e in stored if isinstance(e, PredictionEvent)]
    kept, truncated = newest(events, limit)
    rows = [
        Prediction(
            symbol=symbol,
            ts=e.ts,
            p_up=num(e.p_up),
            p_down=num(e.p_down if e.p_down is not None else 1.0 - e.p_up),
            expected_move=num(e.expected_move),
            confidence=num(e.confidence),
            horizon_s=e.horizon_s,
            model=e.version or e.model,
        )
        for e in kept
    ]
    return PredictionHistory(symbol=symbol, count=len(rows), truncated=truncated, predictions=rows)


@router.get("/signals/{symbol}", response_model=SignalOut, responses=NOT_FOUND, summary="Latest fused signal")
async def signal(state: State, symbol: Symbol) -> SignalOut:
    """404 ``not_found`` until the fusion stage has written a signal for the symbol."""
    value = require(await state.online_get("signals", symbol), "fused signal", symbol)
    return SignalOut(
        symbol=symbol,
        ts=ns_dt(value["ts"]),
        score=num(value.get("score")),
        components=nums(value.get("components")),
        weights=nums(value.get("weights")),
    )


@router.get(
    "/signals/{symbol}/history", response_model=SignalHistory, responses=NOT_FOUND, summary="Stored fused signals"
)
def signal_history(
    state: State, symbol: Symbol, start: Start = None, end: End = None, limit: Limit = 1000
) -> SignalHistory:
    """Fused signals with ``start <= ts < end`` sorted by time; the newest ``limit`` when more match. A known symbol
    without stored signals gives an empty list (404 only for an unknown symbol). Each row carries the fusion's
    weights at that moment, so the rows together are the weight history."""
    lo, hi = time_range(start, end)
    stored = state.context.history.read_events("signals", symbol, lo, hi)
    events = [e for e in stored if isinstance(e, Signal)]
    kept, truncated = newest(events, limit)
    rows = [
        SignalOut(symbol=symbol, ts=e.ts, score=num(e.score), components=nums(e.components), weights=nums(e.weights))
        for e in kept
    ]
    return SignalHistory(symbol=symbol, count=len(rows), truncated=truncated, signals=rows)


AlertSymbol = Annotated[str | None, Query(pattern=SYMBOL_PATTERN, description="only this symbol's alerts")]


@router.get("/alerts", response_model=Alerts, summary="Stored alerts since a time")
def alerts(
    state: State,
    since: Annotated[
        str | None,
        Query(description="inclusive: RFC 3339 date-time, date or epoch ms", json_schema_extra=TIME_SCHEMA),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="at most this many (the newest)")] = 100,
    symbol: AlertSymbol = None,
) -> Alerts:
    """Alerts with ``ts >= since`` (all symbols, and those without one, unless ``symbol`` is given), sorted by time."""
    lo = parse_time(since, "since")
    history = state.context.history
    owners = [symbol.upper()] if symbol else history.symbols("alerts")
    found: dict[tuple[object, ...], Alert] = {}
    for owner in owners:
        for e in history.read_events("alerts", owner, lo, None):
            if isinstance(e, Alert):
                found[(e.ts, e.rule, e.symbol, e.message)] = e
    ordered = sorted(found.values(), key=lambda e: (e.ts, e.rule))
    kept, truncated = newest(ordered, limit)
    rows = [AlertOut(ts=e.ts, rule=e.rule, severity=e.severity, message=e.message, symbol=e.symbol) for e in kept]
    return Alerts(count=len(rows), truncated=truncated, alerts=rows)


__all__ = ["router"]
