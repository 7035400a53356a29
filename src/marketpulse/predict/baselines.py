"""Baselines every deep model must beat: ``majority``, ``previous_move``, ``logreg`` and ``lgbm``.

``logreg`` and ``lgbm`` see the window flattened to ``window × features`` columns and are class-balanced.
scikit-learn and LightGBM are imported when first needed (``MissingDependencyError`` without the ``ml`` extra),
so ``majority`` and ``previous_move`` work without them.

**Saving.** ``majority`` / ``previous_move`` keep everything in :attr:`meta`; ``logreg`` pickles its fitted
scikit-learn pipeline (``logreg.pkl``: unpickling runs code — load only model directories you wrote yourself);
``lgbm`` writes its booster with ``save_model`` (``lgbm.txt``, text).
"""

from __future__ import annotations

import importlib
import inspect
import pickle
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from marketpulse.errors import ConfigError, MissingDependencyError
from marketpulse.predict.base import PriceModel, Samples


def _require(module: str, package: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(package, "ml") from exc


def _flat(X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """The window flattened to ``window × features`` float64 columns (float64 so that probabilities sum to 1)."""
    return np.ascontiguousarray(X.reshape(len(X), -1), dtype=np.float64)


def _spread(proba: npt.NDArray[np.float64], seen: list[int], classes: int) -> npt.NDArray[np.float64]:
    """Columns of the classes seen in training placed at their label index in a ``(n, classes)`` array."""
    out = np.zeros((len(proba), classes), dtype=np.float64)
    out[:, seen] = proba
    return out


class _Baseline(PriceModel):
    """Common parameter handling: ``params`` are :attr:`DEFAULTS` overridden by keywords (unknown → ConfigError)."""

    DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.DEFAULTS))
        if unknown:
            raise ConfigError(f"unknown {self.kind} parameter(s) {unknown}; allowed: {sorted(self.DEFAULTS)}")
        super().__init__(**{**self.DEFAULTS, **params})

    def _check(self, X: npt.NDArray[np.float32]) -> None:
        if "window" not in self.meta:
            raise RuntimeError(f"{self.kind} model is not fitted")
        if X.ndim != 3 or X.shape[1:] != (self.meta["window"], len(self.meta["features"])):
            raise ValueError(f"X must be (n, {self.meta['window']}, {len(self.meta['features'])}); got {X.shape}")


