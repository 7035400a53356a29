"""Response models of the REST API (the OpenAPI contract the dashboard reads).

Times are ISO-8601 UTC strings; numbers that the pipeline could not compute (NaN warm-up values) are ``null``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, str] = Field(description="per dependency: ok, or absent when not configured")


class Symbols(BaseModel):
    symbols: list[str] = Field(description="every symbol with live or stored data, sorted")
    count: int


class Quote(BaseModel):
    """The latest tick."""

    symbol: str
    ts: datetime
    price: float | None
    size: float | None
    synthetic: bool = False


class Bar(BaseModel):
    ts: datetime = Field(description="the bar's end (label) time")
    open: float | None
    high: float | None
    low: float | None
    close: float | None
    volume: float | None


class LatestBar(Bar):
    symbol: str
    interval: str = Field(description="'source' (bars as ingested) or the engine's bar length in seconds")
    interval_s: int | None = Field(None, description="bar length in seconds when known")


class BarHistory(BaseModel):
    symbol: str
    start: datetime | None
    end: datetime | None
    count: int
    truncated: bool = Field(description="true when more rows matched than 'limit' (the newest are returned)")
    bars: list[Bar]


class Indicators(BaseModel):
    """The latest model feature vector of a symbol at one bar interval."""

    symbol: str
    interval_s: int
    ts: datetime
    schema_hash: str = Field(description="feature-schema hash (models refuse vectors of another schema)")
    names: list[str]
    values: dict[str, float | None]


class SourceSentiment(BaseModel):
    source: str
    polarity: float
    intensity: float
    probs: dict[str, float]
    count: int
    dispersion: float


class Sentiment(BaseModel):
    symbol: str
    ts: datetime
    polarity: float | None = Field(description="combined polarity in [-1, 1]")
    intensity: float | None = Field(description="combined intensity in [0, 1]")
    probs: dict[str, float]
    sources: list[SourceSentiment] = Field(
        description="per source, recomputed from the stored per-post scores (empty when none are stored)"
    )


class SentimentPoint(BaseModel):
    ts: datetime
    source: str = Field(description="a source, or 'all' for the combined score")
    polarity: float
    intensity: float
    probs: dict[str, float]
    count: int = Field(description="posts inside the window at ts")
    dispersion: float


class SentimentHistory(BaseModel):
    symbol: str
    step_s: int = Field(description="seconds between points; points are whole multiples of it since the epoch")
    window_s: float = Field(description="the aggregation window: posts with ts - window_s < t <= ts count")
    count: int
    truncated: bool = Field(description="true when more rows matched than 'limit' (the newest are returned)")
    sentiment: list[SentimentPoint] = Field(description="sorted by (ts, source)")


class Prediction(BaseModel):
    symbol: str
    ts: datetime
    p_up: float | None
    p_down: float | None = None
    expected_move: float | None = None
    confidence: float | None = None
    horizon_s: int | None = None
    model: str | None = None


class PredictionHistory(BaseModel):
    symbol: str
    count: int
    truncated: bool
    predictions: list[Prediction]


class SignalOut(BaseModel):
    symbol: str
    ts: datetime
    score: float | None
    components: dict[str, float | None] = Field(default_factory=dict)
    weights: dict[str, float | None] = Field(default_factory=dict)


class SignalHistory(BaseModel):
    symbol: str
    count: int
    truncated: bool = Field(description="true when more rows matched than 'limit' (the newest are returned)")
    signals: list[SignalOut] = Field(
        description="oldest first; 'weights' are the fusion's weights at each signal (normalised for Hedge, "
        "logistic coefficients for stacking: they may be negative or above 1)"
    )


class AlertOut(BaseModel):
    ts: datetime
    rule: str
    severity: str
    message: str
    symbol: str | None = None


class Alerts(BaseModel):
    count: int
    truncated: bool
    alerts: list[AlertOut]


class Stats(BaseModel):
    pipeline: dict[str, Any] = Field(description="the stats provider's counters, rates and latencies")
    api: dict[str, Any] = Field(description="requests, WebSocket clients, hub counters")


__all__ = [
    "AlertOut",
    "Alerts",
    "Bar",
    "BarHistory",
    "Health",
    "Indicators",
    "LatestBar",
    "Prediction",
    "PredictionHistory",
    "Ready",
    "Sentiment",
    "SignalHistory",
    "SignalOut",
    "SourceSentiment",
    "Stats",
    "Symbols",
]
