"""Classification figures reported for every model and baseline: accuracy, MCC, F1, Brier score, ROC AUC.

Binary (0 = down, 1 = up): F1 of the up class, AUC of ``p(up)``, Brier ``mean((p(up) − y)²)``. With a flat class:
macro-F1, one-vs-rest macro AUC, multi-class Brier ``mean(Σ_k (p_k − 1[y=k])²)``. MCC is the multi-class
(Gorodkin) form, which equals the binary one for two classes; 0 when undefined (a constant prediction).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt


def mcc(y: npt.NDArray[np.int64], pred: npt.NDArray[np.int64], classes: int = 2) -> float:
    """Matthews correlation coefficient (0 when a row or column of the confusion matrix is all zero)."""
    c = np.zeros((classes, classes), dtype=np.float64)
    np.add.at(c, (y, pred), 1.0)
    t, p = c.sum(axis=1), c.sum(axis=0)
    n, correct = c.sum(), np.trace(c)
    den = math.sqrt(float(n * n - p @ p)) * math.sqrt(float(n * n - t @ t))
    return 0.0 if den == 0.0 else float((correct * n - t @ p) / den)


def _f1(y: npt.NDArray[np.int64], pred: npt.NDArray[np.int64], k: int) -> float:
    tp = float(np.sum((pred == k) & (y == k)))
    fp, fn = float(np.sum((pred == k) & (y != k))), float(np.sum((pred != k) & (y == k)))
    return 0.0 if tp == 0.0 else 2 * tp / (2 * tp + fp + fn)


def _auc(y: npt.NDArray[np.int64], score: npt.NDArray[np.float64]) -> float:
    """ROC AUC by the rank (Mann–Whitney) formula with ties averaged; NaN when one class is absent."""
    pos, n = int(np.sum(y == 1)), len(y)
    if pos == 0 or pos == n:
        return math.nan
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(n)
    sorted_scores = score[order]
    i = 0
    while i < n:
        j = i
        while j + 1 < n and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * (n - pos)))


def classification_report(y: npt.NDArray[np.int64], proba: npt.NDArray[np.float64]) -> dict[str, Any]:
    """``accuracy, mcc, f1, brier, auc, n`` of probabilities ``proba`` ``(n, classes)`` against labels ``y``."""
    y = np.asarray(y, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    classes = proba.shape[1]
    pred = np.argmax(proba, axis=1)
    onehot = np.eye(classes)[y]
    if classes == 2:
        f1 = _f1(y, pred, 1)
        auc = _auc(y, proba[:, 1])
        brier = float(np.mean((proba[:, 1] - y) ** 2))
    else:
        f1 = float(np.mean([_f1(y, pred, k) for k in range(classes)]))
        aucs = [_auc((y == k).astype(np.int64), proba[:, k]) for k in range(classes)]
        auc = float(np.nanmean(aucs)) if not all(math.isnan(a) for a in aucs) else math.nan
        brier = float(np.mean(np.sum((proba - onehot) ** 2, axis=1)))
    return {
        "accuracy": float(np.mean(pred == y)) if len(y) else math.nan,
        "mcc": mcc(y, pred, classes),
        "f1": f1,
        "brier": brier,
        "auc": auc,
        "n": len(y),
    }


def mean_std(
    reports: list[dict[str, Any]], keys: tuple[str, ...] = ("accuracy", "mcc", "f1", "brier", "auc")
) -> dict[str, Any]:
    """Mean of each figure over seeds, with ``std`` (population, ddof=0) of each and ``seeds``."""
    out: dict[str, Any] = {k: float(np.mean([r[k] for r in reports])) for k in keys}
    out["std"] = {k: float(np.std([r[k] for r in reports])) for k in keys}
    out["n"] = reports[0]["n"] if reports else 0
    out["seeds"] = len(reports)
    return out
