"""The Hedge fusion: prior warm-up, learning from settled outcomes only, bounded steps, decay, floors, resume."""

from __future__ import annotations

import math

import numpy as np
import pytest

from marketpulse.fusion.ensemble import FusionConfig, HedgeFusion


def test_warm_up_is_the_prior_and_missing_inputs_drop_out() -> None:
    fusion = HedgeFusion(FusionConfig(prior={"price": 3.0, "sentiment": 1.0}))
    signal = fusion.predict({"price": 0.8, "sentiment": 0.4})
    assert signal is not None and signal.weights == pytest.approx({"price": 0.75, "sentiment": 0.25})
    assert signal.probability == pytest.approx(0.75 * 0.8 + 0.25 * 0.4) and signal.direction == "up"
    assert signal.confidence == pytest.approx(abs(2 * signal.probability - 1))
    alone = fusion.predict({"price": None, "sentiment": 0.3})
    assert alone is not None and alone.weights == {"sentiment": 1.0} and alone.direction == "down"
    assert fusion.predict({"price": float("nan")}) is None


def test_the_better_input_gains_weight_from_outcomes() -> None:
    rng = np.random.default_rng(7)
    fusion = HedgeFusion(FusionConfig(eta=0.3, decay=0.0, min_weight=0.0))
    for _ in range(300):
        up = bool(rng.random() < 0.5)
        good = 0.7 if up else 0.3  # right 100 % of the time, modestly confident
        noise = float(rng.random())  # an input with no information
        fusion.update({"price": good, "sentiment": noise}, up)
    assert fusion.weights["price"] > 0.99
    state = fusion.state()
    assert state["updates"] == 300 and state["mean_loss"]["price"] == pytest.approx(-math.log(0.7))


def test_one_outcome_moves_weights_a_bounded_step() -> None:
    config = FusionConfig(eta=1.0, max_loss=2.0, decay=0.0, min_weight=0.0)
    fusion = HedgeFusion(config)
    fusion.update({"price": 0.0, "sentiment": 0.5}, up=True)  # price was certain and wrong: loss capped at 2
    ratio = fusion.weights["price"] / fusion.weights["sentiment"]
    assert ratio == pytest.approx(math.exp(-2.0) / math.exp(-math.log(2.0)))


def test_decay_pulls_back_to_the_prior_and_the_floor_holds() -> None:
    fusion = HedgeFusion(FusionConfig(eta=2.0, decay=0.2, min_weight=0.05))
    for _ in range(50):
        fusion.update({"price": 0.05, "sentiment": 0.95}, up=True)
    assert fusion.weights["price"] >= 0.05 - 1e-12 and sum(fusion.weights.values()) == pytest.approx(1.0)
    for _ in range(200):  # no more evidence about price: sentiment alone keeps being charged a small loss
        fusion.update({"sentiment": 0.5}, up=True)
    assert fusion.weights["price"] > 0.3, "old evidence fades towards the equal prior"


def test_state_round_trip_and_config_errors() -> None:
    config = FusionConfig(inputs=("price", "sentiment", "momentum"))
    fusion = HedgeFusion(config)
    for up in (True, False, True):
        fusion.update({"price": 0.6, "sentiment": 0.45, "momentum": 0.5}, up)
    again = HedgeFusion.from_state(config, fusion.state())
    assert again.weights == pytest.approx(fusion.weights) and again.state()["mean_loss"] == pytest.approx(
        fusion.state()["mean_loss"]
    )
    with pytest.raises(ValueError, match="missing inputs"):
        FusionConfig(prior={"price": 1.0})
    with pytest.raises(ValueError, match="unique"):
        FusionConfig(inputs=("price", "price"))
    with pytest.raises(ValueError, match="min_weight"):
        FusionConfig(min_weight=0.5)


def test_an_absent_input_sleeps_rather_than_gaining_weight() -> None:
    fusion = HedgeFusion(FusionConfig(eta=1.0, decay=0.0, min_weight=0.0))
    for up in (True, False, False, True):
        fusion.update({"price": 0.6, "sentiment": None}, up)  # sentiment missing: charged the pool's loss
    assert fusion.weights == pytest.approx({"price": 0.5, "sentiment": 0.5})
    assert fusion.state()["seen"] == {"price": 4, "sentiment": 0}