class MajorityModel(_Baseline):
    """``majority``: every row gets the training class frequencies (``meta["priors"]``), so the argmax is the
    training majority class (the lowest label on a tie)."""

    kind = "majority"

    def fit(self, train: Samples, dev: Samples | None = None, seed: int = 0) -> Self:
        counts = np.bincount(train.y, minlength=train.classes).astype(np.float64)
        self._fitted_on(train, seed)
        self.meta["priors"] = (counts / max(1.0, counts.sum())).tolist()
        return self

    def predict_proba(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        self._check(X)
        return np.tile(np.asarray(self.meta["priors"], dtype=np.float64), (len(X), 1))

    def _save(self, path: Path) -> None:
        pass

    def _load(self, path: Path) -> None:
        pass


class PreviousMoveModel(MajorityModel):
    """``previous_move``: probability 1 on the previous move's label (``Samples.prev``); the training majority
    class when it is unknown (-1) or not a class of the model. Needs ``prev``, so predict with
    :meth:`predict_proba_samples` (or ``models.predict_samples``); :meth:`predict_proba` raises ``TypeError``."""

    kind = "previous_move"

    def predict_proba(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        raise TypeError("previous_move needs Samples.prev: use predict_proba_samples(samples) / predict_samples")

    def predict_proba_samples(self, samples: Samples) -> npt.NDArray[np.float64]:
        """One-hot ``(n, classes)`` rows of the predicted label."""
        self._check(samples.X)
        classes = int(self.meta["classes"])
        majority = int(np.argmax(self.meta["priors"]))
        label = np.where((samples.prev >= 0) & (samples.prev < classes), samples.prev, majority)
        return np.eye(classes, dtype=np.float64)[label]


class LogRegModel(_Baseline):
    """``logreg``: ``StandardScaler`` → ``LogisticRegression(class_weight="balanced", C, max_iter)`` on the
    flattened window."""

    kind = "logreg"
    DEFAULTS: ClassVar[dict[str, Any]] = {"C": 1.0, "max_iter": 1000}
    FILE = "logreg.pkl"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.pipe: Any = None

    def fit(self, train: Samples, dev: Samples | None = None, seed: int = 0) -> Self:
        if not np.isfinite(train.X).all():
            raise ValueError("train.X holds NaN or infinite values")
        pipeline = _require("sklearn.pipeline", "scikit-learn")
        preprocessing = _require("sklearn.preprocessing", "scikit-learn")
        linear = _require("sklearn.linear_model", "scikit-learn")
        clf = linear.LogisticRegression(
            C=float(self.params["C"]),
            max_iter=int(self.params["max_iter"]),
            class_weight="balanced",
            random_state=seed,
        )
        self.pipe = pipeline.make_pipeline(preprocessing.StandardScaler(), clf).fit(_flat(train.X), train.y)
        self._fitted_on(train, seed)
        self.meta["seen"] = [int(c) for c in clf.classes_]
        return self

    def predict_proba(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        self._check(X)
        proba = np.asarray(self.pipe.predict_proba(_flat(X)), dtype=np.float64)
        return _spread(proba, self.meta["seen"], int(self.meta["classes"]))

    def _save(self, path: Path) -> None:
        (path / self.FILE).write_bytes(pickle.dumps(self.pipe, protocol=pickle.HIGHEST_PROTOCOL))

    def _load(self, path: Path) -> None:
        _require("sklearn", "scikit-learn")
        self.pipe = pickle.loads((path / self.FILE).read_bytes())  # trusted local files only


class LGBMModel(_Baseline):
    """``lgbm``: a small class-balanced LightGBM classifier on the flattened window, deterministic for a seed
    (``deterministic=True``, row-wise histograms, ``n_jobs`` threads); early stopping on ``dev`` when given
    (``stopping_rounds``), the best iteration kept (``meta["best_iteration"]``)."""

    kind = "lgbm"
    DEFAULTS: ClassVar[dict[str, Any]] = {
        "n_estimators": 200,
        "num_leaves": 15,
        "learning_rate": 0.05,
        "min_child_samples": 20,
        "colsample_bytree": 1.0,
        "n_jobs": 2,
        "stopping_rounds": 20,
    }
    FILE = "lgbm.txt"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.booster: Any = None

    def fit(self, train: Samples, dev: Samples | None = None, seed: int = 0) -> Self:
        lgb = _require("lightgbm", "lightgbm")
        p = {k: v for k, v in self.params.items() if k != "stopping_rounds"}
        clf = lgb.LGBMClassifier(
            **p,
            class_weight="balanced",
            deterministic=True,
            force_row_wise=True,
            random_state=seed,
            verbose=-1,
        )
        kwargs: dict[str, Any] = {}
        if dev is not None:
            # LightGBM 4.7 renamed eval_set to eval_X/eval_y (the old name warns); older versions know only eval_set
            new_api = "eval_X" in inspect.signature(lgb.LGBMClassifier.fit).parameters
            evals = (
                {"eval_X": (_flat(dev.X),), "eval_y": (dev.y,)} if new_api else {"eval_set": [(_flat(dev.X), dev.y)]}
            )
            kwargs = {
                **evals,
                "eval_class_weight": ["balanced"],
                "callbacks": [lgb.early_stopping(int(self.params["stopping_rounds"]), verbose=False)],
            }
        clf.fit(_flat(train.X), train.y, **kwargs)
        self.booster = clf.booster_
        self._fitted_on(train, seed)
        best = int(clf.best_iteration_ or 0) if dev is not None else 0
        self.meta.update(seen=[int(c) for c in clf.classes_], best_iteration=best or None)
        return self

    def predict_proba(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        self._check(X)
        raw = np.asarray(self.booster.predict(_flat(X), num_iteration=self.meta["best_iteration"]), np.float64)
        proba = np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
        return _spread(proba, self.meta["seen"], int(self.meta["classes"]))

    def _save(self, path: Path) -> None:
        self.booster.save_model(str(path / self.FILE), num_iteration=self.meta["best_iteration"])

    def _load(self, path: Path) -> None:
        lgb = _require("lightgbm", "lightgbm")
        self.booster = lgb.Booster(model_file=str(path / self.FILE))


BASELINES: tuple[type[PriceModel], ...] = (MajorityModel, PreviousMoveModel, LogRegModel, LGBMModel)
