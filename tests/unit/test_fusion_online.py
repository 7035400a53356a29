"""The fusion stage in event time: settles only when the horizon has passed, from the close at prediction time."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from marketpulse.fusion.online import OnlineFusion, OnlineFusionConfig

S = 1_000_000_000


def test_predictions_settle_only_when_their_horizon_has_passed() -> None:
    fusion = OnlineFusion(OnlineFusionConfig(eta=1.0, decay=0.0, min_weight=0.0))
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
    fusion = OnlineFusion(OnlineFusionConfig(sentiment_max_age_s=60))
    fusion.bar("A", 0, 10.0)
    fusion.sentiment("A", 0, 1.0)
    stale = fusion.predict("A", 61 * S, 0.6, 60)
    assert stale is not None and stale.components == {"price": 0.6}
    assert stale.weights == pytest.approx({"price": 0.5, "sentiment": 0.5}), "every input's weight, present or not"
    fusion.sentiment("B", 100 * S, 1.0)
    fusion.bar("B", 0, 10.0)
    early = fusion.predict("B", 50 * S, 0.6, 60)
    assert early is not None and "sentiment" not in early.components, "posts from after the prediction time"


def test_pending_predictions_are_bounded() -> None:
    fusion = OnlineFusion(OnlineFusionConfig(max_pending=3))
    fusion.bar("A", 0, 10.0)
    for t in range(10):
        fusion.predict("A", t * S, 0.6, 3600)
    assert fusion.bar("A", 10_000 * S, 11.0) == 3


def test_momentum_input_follows_the_scaled_recent_return() -> None:
    config = OnlineFusionConfig(inputs=("price", "momentum"), momentum_bars=2, momentum_window=4)
    fusion = OnlineFusion(config)
    closes = [100.0, 101.0, 100.0, 101.0]
    for t, c in enumerate(closes):
        fusion.bar("A", t * S, c)
    assert fusion.inputs("A", 4 * S, 0.5)["momentum"] is None, "needs momentum_window + 1 closes"
    fusion.bar("A", 4 * S, 103.0)
    logs = np.log([100.0, 101.0, 100.0, 101.0, 103.0])
    steps = np.diff(logs)
    z = (logs[-1] - logs[-3]) / (steps.std() * np.sqrt(2))
    assert fusion.inputs("A", 4 * S, 0.5)["momentum"] == pytest.approx(1 / (1 + np.exp(-z)))
    fusion.bar("A", 5 * S, 99.0)
    down = fusion.inputs("A", 5 * S, 0.5)["momentum"]
    assert down is not None and down < 0.5
    flat = OnlineFusion(config)
    for t in range(6):
        flat.bar("F", t * S, 50.0)
    assert flat.inputs("F", 6 * S, 0.5)["momentum"] is None, "a flat window has no scale: no evidence"


def test_each_sentiment_source_is_its_own_input() -> None:
    config = OnlineFusionConfig(
        inputs=("price", "sentiment:news", "sentiment:reddit"), eta=0.2, decay=0.0, min_weight=0.0
    )
    fusion = OnlineFusion(config)
    assert fusion.sources
    fusion.bar("A", 0, 100.0)
    fusion.sentiment("A", 0, 0.8, source="news")  # right: the price goes up
    fusion.sentiment("A", 0, -0.8, source="reddit")  # wrong
    fusion.sentiment("A", 0, 0.0)  # combined: not an input here, ignored
    for t in range(1, 40):
        signal = fusion.predict("A", t * S, 0.5, 1)
        assert signal is not None and set(signal.components) == {"price", "sentiment:news", "sentiment:reddit"}
        fusion.sentiment("A", t * S, 0.8, source="news")
        fusion.sentiment("A", t * S, -0.8, source="reddit")
        fusion.bar("A", (t + 1) * S, 100.0 + t)
    w = fusion.fusion.weights
    assert w["sentiment:news"] > w["price"] > w["sentiment:reddit"]


def test_stacking_method_in_the_stage_and_its_state() -> None:
    fusion = OnlineFusion(OnlineFusionConfig(method="stacking"))
    fusion.bar("A", 0, 100.0)
    fusion.sentiment("A", 0, 0.5)
    signal = fusion.predict("A", 0, 0.7, 1)
    assert signal is not None and set(signal.weights) == {"price", "sentiment"}
    fusion.bar("A", 1 * S, 101.0)
    state = fusion.state()
    assert state["method"] == "stacking" and state["settled"] == 1 and state["updates"] == 1


def test_unknown_or_missing_inputs_are_config_errors() -> None:
    with pytest.raises(ValidationError, match="allowed: 'price', 'sentiment', 'sentiment:<source>', 'momentum'"):
        OnlineFusionConfig(inputs=("price", "volume"))
    with pytest.raises(ValidationError, match="'price' is required"):
        OnlineFusionConfig(inputs=("sentiment",))
