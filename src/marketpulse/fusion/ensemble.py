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

The other method, ``method="stacking"``, is :class:`~marketpulse.fusion.stacking.StackingFusion` (online logistic
regression on the inputs' logits); :func:`make_fusion` builds either from a :class:`FusionConfig`, and both follow
the :class:`Fusion` protocol.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

_EPS = 1e-6


class FusionConfig(BaseModel):
    """Method, inputs, prior and learning schedule of a fusion (see the module docstrings).

    ``eta``, ``max_loss`` and ``min_weight`` are the Hedge pool's; ``lr`` and ``max_logit`` the stacking model's;
    ``prior`` and ``decay`` are shared (stacking: the prior weights are the warm-up coefficients, and ``decay``
    pulls the coefficients towards them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["hedge", "stacking"] = Field("hedge", description="Hedge linear pool, or online logistic stacking")
    inputs: tuple[str, ...] = Field(("price", "sentiment"), min_length=1, description="input signal names")
    prior: dict[str, float] | None = Field(None, description="prior weight per input (normalised); None = equal")
    eta: float = Field(0.1, gt=0.0, le=10.0, description="learning rate of the multiplicative update")
    max_loss: float = Field(3.0, gt=0.0, description="cap on one outcome's log-loss (the bounded step)")
    decay: float = Field(0.001, ge=0.0, le=1.0, description="pull of the log-weights towards the prior per update")
    min_weight: float = Field(0.02, ge=0.0, lt=1.0, description="floor of every normalised weight")
    lr: float = Field(0.05, gt=0.0, le=10.0, description="stacking: AdaGrad learning rate (the largest step)")
    max_logit: float = Field(4.0, gt=0.0, le=20.0, description="stacking: each input's logit is clipped to ±this")
    learn_bias: bool = Field(False, description="stacking: also learn a base rate (a bet that recent up-shares last)")

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

    @classmethod
    def of(cls, p: float, weights: dict[str, float], inputs: dict[str, float]) -> FusedSignal:
        """The signal of ``p(up) = p``: direction ``up`` when ``p >= 0.5``, confidence ``|2p − 1|``."""
        return cls("up" if p >= 0.5 else "down", p, abs(2.0 * p - 1.0), weights, inputs)


class Fusion(Protocol):
    """What the engine and the evaluation need of a fusion method."""

    config: FusionConfig
    weights: dict[str, float]
    """The current weight of every configured input (Hedge: normalised; stacking: coefficients)."""
    updates: int

    def predict(self, inputs: Mapping[str, float | None]) -> FusedSignal | None: ...

    def update(self, inputs: Mapping[str, float | None], up: bool) -> None: ...

    def state(self) -> dict[str, Any]: ...


def make_fusion(config: FusionConfig | None = None, state: Mapping[str, Any] | None = None) -> Fusion:
    """The fusion of ``config.method``, resumed from ``state`` when given (a state of the other method is
    ignored: its weights mean something else)."""
    config = config or FusionConfig()
    if config.method == "stacking":
        from marketpulse.fusion.stacking import StackingFusion

        if state is not None and state.get("method") == "stacking":
            return StackingFusion.from_state(config, state)
        return StackingFusion(config)
    if state is not None and state.get("method", "hedge") == "hedge":
        return HedgeFusion.from_state(config, state)
    return HedgeFusion(config)


def log_loss(p: float, up: bool, cap: float) -> float:
    """``−log p(outcome)``, capped at ``cap``."""
    return min(cap, -math.log(max(_EPS, p if up else 1.0 - p)))


class InputLosses:
    """Each input's own capped log-loss over the outcomes it was present for (what the dashboard shows)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.total: dict[str, float] = {name: 0.0 for name in names}
        self.seen: dict[str, int] = {name: 0 for name in names}

    def charge(self, present: Mapping[str, float], up: bool, cap: float) -> None:
        for name, p in present.items():
            self.total[name] += log_loss(p, up, cap)
            self.seen[name] += 1

    def state(self) -> dict[str, Any]:
        mean = {n: (self.total[n] / self.seen[n] if self.seen[n] else None) for n in self.total}
        return {"mean_loss": mean, "seen": dict(self.seen)}

    def restore(self, state: Mapping[str, Any]) -> None:
        for name, n in dict(state.get("seen", {})).items():
            if name in self.seen:
                self.seen[name] = int(n)
                mean = dict(state.get("mean_loss", {})).get(name)
                self.total[name] = float(mean) * int(n) if mean is not None else 0.0


def present_inputs(inputs: Mapping[str, float | None], names: tuple[str, ...]) -> dict[str, float]:
    """The finite inputs among ``names``, clipped to [0, 1]."""
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
        self.losses = InputLosses(self.config.inputs)

    def predict(self, inputs: Mapping[str, float | None]) -> FusedSignal | None:
        """The fused signal from the inputs present, or None when none is."""
        present = present_inputs(inputs, self.config.inputs)
        if not present:
            return None
        total = sum(self.weights[name] for name in present)
        used = {name: self.weights[name] / total for name in present}
        return FusedSignal.of(sum(used[name] * present[name] for name in present), used, present)

    def update(self, inputs: Mapping[str, float | None], up: bool) -> None:
        """Learn from one settled prediction: ``inputs`` as predicted from, ``up`` the realised direction."""
        present = present_inputs(inputs, self.config.inputs)
        if not present:
            return
        c = self.config
        fused = self.predict(present)
        assert fused is not None
        log_w = {name: math.log(max(w, _EPS)) for name, w in self.weights.items()}
        for name in log_w:
            p = present.get(name, fused.probability)  # an absent input "sleeps": charged the pool's own loss
            log_w[name] -= c.eta * log_loss(p, up, c.max_loss)
        self.losses.charge(present, up, c.max_loss)
        for name in log_w:
            log_w[name] = (1.0 - c.decay) * log_w[name] + c.decay * math.log(self._prior[name])
        top = max(log_w.values())
        raw = {name: math.exp(v - top) for name, v in log_w.items()}
        self.weights = _floored(raw, c.min_weight)
        self.updates += 1

    def state(self) -> dict[str, Any]:
        """A JSON-able snapshot (weights, updates, mean loss per input) for the stores and the dashboard."""
        return {
            "method": "hedge",
            "weights": dict(self.weights),
            "updates": self.updates,
            **self.losses.state(),
        }

    @classmethod
    def from_state(cls, config: FusionConfig, state: Mapping[str, Any]) -> HedgeFusion:
        """A fusion resumed from :meth:`state` (inputs not in the snapshot start at their prior)."""
        fusion = cls(config)
        saved = {k: float(v) for k, v in dict(state.get("weights", {})).items() if k in fusion.weights and v > 0}
        fusion.weights = _floored({**fusion._prior, **saved}, config.min_weight)
        fusion.updates = int(state.get("updates", 0))
        fusion.losses.restore(state)
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


__all__ = [
    "FusedSignal",
    "Fusion",
    "FusionConfig",
    "HedgeFusion",
    "InputLosses",
    "log_loss",
    "make_fusion",
    "present_inputs",
]
