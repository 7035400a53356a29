"""Bus records → WebSocket messages: which topic feeds which channel, and what a message's ``data`` holds.

Contract of :func:`expand` (pure; raises :class:`~marketpulse.errors.CodecError` on undecodable bytes):

=============  ====================  ===========================================================================
topic          channel               rows and ``data``
=============  ====================  ===========================================================================
market.ticks   ``ticks``             last tick of the batch: ``price, size, synthetic, count`` (ticks in batch)
market.bars    ``bars``              every bar (the last :data:`MAX_BAR_ROWS` of a batch): ``open, high, low,
                                     close, volume, interval_s``
features.market ``indicators``       last vector: ``schema, values {name: float|null}``
sentiment.scores ``sentiment``       ``source, model, polarity, intensity, probs, ref_id, aggregate`` (aggregate:
                                     a windowed per-symbol score; else the score of one post, ``ref_id``)
predictions.price ``predictions``    ``model, version, horizon_s, p_up, p_down, expected_move, confidence``
signals.fused  ``signals``           ``score, components, weights``
alerts         ``alerts``            ``rule, severity, message`` (symbol ``""`` when the alert has none)
=============  ====================  ===========================================================================

Non-finite numbers become ``null``; ``ts`` is the row's event time, ISO-8601 UTC with a ``Z``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from marketpulse.bus.base import (
    ALERTS,
    FEATURES_MARKET,
    MARKET_BARS,
    MARKET_TICKS,
    PREDICTIONS_PRICE,
    SENTIMENT_SCORES,
    SIGNALS_FUSED,
)
from marketpulse.events import (
    Alert,
    AnyEvent,
    BarBatch,
    FeatureBatch,
    Prediction,
    SentimentScore,
    Signal,
    TickBatch,
    decode,
)

CHANNEL_OF_TOPIC = {
    MARKET_TICKS: "ticks",
    MARKET_BARS: "bars",
    FEATURES_MARKET: "indicators",
    SENTIMENT_SCORES: "sentiment",
    PREDICTIONS_PRICE: "predictions",
    SIGNALS_FUSED: "signals",
    ALERTS: "alerts",
}
TOPICS = tuple(CHANNEL_OF_TOPIC)
CHANNELS = tuple(CHANNEL_OF_TOPIC.values())
MAX_BAR_ROWS = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message before it gets its sequence number."""

    channel: str
    symbol: str
    ts: str
    data: dict[str, Any]


def iso_ns(ns: int) -> str:
    """ISO-8601 UTC (microseconds, ``Z``) of epoch nanoseconds."""
    return (_EPOCH + timedelta(microseconds=int(ns) // 1000)).isoformat().replace("+00:00", "Z")


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def num(value: Any) -> float | None:
    """A JSON-safe float: ``None`` for missing or non-finite values."""
    if value is None:
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def expand(topic: str, value: bytes) -> list[Outgoing]:
    """The messages of one bus record of ``topic`` (``[]`` for topics and event types without a channel)."""
    channel = CHANNEL_OF_TOPIC.get(topic)
    if channel is None:
        return []
    return event_messages(channel, decode(value))


def event_messages(channel: str, event: AnyEvent) -> list[Outgoing]:
    """The messages of one decoded event on ``channel`` (see the module docstring)."""
    if isinstance(event, TickBatch):
        ts = np.frombuffer(event.ts_ns, "<i8")
        price, size = np.frombuffer(event.price, "<f8"), np.frombuffer(event.size, "<f8")
        data: dict[str, Any] = {
            "price": num(price[-1]),
            "size": num(size[-1]),
            "synthetic": event.synthetic,
            "count": len(ts),
        }
        return [Outgoing(channel, event.symbol, iso_ns(ts[-1]), data)]
    if isinstance(event, BarBatch):
        ts = np.frombuffer(event.ts_ns, "<i8")[-MAX_BAR_ROWS:]
        cols = {c: np.frombuffer(getattr(event, c), "<f8")[-MAX_BAR_ROWS:] for c in ("open", "high", "low", "close")}
        cols["volume"] = np.frombuffer(event.volume, "<f8")[-MAX_BAR_ROWS:]
        return [
            Outgoing(
                channel,
                event.symbol,
                iso_ns(t),
                {**{c: num(v[i]) for c, v in cols.items()}, "interval_s": event.interval_s},
            )
            for i, t in enumerate(ts)
        ]
    if isinstance(event, FeatureBatch):
        last = event.matrix()[-1]
        ts = np.frombuffer(event.ts_ns, "<i8")
        values = {n: num(v) for n, v in zip(event.names, last, strict=True)}
        return [Outgoing(channel, event.symbol, iso_ns(ts[-1]), {"schema": event.schema, "values": values})]
    if isinstance(event, SentimentScore):
        data = {
            "source": event.source,
            "model": event.model,
            "polarity": num(event.polarity),
            "intensity": num(event.intensity),
            "probs": {k: num(v) for k, v in event.probs.items()},
            "ref_id": event.ref_id,
            "aggregate": event.ref_id is None,
        }
        return [Outgoing(channel, event.symbol, iso(event.ts), data)]
    if isinstance(event, Prediction):
        data = {
            "model": event.model,
            "version": event.version,
            "horizon_s": event.horizon_s,
            "p_up": num(event.p_up),
            "p_down": num(event.p_down),
            "expected_move": num(event.expected_move),
            "confidence": num(event.confidence),
        }
        return [Outgoing(channel, event.symbol, iso(event.ts), data)]
    if isinstance(event, Signal):
        data = {
            "score": num(event.score),
            "components": {k: num(v) for k, v in event.components.items()},
            "weights": {k: num(v) for k, v in event.weights.items()},
        }
        return [Outgoing(channel, event.symbol, iso(event.ts), data)]
    if isinstance(event, Alert):
        data = {"rule": event.rule, "severity": event.severity, "message": event.message}
        return [Outgoing(channel, event.symbol or "", iso(event.ts), data)]
    return []


__all__ = ["CHANNELS", "CHANNEL_OF_TOPIC", "MAX_BAR_ROWS", "TOPICS", "Outgoing", "event_messages", "expand", "iso"]
