"""The calibrated lexicon + transformer ensemble (name ``ensemble``): a multinomial logistic *stacker* over both
models' outputs, fitted on held-out data only.

Per text, the stacker reads :func:`features` — the transformer's three logits, the lexicon's three log-probabilities
(clipped at 1e-4) and its polarity — and gives ``softmax(W x + b)`` over negative / neutral / positive; polarity and
intensity follow as for every model (``p_pos - p_neg``, ``1 - p_neutral``). Being a logistic model fitted on
held-out logits it is also the calibration step (a generalised temperature scaling: per-class scales, offsets and
the lexicon's evidence): the card reports expected calibration error, log-loss and Brier score before and after.

Fitting (:func:`fit_ensemble`, run by ``marketpulse train sentiment`` after the cross-validation, or alone with
``--ensemble-only`` from the saved out-of-fold file):

- the transformer features of a training text are its **out-of-fold** logits (from the fold run that never saw it,
  :class:`~marketpulse.sentiment.train.OutOfFold`), so the stacker learns how much to trust the transformer on
  unseen text, not on its own training data; the lexicon has no training, so its features are just its output;
- the shipped stacker is fitted on all out-of-fold rows; the ensemble's own cross-validated figures come from one
  stacker per fold, fitted on the other folds' rows (nested: neither the transformer nor the stacker saw the
  text they score) — those per-fold stackers ship too, so ``evaluate sentiment --model ensemble`` can give the
  same cross-validated predictions for any training text.

The stacker file (``minilm_fin_ensemble.json``, beside its head: ``marketpulse train sentiment`` writes both in
its output folder) belongs to one head: it records the head's sha256 and :class:`EnsembleSentiment` refuses a head
it was not fitted for (a retrained head needs a refitted stacker).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.sentiment.base import LABELS, Score, SentimentError, SentimentModel
from marketpulse.sentiment.transformer import Precision

ENSEMBLE_JSON = "minilm_fin_ensemble.json"
ENSEMBLE_FORMAT = "marketpulse-sentiment-stacker/1"
FEATURES = (
    "transformer_logit_negative",
    "transformer_logit_neutral",
    "transformer_logit_positive",
    "lexicon_log_p_negative",
    "lexicon_log_p_neutral",
    "lexicon_log_p_positive",
    "lexicon_polarity",
)
_FLOOR = 1e-4
_NEUTRAL = Score(0.0, 1.0, 0.0, 0.0, 0.0)


def features(lexicon: Sequence[Score], logits: np.ndarray) -> np.ndarray:
    """``(n, 7)`` stacker inputs (:data:`FEATURES`); rows of NaN logits (nothing to read) get zero logits."""
    lex = np.array([(s.negative, s.neutral, s.positive) for s in lexicon], dtype=np.float64).reshape(-1, 3)
    polarity = np.array([s.polarity for s in lexicon], dtype=np.float64).reshape(-1, 1)
    z = np.nan_to_num(np.asarray(logits, dtype=np.float64).reshape(-1, 3), nan=0.0)
    return np.hstack([z, np.log(np.clip(lex, _FLOOR, 1.0)), polarity])


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    out: np.ndarray = p / p.sum(axis=1, keepdims=True)
    return out


@dataclass(frozen=True)
class Stacker:
    """``softmax(x @ weight.T + bias)``: ``weight`` is ``(3, len(FEATURES))``, ``bias`` ``(3,)``."""

    weight: np.ndarray
    bias: np.ndarray

    def logits(self, x: np.ndarray) -> np.ndarray:
        out: np.ndarray = x @ self.weight.T + self.bias
        return out

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        return softmax(self.logits(x))

    def to_json(self) -> dict[str, Any]:
        return {"weight": self.weight.round(8).tolist(), "bias": self.bias.round(8).tolist()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stacker:
        weight = np.array(data["weight"], dtype=np.float64)
        bias = np.array(data["bias"], dtype=np.float64)
        if weight.shape != (len(LABELS), len(FEATURES)) or bias.shape != (len(LABELS),):
            raise SentimentError(f"stacker has shape {weight.shape}/{bias.shape}, expected (3, {len(FEATURES)})/(3,)")
        if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
            raise SentimentError("stacker holds non-finite weights")
        return cls(weight, bias)


def fit_stacker(x: np.ndarray, y: np.ndarray, c: float = 1.0) -> Stacker:
    """Multinomial logistic regression (L2, ``C = c``, L-BFGS; scikit-learn) of labels ``y`` (LABELS indices) on
    ``x``. A label missing from ``y`` still gets a row (its bias stays very low)."""
    from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

    model = LogisticRegression(C=c, max_iter=2000)
    model.fit(x, y)
    weight = np.zeros((len(LABELS), x.shape[1]))
    bias = np.full(len(LABELS), -30.0)
    for row, label in enumerate(model.classes_):
        weight[int(label)] = model.coef_[row] if len(model.classes_) > 2 else (1 if row else -1) * model.coef_[0] / 2
        bias[int(label)] = (
            model.intercept_[row] if len(model.classes_) > 2 else (1 if row else -1) * model.intercept_[0] / 2
        )
    return Stacker(weight, bias)


def calibration(probs: np.ndarray, y: np.ndarray, bins: int = 15) -> dict[str, float]:
    """Expected calibration error (top-label, ``bins`` equal-width bins), mean log-loss and Brier score."""
    n = len(y)
    if not n:
        return {"ece": 0.0, "log_loss": 0.0, "brier": 0.0}
    top = probs.max(axis=1)
    right = (probs.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(top, edges[1:-1]), 0, bins - 1)
    ece = sum(abs(right[which == b].mean() - top[which == b].mean()) * (which == b).sum() / n
              for b in range(bins) if (which == b).any())  # fmt: skip
    onehot = np.eye(len(LABELS))[y]
    return {
        "ece": float(ece),
        "log_loss": float(-np.log(np.clip(probs[np.arange(n), y], 1e-12, 1.0)).mean()),
        "brier": float(((probs - onehot) ** 2).sum(axis=1).mean()),
    }


def fit_ensemble(
    x: np.ndarray, y: np.ndarray, fold: np.ndarray, c: float = 1.0
) -> tuple[Stacker, dict[int, Stacker], np.ndarray]:
    """The final stacker (all rows with ``fold >= 0``), one stacker per fold (fitted without that fold's rows) and
    the ensemble's nested out-of-fold probabilities (``NaN`` rows where ``fold < 0``)."""
    rows = fold >= 0
    final = fit_stacker(x[rows], y[rows], c)
    per_fold: dict[int, Stacker] = {}
    oof = np.full((len(y), len(LABELS)), np.nan)
    for k in sorted(set(fold[rows].tolist())):
        train = rows & (fold != k)
        test = fold == k
        per_fold[k] = fit_stacker(x[train], y[train], c)
        oof[test] = per_fold[k].probabilities(x[test])
    return final, per_fold, oof


class EnsembleConfig(BaseModel):
    """Where the stacker is and how the transformer part runs (its other options are the transformer's)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stacker: Path | None = Field(None, description="stacker JSON; None = the one beside the head (as trained)")
    encoder: Path | None = Field(None, description="local Hugging Face model folder; None = the bundled MiniLM")
    head: Path | None = Field(None, description="head file; None = the shipped head")
    threads: int | None = Field(None, ge=1, description="torch threads while scoring; None = usable CPUs")
    precision: Precision | Literal["auto"] = Field(
        "fp32", description="the transformer's precision: fp32 | bf16 | int8 | auto (bf16 where native)"
    )


@dataclass(frozen=True)
class StackerFile:
    """A parsed stacker JSON: the stacker, the per-fold ones, the head it belongs to and its card."""

    final: Stacker
    folds: dict[int, Stacker]
    head_sha256: str
    card: dict[str, Any]


def read_stacker(path: Path) -> StackerFile:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise SentimentError(f"{path}: no stacker file (train one with `marketpulse train sentiment`)") from e
    except (OSError, ValueError) as e:
        raise SentimentError(f"{path}: unreadable stacker file ({e})") from e
    if data.get("format") != ENSEMBLE_FORMAT or list(data.get("features", [])) != list(FEATURES):
        raise SentimentError(f"{path}: not a {ENSEMBLE_FORMAT} file with features {', '.join(FEATURES)}")
    folds = {int(k): Stacker.from_json(v) for k, v in data.get("fold_stackers", {}).items()}
    return StackerFile(Stacker.from_json(data["stacker"]), folds, str(data.get("head_sha256", "")), data)


class EnsembleSentiment(SentimentModel):
    """Lexicon + transformer through the fitted stacker (see the module docstring)."""

    name = "ensemble"

    def __init__(self, config: EnsembleConfig | None = None) -> None:
        from marketpulse.sentiment.lexicon import LexiconModel
        from marketpulse.sentiment.transformer import (
            TransformerConfig,
            TransformerSentiment,
            file_sha256,
            shipped_head,
        )

        self.config = c = config or EnsembleConfig()
        head = Path(c.head) if c.head else shipped_head()
        self.stackers = read_stacker(Path(c.stacker) if c.stacker else head.parent / ENSEMBLE_JSON)
        if self.stackers.head_sha256 and self.stackers.head_sha256 != file_sha256(head):
            raise SentimentError(
                f"the stacker was fitted for head sha256 {self.stackers.head_sha256[:12]}…, not {head.name} "
                f"({file_sha256(head)[:12]}…): refit it with `marketpulse train sentiment --ensemble-only`"
            )
        self.transformer = TransformerSentiment(
            TransformerConfig(encoder=c.encoder, head=head, threads=c.threads, precision=c.precision)
        )
        self.lexicon = LexiconModel()

    def probabilities(
        self, texts: Sequence[str], logits: np.ndarray | None = None, fold: int | None = None
    ) -> np.ndarray:
        """``(n, 3)`` probabilities; ``logits`` replaces the transformer's (e.g. out-of-fold ones), ``fold`` picks
        that fold's stacker instead of the final one. Texts with nothing to read get ``(0, 1, 0)``."""
        z = self.transformer.logits(texts) if logits is None else np.asarray(logits, dtype=np.float64)
        stacker = self.stackers.final if fold is None else self.stackers.folds[fold]
        p = stacker.probabilities(features(self.lexicon.score(texts), z))
        dead = np.isnan(z).any(axis=1)
        p[dead] = (0.0, 1.0, 0.0)
        return p

    def score(self, texts: Sequence[str]) -> list[Score]:
        if not len(texts):
            return []
        return [_score(row) for row in self.probabilities(texts).tolist()]


def _score(p: Sequence[float]) -> Score:
    neg, neu, pos = p
    if not all(math.isfinite(v) for v in p):
        return _NEUTRAL
    neu = min(1.0, max(0.0, 1.0 - neg - pos))
    return Score(neg, neu, pos, max(-1.0, min(1.0, pos - neg)), min(1.0, max(0.0, neg + pos)))


def build(**options: Any) -> EnsembleSentiment:
    """Factory for :data:`marketpulse.sentiment.MODELS` (``options`` are :class:`EnsembleConfig` keys)."""
    return EnsembleSentiment(EnsembleConfig(**options))


__all__ = [
    "ENSEMBLE_JSON",
    "FEATURES",
    "EnsembleConfig",
    "EnsembleSentiment",
    "Stacker",
    "build",
    "calibration",
    "features",
    "fit_ensemble",
    "fit_stacker",
    "read_stacker",
]
