"""Online stacking: a logistic regression on the inputs' logits, learned one settled outcome at a time.

:class:`StackingFusion` (``FusionConfig(method="stacking")``) predicts ``p = σ(b + Σ wᵢ xᵢ)`` with
``xᵢ = clip(logit pᵢ, ±max_logit)`` for each input present and ``xᵢ = 0`` (no evidence) for an absent one. Unlike the
Hedge pool it can *rescale* an input (an over- or under-confident model gets ``wᵢ`` above or below its share) and
turn a contrarian input around (``wᵢ < 0``). The base rate ``b`` stays 0 unless ``learn_bias``: a learned ``b``
follows the recent share of up moves, which is a bet that a regime lasts (on StockNet the dev quarter's falling
market taught ``b < 0``, and the fused MCC on the rising test quarter dropped from 0.030 to 0.011).

- Warm-up: ``wᵢ`` = the prior weights (normalised, so the start is a geometric pool of the inputs), ``b = 0``.
- :meth:`StackingFusion.update` — once an outcome is known: one AdaGrad step on the log-loss,
  ``gᵢ = (p − y) xᵢ``, ``wᵢ ← wᵢ − lr · gᵢ / √(Σ g²ᵢ)`` — so no single step moves a coefficient by more than
  ``lr`` (the bounded step) — then ``decay`` pulls every coefficient towards its prior (``b`` towards 0).
- ``weights`` are the coefficients (they need not sum to 1, and may be negative); ``state()`` / ``from_state()``
  round-trip them with the bias and AdaGrad's accumulators.

Each input's own mean log-loss is tracked as in the Hedge pool, so the dashboard shows the same figures for both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from marketpulse.fusion.ensemble import FusedSignal, FusionConfig, InputLosses, present_inputs

_TINY = 1e-12


def _logit(p: float, bound: float) -> float:
    p = min(1.0 - 1e-9, max(1e-9, p))
    return max(-bound, min(bound, math.log(p / (1.0 - p))))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


class StackingFusion:
    """Online logistic stacking of input probabilities (see the module docstring)."""

    def __init__(self, config: FusionConfig | None = None) -> None:
        self.config = config or FusionConfig(method="stacking")
        self._prior = self.config.prior_weights()
        self.weights: dict[str, float] = dict(self._prior)
        self.bias = 0.0
        self.updates = 0
        self._grad_sq: dict[str, float] = {name: 0.0 for name in (*self.config.inputs, "bias")}
        self.losses = InputLosses(self.config.inputs)

    def _features(self, present: Mapping[str, float]) -> dict[str, float]:
        return {name: _logit(p, self.config.max_logit) for name, p in present.items()}

    def _probability(self, x: Mapping[str, float]) -> float:
        return _sigmoid(self.bias + sum(self.weights[name] * v for name, v in x.items()))

    def predict(self, inputs: Mapping[str, float | None]) -> FusedSignal | None:
        """The fused signal from the inputs present, or None when none is."""
        present = present_inputs(inputs, self.config.inputs)
        if not present:
            return None
        used = {name: self.weights[name] for name in present}
        return FusedSignal.of(self._probability(self._features(present)), used, present)

    def update(self, inputs: Mapping[str, float | None], up: bool) -> None:
        """Learn from one settled prediction: ``inputs`` as predicted from, ``up`` the realised direction."""
        present = present_inputs(inputs, self.config.inputs)
        if not present:
            return
        c = self.config
        x = self._features(present)
        error = self._probability(x) - (1.0 if up else 0.0)
        steps = [(n, error * v) for n, v in x.items()]
        if c.learn_bias:
            steps.append(("bias", error))
        for name, g in steps:
            self._grad_sq[name] += g * g
            step = c.lr * g / math.sqrt(self._grad_sq[name] + _TINY)
            if name == "bias":
                self.bias -= step
            else:
                self.weights[name] -= step
        for name in self.weights:
            self.weights[name] += c.decay * (self._prior[name] - self.weights[name])
        self.bias -= c.decay * self.bias
        self.losses.charge(present, up, c.max_loss)
        self.updates += 1

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot (coefficients, bias, updates, mean loss per input, AdaGrad accumulators)."""
        return {
            "method": "stacking",
            "weights": dict(self.weights),
            "bias": self.bias,
            "updates": self.updates,
            **self.losses.state(),
            "grad_sq": dict(self._grad_sq),
        }

    @classmethod
    def from_state(cls, config: FusionConfig, state: Mapping[str, Any]) -> StackingFusion:
        """A fusion resumed from :meth:`state` (inputs not in the snapshot start at their prior)."""
        fusion = cls(config)
        for name, value in dict(state.get("weights", {})).items():
            if name in fusion.weights:
                fusion.weights[name] = float(value)
        fusion.bias = float(state.get("bias", 0.0))
        fusion.updates = int(state.get("updates", 0))
        for name, value in dict(state.get("grad_sq", {})).items():
            if name in fusion._grad_sq:
                fusion._grad_sq[name] = float(value)
        fusion.losses.restore(state)
        return fusion


__all__ = ["StackingFusion"]
