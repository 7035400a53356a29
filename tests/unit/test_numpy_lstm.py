"""The numpy twin of an LSTM gives the torch model's probabilities, round-trips through save/load, and is
inference only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from marketpulse.errors import ConfigError
from marketpulse.predict.base import Samples
from marketpulse.predict.models import create, load_model
from marketpulse.predict.numpy_lstm import NumpyLSTMModel, export_lstm

torch = pytest.importorskip("torch")


def _samples(n: int, seed: int) -> Samples:
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n, 6, 4)).astype(np.float32) * np.array([1, 10, 0.1, 3], dtype=np.float32)
    y = (X[:, -1, 0] + 0.1 * X[:, -2, 1] > 0).astype(np.int64)
    ts = np.arange(n, dtype=np.int64)
    return Samples(X, y, ts, np.array(["S"] * n), np.full(n, -1), ("a", "b", "c", "d"), "s" * 16, 2, {})


def test_the_numpy_twin_matches_the_torch_lstm(tmp_path: Path) -> None:
    train, test = _samples(400, 0), _samples(200, 1)
    lstm = create("lstm", epochs=3, hidden=8).fit(train, None, seed=0)
    twin = export_lstm(lstm)
    expected = lstm.predict_proba(test.X)
    np.testing.assert_allclose(twin.predict_proba(test.X), expected, atol=1e-5)
    assert len({round(float(p), 3) for p in expected[:, 1]}) > 20, "the probabilities vary: the check means something"
    twin.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert isinstance(again, NumpyLSTMModel) and again.meta["exported_from"] == "lstm"
    np.testing.assert_allclose(again.predict_proba(test.X), expected, atol=1e-5)
    with pytest.raises(ValueError, match="X must be"):
        again.predict_proba(test.X[:, :3])


def test_inference_only_and_one_layer_only() -> None:
    with pytest.raises(ConfigError, match="inference only"):
        NumpyLSTMModel().fit(_samples(10, 0))
    two = create("lstm", epochs=1, hidden=4, layers=2).fit(_samples(100, 0), None, seed=0)
    with pytest.raises(ConfigError, match="one-layer 'lstm'"):
        export_lstm(two)
    with pytest.raises(ConfigError, match="fitted"):
        export_lstm(create("lstm"))
