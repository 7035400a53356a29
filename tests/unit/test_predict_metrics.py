"""The reported figures equal scikit-learn's on the same inputs; the walk-forward report never tests on training
data and carries its baselines."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import brier_score_loss, f1_score, matthews_corrcoef, roc_auc_score

from marketpulse.predict.base import Samples
from marketpulse.predict.evaluate import walk_forward_report
from marketpulse.predict.metrics import classification_report, mean_std


@settings(max_examples=60, deadline=None)
@given(n=st.integers(4, 300), seed=st.integers(0, 10_000), classes=st.sampled_from([2, 3]), ties=st.booleans())
def test_figures_equal_scikit_learn(n: int, seed: int, classes: int, ties: bool) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    raw = rng.random((n, classes))
    if ties:
        raw = np.round(raw, 1) + 1e-3
    proba = raw / raw.sum(axis=1, keepdims=True)
    r = classification_report(y, proba)
    pred = proba.argmax(axis=1)
    assert r["accuracy"] == pytest.approx(np.mean(pred == y))
    assert r["mcc"] == pytest.approx(matthews_corrcoef(y, pred), abs=1e-12)
    if classes == 2:
        assert r["f1"] == pytest.approx(f1_score(y, pred, zero_division=0.0))
        assert r["brier"] == pytest.approx(brier_score_loss(y, proba[:, 1]))
        if 0 < y.sum() < n:
            assert r["auc"] == pytest.approx(roc_auc_score(y, proba[:, 1]))
        else:
            assert np.isnan(r["auc"])
    else:
        assert r["f1"] == pytest.approx(f1_score(y, pred, average="macro", labels=range(3), zero_division=0.0))
        assert r["brier"] == pytest.approx(np.mean(np.sum((proba - np.eye(3)[y]) ** 2, axis=1)))
    assert r["n"] == n


def test_mean_std_over_seeds() -> None:
    reports = [
        {"accuracy": a, "mcc": m, "f1": 0.5, "brier": 0.25, "auc": 0.5, "n": 10} for a, m in ((0.5, 0.0), (0.7, 0.4))
    ]
    out = mean_std(reports)
    assert out["accuracy"] == pytest.approx(0.6) and out["std"]["mcc"] == pytest.approx(0.2) and out["seeds"] == 2


def test_walk_forward_report_pools_out_of_sample_folds_with_baselines() -> None:
    rng = np.random.default_rng(0)
    n = 1_200
    X = rng.normal(0, 1, (n, 4, 3)).astype(np.float32)
    y = (X[:, -1, 0] + 0.5 * rng.normal(0, 1, n) > 0).astype(np.int64)
    ts = np.arange(n, dtype=np.int64) * 60_000_000_000
    info = {"horizon_ns": 5 * 60_000_000_000}
    s = Samples(X, y, ts, np.array(["S"] * n), np.roll(y, 1), ("a", "b", "c"), "x", 2, info)
    report = walk_forward_report(s, "logreg", folds=3, seeds=2)
    assert report["folds"] == 3 and report["seeds"] == 2
    assert report["n"] < n, "the first block is only ever trained on"
    assert report["accuracy"] > 0.7 and report["mcc"] > report["baselines"]["majority"]["mcc"]
    assert set(report["baselines"]) == {"majority", "previous_move", "logreg", "lgbm"}
