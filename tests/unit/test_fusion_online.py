"""The fusion stage in event time: settles only when the horizon has passed, from the close at prediction time."""

from __future__ import annotations

import pytest

from marketpulse.fusion.ensemble import FusionConfig
from marketpulse.fusion.online import OnlineFusion

S = 1_000_000_000


def test_predictions_settle_only_when_their_horizon_has_passed() -> None:
    fusion = OnlineFusion(FusionConfig(eta=1.0, decay=0.0, min_weight=0.0))
    assert fusion.predict("A", 0, 0.9, 60) is None, "no close yet: nothing to measure an outcome from"
    fusion.bar("A", 0, 100.0)
    fusion.sentiment("A", 0, -0.8)  # sentiment says down (p = 0.1), price says up (0.9)
    signal = fusion.predict("A", 0, 0.9, 60)
    assert signal is not None and signal.components == pytest.approx({"price": 0.9, "sentiment": 0.1})
    assert signal.score == pytest.approx(0.0) and signal.weights == pytest.approx({"price": 0.5, "sentiment": 0.5})
    assert fusion.bar("A", 59 * S, 90.0) == 0, "a bar before the horizon ends settles nothing"
    assert fusion.bar("A", 60 * S, 101.0) == 1, "101 > 100 (the close at prediction time, not the 90 in between)"
    assert fusion.fusion.weights["price"] > 0.9


def test_stale_or_future_sentiment_is_not_used() -> None:
    fusion = OnlineFusion(sentiment_max_age_s=60)
    fusion.bar("A", 0, 10.0)
    fusion.sentiment("A", 0, 1.0)
    stale = fusion.predict("A", 61 * S, 0.6, 60)
    assert stale is not None and stale.components == {"price": 0.6}
    fusion.sentiment("B", 100 * S, 1.0)
    fusion.bar("B", 0, 10.0)
    early = fusion.predict("B", 50 * S, 0.6, 60)
    assert early is not None and "sentiment" not in early.components, "posts from after the prediction time"


def test_pending_predictions_are_bounded() -> None:
    fusion = OnlineFusion(max_pending=3)
    fusion.bar("A", 0, 10.0)
    for t in range(10):
        fusion.predict("A", t * S, 0.6, 3600)
    assert fusion.bar("A", 10_000 * S, 11.0) == 3
