"""The model registry: kind name → :class:`PriceModel` class, creation, loading and prediction on samples.

Deep kinds (``lstm``, ``gru``, ``alstm``, ``transformer``, ``tcn``) need torch; without it they are still listed
in :data:`ALL_KINDS` but :func:`create` / :func:`load_model` raise :class:`MissingDependencyError`. ``lstm-numpy``
(:mod:`marketpulse.predict.numpy_lstm`, an exported ``lstm`` served with numpy alone) loads everywhere; it is not
a kind to train, so it is not in :data:`ALL_KINDS`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from marketpulse.errors import ConfigError, MissingDependencyError
from marketpulse.predict.base import META_FILE, PriceModel, Samples
from marketpulse.predict.baselines import BASELINES
from marketpulse.predict.numpy_lstm import NumpyLSTMModel

DEEP_KINDS = ("lstm", "gru", "alstm", "transformer", "tcn")
BASELINE_KINDS = tuple(cls.kind for cls in BASELINES)
ALL_KINDS = BASELINE_KINDS + DEEP_KINDS

KINDS: dict[str, type[PriceModel]] = {cls.kind: cls for cls in BASELINES}
KINDS[NumpyLSTMModel.kind] = NumpyLSTMModel
"""Kind → class of every kind importable here (the deep kinds only when torch is installed)."""

try:
    from marketpulse.predict.torch_model import DEEP_MODELS

    KINDS.update({cls.kind: cls for cls in DEEP_MODELS})
except ImportError:  # pragma: no cover - exercised only without the ml extra
    pass


def model_class(kind: str) -> type[PriceModel]:
    """The class of ``kind``; :class:`ConfigError` naming the allowed kinds when it is unknown."""
    if kind in KINDS:
        return KINDS[kind]
    if kind in DEEP_KINDS:
        raise MissingDependencyError("torch", "ml")
    raise ConfigError(f"unknown model kind {kind!r}; allowed: {', '.join(ALL_KINDS)}")


def create(kind: str, **params: Any) -> PriceModel:
    """A new, unfitted model of ``kind`` with hyper-parameters ``params`` (unknown kind or parameter →
    :class:`ConfigError`)."""
    return model_class(kind)(**params)


def load_model(path: Path) -> PriceModel:
    """The model saved in directory ``path``, of the kind its ``meta.json`` names (:class:`ConfigError` when the
    file is missing or unreadable or the kind unknown)."""
    meta_path = Path(path) / META_FILE
    try:
        kind = json.loads(meta_path.read_text())["kind"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"no readable saved model in {path} ({META_FILE}: {exc})") from exc
    return model_class(str(kind)).load(Path(path))


def predict_samples(model: PriceModel, samples: Samples) -> npt.NDArray[np.float64]:
    """``(n, classes)`` probabilities for ``samples``: ``model.predict_proba_samples(samples)`` when the model
    has it (models that need more than ``X``, like ``previous_move``), else ``model.predict_proba(samples.X)``."""
    by_samples = getattr(model, "predict_proba_samples", None)
    if callable(by_samples):
        return np.asarray(by_samples(samples), dtype=np.float64)
    return model.predict_proba(samples.X)
