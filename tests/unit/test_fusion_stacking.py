"""Online stacking: a logistic model on the inputs' logits, bounded AdaGrad steps, decay, resumable state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from marketpulse.fusion.ensemble import FusionConfig, HedgeFusion, make_fusion
from marketpulse.fusion.stacking import StackingFusion

STACK = FusionConfig(method="stacking", decay=0.0)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_warm_up_is_the_geometric_pool_of_the_prior() -> None:
    fusion = StackingFusion(FusionConfig(method="stacking", prior={"price": 3.0, "sentiment": 1.0}))
    signal = fusion.predict({"price": 0.8, "sentiment": 0.3})
    assert signal is not None
    z = 0.75 * _logit(0.8) + 0.25 * _logit(0.3)
    assert signal.probability == pytest.approx(1 / (1 + math.exp(-z)))
    assert signal.weights == pytest.approx({"price": 0.75, "sentiment": 0.25})
    alone = fusion.predict({"price": 0.8, "sentiment": None})
    assert alone is not None and alone.inputs == {"price": 0.8}, "an absent input adds no evidence"
    assert fusion.predict({"price": None}) is None


def test_learns_to_sharpen_an_underconfident_input_and_to_turn_a_contrarian_one() -> None:
    rng = np.random.default_rng(0)
    fusion = StackingFusion(STACK)
    for _ in range(3000):
        up = bool(rng.random() < 0.5)
        sharp = 0.55 if up else 0.45  # always right, but timid: its weight should grow well past its share
        contrarian = 0.3 if up else 0.7  # always wrong: a negative coefficient uses it
        fusion.update({"price": sharp, "sentiment": contrarian}, up)
    assert fusion.weights["price"] > 1.0 and fusion.weights["sentiment"] < 0.0
    good = fusion.predict({"price": 0.55, "sentiment": 0.3})
    assert good is not None and good.probability > 0.95


def test_each_step_is_bounded_by_the_learning_rate() -> None:
    fusion = StackingFusion(FusionConfig(method="stacking", lr=0.05, decay=0.0))
    before = dict(fusion.weights)
    fusion.update({"price": 0.999999, "sentiment": 0.000001}, False)  # extreme inputs, maximal surprise
    for name in before:
        assert abs(fusion.weights[name] - before[name]) <= 0.05 + 1e-12
    assert abs(fusion.bias) <= 0.05 + 1e-12


def test_decay_pulls_the_coefficients_back_to_the_prior() -> None:
    fusion = StackingFusion(FusionConfig(method="stacking", decay=0.5))
    fusion.weights = {"price": 3.0, "sentiment": -1.0}
    fusion.update({"price": 0.5, "sentiment": 0.5}, True)  # logits 0: only the bias and the decay move
    assert fusion.weights == pytest.approx({"price": 1.75, "sentiment": -0.25})


def test_state_round_trip_continues_identically() -> None:
    rng = np.random.default_rng(1)
    fusion = StackingFusion(STACK)
    rows = [
        ({"price": float(rng.random()), "sentiment": float(rng.random())}, bool(rng.random() < 0.5)) for _ in range(50)
    ]
    for inputs, up in rows[:25]:
        fusion.update(inputs, up)
    again = StackingFusion.from_state(STACK, fusion.state())
    for inputs, up in rows[25:]:
        fusion.update(inputs, up)
        again.update(inputs, up)
    a, b = again.state(), fusion.state()
    for key in ("weights", "grad_sq", "mean_loss"):
        assert a[key] == pytest.approx(b[key]), key
    assert a["bias"] == pytest.approx(b["bias"]) and a["updates"] == b["updates"] == 50


def test_make_fusion_builds_the_configured_method_and_never_mixes_states() -> None:
    hedge = HedgeFusion(FusionConfig(eta=1.0))
    hedge.update({"price": 0.9, "sentiment": 0.1}, True)
    stacking = make_fusion(FusionConfig(method="stacking"), hedge.state())
    assert isinstance(stacking, StackingFusion) and stacking.updates == 0, "a Hedge state is not coefficients"
    resumed = make_fusion(FusionConfig(eta=1.0), hedge.state())
    assert isinstance(resumed, HedgeFusion) and resumed.weights == pytest.approx(hedge.weights)
    assert isinstance(make_fusion(), HedgeFusion)


def test_the_base_rate_is_learned_only_when_asked() -> None:
    rows = [({"price": 0.5, "sentiment": 0.5}, True)] * 200  # uninformative inputs, a market that only rises
    plain, biased = StackingFusion(STACK), StackingFusion(FusionConfig(method="stacking", decay=0.0, learn_bias=True))
    for inputs, up in rows:
        plain.update(inputs, up)
        biased.update(inputs, up)
    assert plain.bias == 0.0 and plain.predict(rows[0][0]).probability == pytest.approx(0.5)  # type: ignore[union-attr]
    assert biased.bias > 0.5 and biased.predict(rows[0][0]).probability > 0.6  # type: ignore[union-attr]
