"""Honest evaluation: every figure is on data after the training data, with baselines beside it, over seeds.

* :func:`seed_report` — the per-seed figures of a model on samples, their mean ± std, and the seed ensemble's;
* :func:`baseline_reports` — majority (the *training* majority), previous move, logistic regression and LightGBM,
  fitted on the same training split (never on the evaluated one);
* :func:`walk_forward_report` — expanding-window folds with purge and embargo
  (:func:`marketpulse.predict.dataset.walk_forward`): a fresh model per fold and seed, figures pooled over folds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from marketpulse.predict.base import PriceModel, Samples
from marketpulse.predict.metrics import classification_report, mean_std

BASELINES = ("majority", "previous_move", "logreg", "lgbm")


def _rounded(report: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in report.items():
        if isinstance(v, dict):
            out[k] = _rounded(v)
        elif isinstance(v, float):
            out[k] = None if math.isnan(v) else round(v, 4)
        else:
            out[k] = v
    return out


def seed_report(probas: Sequence[npt.NDArray[np.float64]], samples: Samples) -> dict[str, Any]:
    """Figures of each seed's probabilities on ``samples``: mean ± std over seeds, plus ``per_seed`` and
    ``ensemble`` (the mean probability — what the registered model serves)."""
    reports = [classification_report(samples.y, p) for p in probas]
    out = mean_std(reports)
    out["per_seed"] = [_rounded(r) for r in reports]
    out["ensemble"] = _rounded(classification_report(samples.y, np.mean(probas, axis=0)))
    out["balance"] = samples.balance()
    return _rounded(out)


def baseline_reports(
    train: Samples, test: Samples, dev: Samples | None = None, kinds: Sequence[str] = BASELINES, seed: int = 0
) -> dict[str, Any]:
    """Each baseline fitted on ``train`` (``dev`` for LightGBM's early stopping) and scored on ``test``."""
    from marketpulse.predict.models import create, predict_samples

    out: dict[str, Any] = {}
    for kind in kinds:
        model = create(kind).fit(train, dev, seed=seed)
        out[kind] = _rounded(classification_report(test.y, predict_samples(model, test)))
    return out


def fit_seeds(kind: str, train: Samples, dev: Samples | None, seeds: int, params: dict[str, Any]) -> list[PriceModel]:
    """One fitted model per seed ``0..seeds-1``."""
    from marketpulse.predict.models import create

    return [create(kind, **params).fit(train, dev, seed=s) for s in range(seeds)]


def walk_forward_report(
    samples: Samples,
    kind: str,
    folds: int = 4,
    seeds: int = 3,
    params: dict[str, Any] | None = None,
    embargo_ns: int = 0,
) -> dict[str, Any]:
    """Expanding-window walk-forward: per fold, a model per seed trained on the purged past (its last 10 % in time
    as the early-stopping set) and scored on the fold; figures pooled over folds per seed, then mean ± std over
    seeds, with the baselines pooled the same way."""
    from marketpulse.predict.dataset import walk_forward
    from marketpulse.predict.models import predict_samples

    horizon_ns = int(samples.info.get("horizon_ns", 0))
    splits = walk_forward(samples.ts, folds, horizon_ns, embargo_ns)
    per_seed: list[list[npt.NDArray[np.float64]]] = [[] for _ in range(seeds)]
    base: dict[str, list[npt.NDArray[np.float64]]] = {k: [] for k in BASELINES}
    tested: list[npt.NDArray[np.int64]] = []
    for train_idx, test_idx in splits:
        train, test = samples.take(train_idx), samples.take(test_idx)
        cut = int(len(train) * 0.9)
        fit, dev = train.take(np.arange(cut)), train.take(np.arange(cut, len(train)))
        for s, model in enumerate(fit_seeds(kind, fit, dev, seeds, params or {})):
            per_seed[s].append(predict_samples(model, test))
        from marketpulse.predict.models import create

        for k in BASELINES:
            base[k].append(predict_samples(create(k).fit(fit, dev, seed=0), test))
        tested.append(test_idx)
    idx = np.concatenate(tested)
    pooled = samples.take(idx)
    report = seed_report([np.concatenate(p) for p in per_seed], pooled)
    report["folds"] = len(splits)
    report["baselines"] = {k: _rounded(classification_report(pooled.y, np.concatenate(v))) for k, v in base.items()}
    return report
