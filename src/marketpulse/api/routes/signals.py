"""Derived views: sentiment, price predictions, fused signals and alerts.

Online kinds read: ``sentiment`` (combined aggregate), ``predictions``, ``signals`` (expected value:
``{"ts": ns, "score": float, "components": {...}, "weights": {...}}``). History event kinds: ``sentiment``
(per-post scores, for the per-source view and its timeline), ``predictions``, ``signals``, ``alerts``.
"""

from __future__ import annotations

import bisect
import math
from datetime import datetime, timedelta
from typing import Annotated, TypeGuard

from fastapi import APIRouter, Query

from marketpulse.api.deps import GUARDS, SYMBOL_PATTERN, TIME_SCHEMA, State, Symbol, parse_time, time_range
from marketpulse.api.errors import responses
from marketpulse.api.models import (
    AlertOut,
    Alerts,
    Prediction,
    PredictionHistory,
    Sentiment,
    SentimentHistory,
    SentimentPoint,
    SignalHistory,
    SignalOut,
    SourceSentiment,
)
from marketpulse.api.routes.common import End, Limit, Start, newest, ns_dt, num, nums, probs, require
from marketpulse.events import Alert, SentimentScore, Signal
from marketpulse.events import Prediction as PredictionEvent
from marketpulse.sentiment.aggregate import ALL_SOURCES, Aggregate, AggregateConfig, SentimentAggregator
from marketpulse.sentiment.base import LABELS
from marketpulse.store.memory import to_ns

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


StepS = Annotated[
    int, Query(ge=10, le=86_400, description="seconds between points (whole multiples of it since the epoch)")
]
_NS = 1_000_000_000


@router.get(
    "/sentiment/{symbol}/history",
    response_model=SentimentHistory,
    responses=NOT_FOUND,
    summary="Per-source sentiment over time",
)
def sentiment_history(
    state: State, symbol: Symbol, start: Start = None, end: End = None, limit: Limit = 1000, step_s: StepS = 300
) -> SentimentHistory:
    """The per-source timeline recomputed from the stored per-post scores (each post counts 1: engagement weights
    are not stored).

    The symbol's posts are replayed in time order through a :class:`SentimentAggregator` (default config, window
    ``window_s``), from one window before ``start`` so the first points already have a full window. The points are
    the times ``T`` that are whole multiples of ``step_s`` since the epoch with ``start <= T < end``, not after the
    newest stored post (event time has not reached them) and with at least one post in ``(T - window_s, T]``. Each
    point gives one row per source with posts in the window and one ``all`` row: the aggregator's combined score,
    i.e. the configured source weights **without** the engine's learned reliability weights (those are not
    stored), so it can differ slightly from the live combined score of ``GET /v1/sentiment/{symbol}``. Rows are
    sorted by (ts, source); the newest ``limit`` when more match (``truncated``). A known symbol without stored
    posts in the range gives an empty list (404 only for an unknown symbol); ``start`` after ``end`` is empty.
    Bounded work: the read is ``[start - window_s, end)`` (everything up to ``end`` without ``start``), and only
    the points of the newest ``limit`` rows are computed, whatever the range."""
    lo, hi = time_range(start, end)
    agg = SentimentAggregator()
    posts: list[SentimentScore] = []
    if lo is None or hi is None or lo < hi:
        stored = state.context.history.read_events("sentiment", symbol, _before(lo, agg.config.window_s), hi)
        posts = sorted((e for e in stored if _post(e, symbol)), key=lambda e: e.ts)
    times = [to_ns(e.ts) for e in posts]
    points = _points(posts, times, lo, hi, step_s, limit, agg.config)
    rows: list[SentimentPoint] = []
    window = int(agg.config.window_s * _NS)
    fed = bisect.bisect_right(times, points[0] - window) if points else 0
    for at_ns in points:
        while fed < len(posts) and times[fed] <= at_ns:
            agg.update(posts[fed])
            fed += 1
        at = ns_dt(at_ns)
        parts = [agg.get_source(symbol, source, at) for source in agg.sources(symbol)]
        rows.extend(_point(part) for part in (*parts, agg.get(symbol, at)) if part is not None)
    rows.sort(key=lambda r: (r.ts, r.source))
    kept, truncated = newest(rows, limit)
    return SentimentHistory(
        symbol=symbol,
        step_s=step_s,
        window_s=agg.config.window_s,
        count=len(kept),
        truncated=truncated,
        sentiment=kept,
    )


def _post(event: object, symbol: str) -> TypeGuard[SentimentScore]:
    """A stored per-post score of ``symbol`` that the aggregator counts (finite values; not an ``all`` aggregate)."""
    if not isinstance(event, SentimentScore) or event.symbol != symbol or event.source == ALL_SOURCES:
        return False
    values = (event.polarity, event.intensity, *((event.probs or {}).get(k, 0.0) for k in LABELS))
    return all(math.isfinite(float(v)) for v in values)


def _points(
    posts: list[SentimentScore],
    times: list[int],
    lo: datetime | None,
    hi: datetime | None,
    step_s: int,
    limit: int,
    config: AggregateConfig,
) -> list[int]:
    """The grid times (epoch ns, oldest first) of the newest rows of :func:`sentiment_history`: walked down from the
    newest post until more than ``limit`` rows are covered, jumping over gaps longer than the window, so the work is
    bounded by ``limit`` plus the number of posts. A point's rows are counted as the aggregator will give them: one
    per source with posts in ``(T - window, T]``, plus ``all`` when those sources' configured weights sum above 0."""
    if not posts:
        return []
    window, step = int(config.window_s * _NS), step_s * _NS
    by_source: dict[str, list[int]] = {}
    for post, t in zip(posts, times, strict=True):
        by_source.setdefault(post.source, []).append(t)
    top = times[-1] if hi is None else min(times[-1], to_ns(hi) - 1)
    bottom = times[0] if lo is None else to_ns(lo)
    at, rows, out = top // step * step, 0, []
    while at >= bottom and rows <= limit:
        last = bisect.bisect_right(times, at)
        if last == 0:
            break
        if times[last - 1] <= at - window:  # nothing in the window: jump to the last point that sees that post
            at = (times[last - 1] + window - 1) // step * step
            continue
        present = [
            s for s, ts in by_source.items() if bisect.bisect_right(ts, at) > bisect.bisect_right(ts, at - window)
        ]
        weight = sum(config.source_weights.get(s, config.default_source_weight) for s in present)
        rows += len(present) + int(weight > 0)
        out.append(at)
        at -= step
    return out[::-1]


def _point(part: Aggregate) -> SentimentPoint:
    return SentimentPoint(
        ts=part.ts,
        source=part.source,
        polarity=part.polarity,
        intensity=part.intensity,
        probs=probs(part.probs),
        count=part.count,
        dispersion=part.dispersion,
    )


def _before(at: datetime | None, seconds: float) -> datetime | None:
    """``at - seconds``; ``None`` (unbounded) without ``at`` or when that is before the earliest datetime."""
    if at is None:
        return None
    try:
        return at - timedelta(seconds=seconds)
    except OverflowError:
        return None


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
