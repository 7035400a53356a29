"""``lstm-numpy``: a trained one-layer ``lstm`` run with numpy alone, for serving where torch is not installed.

:func:`export_lstm` copies a fitted :class:`~marketpulse.predict.torch_model.LSTMModel`'s weights and input scaling
into a :class:`NumpyLSTMModel`; its :meth:`~NumpyLSTMModel.predict_proba` is PyTorch's LSTM recurrence in float32,
as torch runs it (gates ``i, f, g, o`` in PyTorch's order: ``c ← σ(f) c + σ(i) tanh(g)``, ``h ← σ(o) tanh(c)``),
the last hidden state through the linear head and a softmax — the torch model's probabilities to about 1e-7
(tested). It is inference only: :meth:`~NumpyLSTMModel.fit` raises. Saved as ``weights.npz`` beside ``meta.json``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from marketpulse.errors import ConfigError
from marketpulse.predict.base import PriceModel, Samples

_ARRAYS = ("w_ih", "w_hh", "b", "head_w", "head_b", "mean", "std")


def _sigmoid(x: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.float32(0.5) * (np.float32(1.0) + np.tanh(np.float32(0.5) * x))  # exact identity, no overflow


class NumpyLSTMModel(PriceModel):
    """Inference-only twin of a one-layer ``lstm`` (see the module docstring)."""

    kind = "lstm-numpy"
    FILE = "weights.npz"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.arrays: dict[str, npt.NDArray[np.float32]] = {}

    def fit(self, train: Samples, dev: Samples | None = None, seed: int = 0) -> Self:
        raise ConfigError("lstm-numpy is inference only: train an 'lstm' and convert it with export_lstm")

    def predict_proba(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        if not self.arrays:
            raise RuntimeError("lstm-numpy model has no weights")
        if X.ndim != 3 or X.shape[1:] != (self.meta["window"], len(self.meta["features"])):
            raise ValueError(f"X must be (n, {self.meta['window']}, {len(self.meta['features'])}); got {X.shape}")
        a = self.arrays
        x = (np.asarray(X, dtype=np.float32) - a["mean"]) / a["std"]
        n, hidden = len(x), a["w_hh"].shape[1]
        h, c = np.zeros((n, hidden), np.float32), np.zeros((n, hidden), np.float32)
        inputs = x @ a["w_ih"].T + a["b"]  # (n, T, 4H): the input part of every step at once
        for t in range(x.shape[1]):
            gates = inputs[:, t] + h @ a["w_hh"].T
            i, f, g, o = np.split(gates, 4, axis=1)
            c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
            h = _sigmoid(o) * np.tanh(c)
        logits = (h @ a["head_w"].T + a["head_b"]).astype(np.float64)
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        return np.asarray(z / z.sum(axis=1, keepdims=True), dtype=np.float64)

    def _save(self, path: Path) -> None:
        with open(path / self.FILE, "wb") as f:
            np.savez(f, **self.arrays)  # type: ignore[arg-type]

    def _load(self, path: Path) -> None:
        with np.load(path / self.FILE) as saved:
            missing = [k for k in _ARRAYS if k not in saved.files]
            if missing:
                raise ConfigError(f"{path / self.FILE} lacks {missing}")
            self.arrays = {k: np.asarray(saved[k], dtype=np.float32) for k in _ARRAYS}


def export_lstm(model: PriceModel) -> NumpyLSTMModel:
    """The numpy twin of a fitted one-layer ``lstm`` model (its ``meta`` carried over, ``kind`` changed)."""
    if model.kind != "lstm" or int(model.params.get("layers", 1)) != 1:
        raise ConfigError(f"export_lstm needs a one-layer 'lstm' model, not {model.kind!r}")
    net, mean, std = getattr(model, "net", None), getattr(model, "mean", None), getattr(model, "std", None)
    if net is None or mean is None or std is None:
        raise ConfigError("export_lstm needs a fitted model")
    state = {k: v.detach().float().numpy() for k, v in net.state_dict().items()}
    twin = NumpyLSTMModel(**model.params)
    twin.meta = {**model.meta, "kind": NumpyLSTMModel.kind, "exported_from": model.kind}
    twin.arrays = {
        "w_ih": state["rnn.weight_ih_l0"],
        "w_hh": state["rnn.weight_hh_l0"],
        "b": state["rnn.bias_ih_l0"] + state["rnn.bias_hh_l0"],
        "head_w": state["head.weight"],
        "head_b": state["head.bias"],
        "mean": mean.float().numpy(),
        "std": std.float().numpy(),
    }
    return twin


__all__ = ["NumpyLSTMModel", "export_lstm"]
