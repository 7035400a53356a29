"""Adaptive fusion: one probability of an up move from several input signals, weighted by how each has done.

:class:`HedgeFusion` is an online linear pool with multiplicative (Hedge) weights, River style:

- :meth:`HedgeFusion.predict` — ``p = Σ wᵢ pᵢ / Σ wᵢ`` over the inputs present (a missing input, e.g. no posts
  today, drops out and the others are renormalised); the signal carries direction (``up`` when ``p >= 0.5``),
  probability, confidence ``|2p − 1|`` and the weights used;
- :meth:`HedgeFusion.update` — once the outcome of a prediction is **known** (its horizon has passed; the caller
  passes the inputs it predicted from and the realised direction, never a value from after that time), each input
  present is charged its log-loss ``−log pᵢ(outcome)``, capped at ``max_loss`` (the bounded step), and
  ``wᵢ ← wᵢ · exp(−eta · lossᵢ)``; an absent input *sleeps* — it is charged the pool's own loss, so being absent
  neither earns nor costs it weight relative to the pool (otherwise an input that is often missing, like
  sentiment on days without posts, would gain weight merely by being charged less often); then every weight is
  pulled towards the prior by ``decay`` (``log w ← (1 − decay) log w + decay log prior``, so old evidence fades
  and no input is ever written off), and weights are renormalised with a floor ``min_weight``.

Before any outcome the weights are the prior (the warm-up); the state is a plain dict (:meth:`state`,
:meth:`from_state`) so stores and the dashboard can keep the weight history.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

_EPS = 1e-6


class FusionConfig(BaseModel):
    """Inputs, prior and learning schedule of :class:`HedgeFusion` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    inputs: tuple[str, ...] = Field(("price", "sentiment"), min_length=1, description="input signal names")
    prior: dict[str, float] | None = Field(None, description="prior weight per input (normalised); None = equal")
    eta: float = Field(0.1, gt=0.0, le=10.0, description="learning rate of the multiplicative update")
    max_loss: float = Field(3.0, gt=0.0, description="cap on one outcome's log-loss (the bounded step)")
    decay: float = Field(0.001, ge=0.0, le=1.0, description="pull of the log-weights towards the prior per update")
    min_weight: float = Field(0.02, ge=0.0, lt=1.0, description="floor of every normalised weight")

    @model_validator(mode="after")
    def _check(self) -> FusionConfig:
        if len(set(self.inputs)) != len(self.inputs):
            raise ValueError(f"inputs {list(self.inputs)}: names must be unique")
        if self.prior is not None:
            unknown = sorted(set(self.prior) - set(self.inputs))
            missing = sorted(set(self.inputs) - set(self.prior))
            if unknown or missing:
                raise ValueError(f"prior: unknown inputs {unknown}, missing inputs {missing}")
            if any(v <= 0 for v in self.prior.values()):
                raise ValueError("prior: every weight must be > 0")
        if self.min_weight * len(self.inputs) >= 1.0:
            raise ValueError(f"min_weight {self.min_weight} × {len(self.inputs)} inputs must stay below 1")
        return self

    def prior_weights(self) -> dict[str, float]:
        raw = self.prior or {name: 1.0 for name in self.inputs}
        total = sum(raw.values())
        return {name: raw[name] / total for name in self.inputs}


@dataclass(frozen=True)
class FusedSignal:
    """One fused prediction: direction, p(up), confidence and the normalised weights of the inputs it used."""

    direction: str
    probability: float
    confidence: float
    weights: dict[str, float]
    inputs: dict[str, float]


def _present(inputs: Mapping[str, float | None], names: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in names:
        value = inputs.get(name)
        if value is not None and math.isfinite(value):
            out[name] = min(1.0, max(0.0, float(value)))
    return out


class HedgeFusion:
    """Online Hedge-weighted linear pool of input probabilities (see the module docstring)."""

    def __init__(self, config: FusionConfig | None = None) -> None:
        self.config = config or FusionConfig()
        self._prior = self.config.prior_weights()
        self.weights: dict[str, float] = dict(self._prior)
        self.updates = 0
        self.losses: dict[str, float] = {name: 0.0 for name in self.config.inputs}
        self.seen: dict[str, int] = {name: 0 for name in self.config.inputs}

    def predict(self, inputs: Mapping[str, float | None]) -> FusedSignal | None:
        """The fused signal from the inputs present, or None when none is."""
        present = _present(inputs, self.config.inputs)
        if not present:
            return None
        total = sum(self.weights[name] for name in present)
        used = {name: self.weights[name] / total for name in present}
        p = sum(used[name] * present[name] for name in present)
        return FusedSignal("up" if p >= 0.5 else "down", p, abs(2.0 * p - 1.0), used, present)

    def update(self, inputs: Mapping[str, float | None], up: bool) -> None:
        """Learn from one settled prediction: ``inputs`` as predicted from, ``up`` the realised direction."""
        present = _present(inputs, self.config.inputs)
        if not present:
            return
        c = self.config
        fused = self.predict(present)
        assert fused is not None
        log_w = {name: math.log(max(w, _EPS)) for name, w in self.weights.items()}
        for name in log_w:
            p = present.get(name, fused.probability)  # an absent input "sleeps": charged the pool's own loss
            loss = min(c.max_loss, -math.log(max(_EPS, p if up else 1.0 - p)))
            log_w[name] -= c.eta * loss
            if name in present:
                self.losses[name] += loss
                self.seen[name] += 1
        for name in log_w:
            log_w[name] = (1.0 - c.decay) * log_w[name] + c.decay * math.log(self._prior[name])
        top = max(log_w.values())
        raw = {name: math.exp(v - top) for name, v in log_w.items()}
        self.weights = _floored(raw, c.min_weight)
        self.updates += 1

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot (weights, updates, mean loss per input) for the stores and the dashboard."""
        return {
            "weights": dict(self.weights),
            "updates": self.updates,
            "mean_loss": {n: (self.losses[n] / self.seen[n] if self.seen[n] else None) for n in self.config.inputs},
            "seen": dict(self.seen),
        }

    @classmethod
    def from_state(cls, config: FusionConfig, state: Mapping[str, Any]) -> HedgeFusion:
        """A fusion resumed from :meth:`state` (inputs not in the snapshot start at their prior)."""
        fusion = cls(config)
        saved = {k: float(v) for k, v in dict(state.get("weights", {})).items() if k in fusion.weights and v > 0}
        fusion.weights = _floored({**fusion._prior, **saved}, config.min_weight)
        fusion.updates = int(state.get("updates", 0))
        for name, n in dict(state.get("seen", {})).items():
            if name in fusion.seen:
                fusion.seen[name] = int(n)
                mean = state.get("mean_loss", {}).get(name)
                fusion.losses[name] = float(mean) * int(n) if mean is not None else 0.0
        return fusion


def _floored(raw: Mapping[str, float], floor: float) -> dict[str, float]:
    """Normalise ``raw`` to sum 1 with every weight ≥ ``floor`` (the mass above the floors split pro rata)."""
    total = sum(raw.values())
    weights = {k: v / total for k, v in raw.items()}
    low: set[str] = set()
    while True:
        below = {k for k, v in weights.items() if k not in low and v < floor}
        if not below:
            return weights
        low |= below
        rest = sum(raw[k] for k in weights if k not in low)
        share = 1.0 - floor * len(low)
        weights = {k: floor if k in low else raw[k] / rest * share for k in weights}


__all__ = ["FusedSignal", "FusionConfig", "HedgeFusion"]
