"""Sentiment aggregation: decay, weights, windows, no look-ahead, order independence, cross-source mix, events."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from marketpulse.events import SentimentScore
from marketpulse.features.text import CleanPost
from marketpulse.sentiment.aggregate import (
    ALL_SOURCES,
    AggregateConfig,
    AggregateState,
    SentimentAggregator,
    aggregate_scores,
    score_events,
)
from marketpulse.sentiment.base import Score

T0 = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
HOUR = 3600.0


def ev(
    polarity: float,
    minutes: float = 0.0,
    *,
    symbol: str = "AAPL",
    source: str = "twitter",
    intensity: float | None = None,
    ingest_ns: int = 0,
) -> SentimentScore:
    pos = max(polarity, 0.0)
    neg = max(-polarity, 0.0)
    return SentimentScore(
        ts=T0 + timedelta(minutes=minutes),
        ingest_ns=ingest_ns,
        symbol=symbol,
        source=source,
        model="lexicon",
        polarity=polarity,
        intensity=abs(polarity) if intensity is None else intensity,
        probs={"negative": neg, "neutral": 1 - pos - neg, "positive": pos},
    )


def agg(**kw: object) -> SentimentAggregator:
    return SentimentAggregator(AggregateConfig(half_life_s=HOUR, **kw))  # type: ignore[arg-type]


def test_single_event() -> None:
    a = agg()
    a.update(ev(0.4))
    got = a.get("AAPL", T0, source="twitter")
    assert got is not None
    assert (got.polarity, got.intensity, got.count, got.dispersion, got.weight) == pytest.approx((0.4, 0.4, 1, 0, 1))
    assert got.probs == pytest.approx({"negative": 0.0, "neutral": 0.6, "positive": 0.4})
    assert a.get("MSFT", T0) is None


def test_exponential_decay_by_half_life() -> None:
    a = agg()
    a.update(ev(1.0, 0))
    a.update(ev(-1.0, 60))  # one half-life later
    at = T0 + timedelta(minutes=60)
    got = a.get("AAPL", at, source="twitter")
    assert got is not None
    assert got.weight == pytest.approx(1.5)
    assert got.polarity == pytest.approx((0.5 * 1.0 + 1.0 * -1.0) / 1.5)
    mean = got.polarity
    var = (0.5 * (1 - mean) ** 2 + 1.0 * (-1 - mean) ** 2) / 1.5
    assert got.dispersion == pytest.approx(math.sqrt(var))
    later = a.get("AAPL", at + timedelta(hours=1), source="twitter")
    assert later is not None and later.weight == pytest.approx(0.75)
    assert later.polarity == pytest.approx(mean)  # decay scales all weights alike


def test_engagement_weights_multiply() -> None:
    a = agg()
    a.update(ev(1.0, 0), weight=3.0)
    a.update(ev(-1.0, 0), weight=1.0)
    a.update(ev(-1.0, 0), weight=float("nan"))  # counts as 1
    a.update(ev(-1.0, 0), weight=-2.0)  # counts as 1
    got = a.get("AAPL", T0, source="twitter")
    assert got is not None and got.polarity == pytest.approx((3 - 1 - 1 - 1) / 6)


def test_window_and_no_look_ahead() -> None:
    a = agg(window_s=2 * HOUR)
    a.update(ev(1.0, 0))
    a.update(ev(-1.0, 90))
    early = a.get("AAPL", T0 + timedelta(minutes=30), source="twitter")
    assert early is not None and early.count == 1 and early.polarity == pytest.approx(1.0)  # the future is unseen
    assert a.get("AAPL", T0 - timedelta(minutes=1)) is None
    late = a.get("AAPL", T0 + timedelta(minutes=150), source="twitter")
    assert late is not None and late.count == 1 and late.polarity == pytest.approx(-1.0)  # first one left the window


def test_order_and_batch_boundaries_do_not_change_answers() -> None:
    rng = random.Random(7)
    events = [
        (ev(rng.uniform(-1, 1), rng.uniform(0, 600), source=rng.choice(["twitter", "news"])), rng.uniform(1, 5))
        for _ in range(300)
    ]
    at = T0 + timedelta(minutes=600)
    a = agg()
    a.update_many(events)
    shuffled = events[:]
    rng.shuffle(shuffled)
    state = AggregateState()
    for start in range(0, len(shuffled), 37):
        aggregate_scores(shuffled[start : start + 37], state, AggregateConfig(half_life_s=HOUR))
    b = SentimentAggregator(AggregateConfig(half_life_s=HOUR), state)
    for source in ("twitter", "news", ALL_SOURCES):
        x, y = a.get("AAPL", at, source), b.get("AAPL", at, source)
        assert x is not None and y is not None
        assert (x.polarity, x.intensity, x.dispersion, x.count, x.weight) == pytest.approx(
            (y.polarity, y.intensity, y.dispersion, y.count, y.weight), rel=1e-12, abs=1e-12
        )


def test_late_event_beyond_the_window_is_ignored_and_cap_holds() -> None:
    a = agg(window_s=HOUR, max_events=5)
    a.update(ev(0.5, 120))
    a.update(ev(-1.0, 0))  # 2 h late: outside the newest event's window
    got = a.get("AAPL", T0 + timedelta(minutes=120), source="twitter")
    assert got is not None and got.count == 1
    for i in range(10):
        a.update(ev(0.1, 121 + i))
    got = a.get("AAPL", T0 + timedelta(minutes=130), source="twitter")
    assert got is not None and got.count == 5


def test_combined_score_uses_source_weights() -> None:
    a = agg(source_weights={"news": 1.0, "twitter": 0.25})
    a.update(ev(0.8, 0, source="news"))
    a.update(ev(-0.4, 0, source="twitter"))
    a.update(ev(0.0, 0, source="twitter"))
    got = a.get("AAPL", T0)
    assert got is not None and got.source == ALL_SOURCES
    tw_mean, tw_var = -0.2, 0.04
    mean = (1.0 * 0.8 + 0.25 * tw_mean) / 1.25
    assert got.polarity == pytest.approx(mean)
    assert got.dispersion == pytest.approx(
        math.sqrt((1.0 * (0.8 - mean) ** 2 + 0.25 * (tw_var + (tw_mean - mean) ** 2)) / 1.25)
    )
    assert got.count == 3
    assert sum(got.probs.values()) == pytest.approx(1.0)
    unknown = agg(default_source_weight=0.0, source_weights={})
    unknown.update(ev(0.5, 0, source="reddit"))
    assert unknown.get("AAPL", T0) is None


def test_emit_gives_one_event_per_source_and_all_then_clears() -> None:
    a = agg()
    a.update(ev(0.5, 0, source="news", ingest_ns=11))
    a.update(ev(-0.5, 10, source="twitter", ingest_ns=22))
    a.update(ev(0.2, 5, symbol="MSFT", source="news"))
    out = a.emit()
    assert [(e.symbol, e.source) for e in out] == [
        ("AAPL", "news"),
        ("AAPL", "twitter"),
        ("AAPL", ALL_SOURCES),
        ("MSFT", "news"),
        ("MSFT", ALL_SOURCES),
    ]
    assert all(isinstance(e, SentimentScore) and e.model == "lexicon" for e in out)
    assert out[0].ts == T0 + timedelta(minutes=10)  # the symbol's newest event time, never the wall clock
    assert out[0].ingest_ns == 22
    assert out[3].ts == T0 + timedelta(minutes=5)
    assert a.emit() == []
    at = T0 + timedelta(hours=2)
    a.update(ev(0.1, 20))
    assert {e.ts for e in a.emit(at)} == {at}


def test_non_finite_scores_are_ignored() -> None:
    a = agg()
    a.update(ev(float("nan"), 0))
    assert a.get("AAPL", T0) is None


def test_score_events_from_clean_posts() -> None:
    posts = [
        CleanPost("p1", T0, "twitter", "Apple and Microsoft up", ("AAPL", "MSFT"), "en", 2.5, ingest_ns=5),
        CleanPost("p2", T0, "news", "Bank of America down", ("BAC",), "en", 1.0),
    ]
    scores = [Score(0.1, 0.2, 0.7, 0.6, 0.7), Score(0.8, 0.1, 0.1, -0.7, 0.7)]
    items = score_events(posts, scores, "lexicon")
    assert [(e.symbol, e.source, e.ref_id, w) for e, w in items] == [
        ("AAPL", "twitter", "p1", 2.5),
        ("MSFT", "twitter", "p1", 2.5),
        ("BAC", "news", "p2", 1.0),
    ]
    assert items[0][0].probs == {"negative": 0.1, "neutral": 0.2, "positive": 0.7}
    assert items[0][0].ingest_ns == 5
    events, state = aggregate_scores(items)
    assert {(e.symbol, e.source) for e in events} >= {("AAPL", ALL_SOURCES), ("BAC", ALL_SOURCES)}
    assert not state.dirty
