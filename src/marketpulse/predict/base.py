"""The contracts of the prediction layer: :class:`Samples` (what every dataset produces) and :class:`PriceModel`
(what every model, deep or baseline, implements).

**Samples.** ``X`` is ``(n, window, features)`` float32: for sample ``i`` the ``window`` most recent time steps
(oldest first) known at its decision time ``ts[i]``; ``y`` the label of the move *after* ``ts[i]`` over the
declared horizon (0 = down, 1 = up; 2 = flat when a dataset keeps a flat class); ``prev`` the label of the move
that ended at ``ts[i]`` (the previous-move baseline's input; -1 unknown). A sample never contains data later than
``ts[i]`` (tested by perturbing the future). Samples are ordered by ``ts`` (then symbol).

**PriceModel.** ``fit(train, dev, seed)`` trains (``dev`` only for early stopping / model selection, never for the
reported test figures); ``predict_proba(X)`` returns ``(n, classes)`` probabilities (rows sum to 1);
``save(dir)`` / ``load(dir)`` round-trip the model exactly (same probabilities) together with :attr:`meta`: the
feature-schema hash and feature names the model was trained on, its hyper-parameters and seed. ``load`` refuses a
directory of another model kind; callers compare ``meta["schema"]`` with their features' hash before predicting.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from marketpulse.errors import ConfigError

META_FILE = "meta.json"


@dataclass(frozen=True)
class Samples:
    """Model inputs and labels (see the module docstring)."""

    X: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]
    ts: npt.NDArray[np.int64]
    symbol: npt.NDArray[np.str_]
    prev: npt.NDArray[np.int64]
    feature_names: tuple[str, ...]
    schema: str
    classes: int = 2
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.y)
        if self.X.ndim != 3 or self.X.shape[0] != n or self.X.shape[2] != len(self.feature_names):
            raise ValueError(f"X must be (n={n}, window, {len(self.feature_names)} features); got {self.X.shape}")
        for name in ("ts", "symbol", "prev"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name} has {len(getattr(self, name))} rows, expected {n}")

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: npt.NDArray[np.int64] | npt.NDArray[np.bool_]) -> Samples:
        """The samples at ``index`` (an index array or a boolean mask), metadata kept."""
        return Samples(
            self.X[index],
            self.y[index],
            self.ts[index],
            self.symbol[index],
            self.prev[index],
            self.feature_names,
            self.schema,
            self.classes,
            dict(self.info),
        )

    def balance(self) -> dict[str, float]:
        """Share of each class (``down``, ``up``, ``flat``) — reported beside every figure."""
        names = ("down", "up", "flat")[: self.classes]
        counts = np.bincount(self.y, minlength=self.classes)
        total = max(1, int(counts.sum()))
        return {names[i]: round(float(counts[i]) / total, 4) for i in range(self.classes)}


class PriceModel(ABC):
    """Base of every price model (see the module docstring for the contract)."""

    kind: ClassVar[str]
    """Registry name of the model kind: ``lstm``, ``logreg``, …"""

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)
        self.meta: dict[str, Any] = {"kind": self.kind, "params": self.params}

    @abstractmethod
    def fit(self, train: Samples, dev: Samples | None = None, seed: int = 0) -> Self:
        """Train on ``train`` (``dev`` for early stopping only); sets ``meta`` (schema, features, seed, classes)."""

    @abstractmethod
    def predict_proba(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """``(n, classes)`` probabilities for inputs shaped like :attr:`Samples.X`."""

    @abstractmethod
    def _save(self, path: Path) -> None: ...

    @abstractmethod
    def _load(self, path: Path) -> None: ...

    def _fitted_on(self, train: Samples, seed: int) -> None:
        self.meta.update(
            schema=train.schema,
            features=list(train.feature_names),
            window=int(train.X.shape[1]),
            classes=train.classes,
            seed=seed,
        )

    def save(self, path: Path) -> None:
        """Write the model and :attr:`meta` into directory ``path`` (created)."""
        path.mkdir(parents=True, exist_ok=True)
        self._save(path)
        (path / META_FILE).write_text(json.dumps(self.meta, indent=2, sort_keys=True, default=str))

    @classmethod
    def load(cls, path: Path) -> Self:
        """The model saved in ``path``; :class:`ConfigError` if it is missing or of another kind."""
        meta_path = path / META_FILE
        if not meta_path.is_file():
            raise ConfigError(f"no saved model in {path} (missing {META_FILE})")
        meta = json.loads(meta_path.read_text())
        if meta.get("kind") != cls.kind:
            raise ConfigError(f"{path} holds a {meta.get('kind')!r} model, not {cls.kind!r}")
        model = cls(**meta.get("params", {}))
        model.meta = meta
        model._load(path)
        return model
