"""Deep price models: one training loop (:class:`TorchPriceModel`) for the nets of :mod:`.nets`.

**Training.** Per-feature standardisation fitted on the training part only (stored with the weights);
class-weighted (balanced) cross entropy, so predicting the majority class does not win; AdamW on mini-batches
shuffled by a seeded ``numpy`` Generator; gradient clipping; early stopping on the loss over ``dev`` — or, when
``dev`` is None, over the **last** ``holdout`` share of ``train`` in time order (never a random split) — with the
weights of the best epoch restored. The same seed gives identical probabilities: the global torch RNG is forked
and seeded for the fit (and restored after), deterministic algorithms are switched on for the fit, and
``torch.set_num_threads(params["threads"])`` is set on purpose (a process-wide setting) in ``fit`` and
``predict_proba``. ``threads`` defaults to 1: these nets are too small for intra-op parallelism to pay (measured:
2 threads is no faster on 2 cores, and several times slower when another process competes for a core).

**Saving.** ``model.pt`` holds ``{"state_dict", "mean", "std"}`` (tensors only; loaded with
``weights_only=True``); the architecture is rebuilt from :attr:`meta` (params, features, classes, window).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from marketpulse.errors import ConfigError
from marketpulse.predict.base import PriceModel, Samples
from marketpulse.predict.nets import ALSTMNet, GRUNet, LSTMNet, TCNNet, TransformerNet

WEIGHTS_FILE = "model.pt"

TRAIN_DEFAULTS: dict[str, Any] = {
    "epochs": 30,
    "batch_size": 256,
    "lr": 2e-3,
    "weight_decay": 1e-4,
    "patience": 5,
    "holdout": 0.1,
    "clip": 1.0,
    "threads": 1,
}
"""Training hyper-parameters shared by every deep kind (each kind adds its net's own)."""


def tail_split(train: Samples, share: float) -> tuple[Samples, Samples | None]:
    """``(fit, holdout)``: the holdout is the last ``share`` of ``train`` in its (time) order, ``None`` when
    either part would be empty."""
    n_hold = round(len(train) * share)
    if n_hold < 1 or n_hold >= len(train):
        return train, None
    cut = len(train) - n_hold
    return train.take(np.arange(cut)), train.take(np.arange(cut, len(train)))


def class_weights(y: npt.NDArray[np.int64], classes: int) -> npt.NDArray[np.float64]:
    """Balanced weights ``n / (classes · count_k)`` (a class absent from ``y`` gets weight 0)."""
    counts = np.bincount(y, minlength=classes).astype(np.float64)
    return np.where(counts > 0, len(y) / (classes * np.maximum(counts, 1.0)), 0.0)


@contextmanager
def _deterministic() -> Iterator[None]:
    """Deterministic torch algorithms for the block, the previous setting restored after it."""
    before, warn_only = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)


class TorchPriceModel(PriceModel):
    """A :class:`PriceModel` backed by a torch net; subclasses set :attr:`kind`, :attr:`NET_DEFAULTS` and
    :meth:`_build`. ``params`` are the union of :data:`TRAIN_DEFAULTS` and the net's defaults, overridden by the
    keyword arguments; an unknown keyword raises :class:`ConfigError`."""

    NET_DEFAULTS: ClassVar[dict[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        defaults = {**TRAIN_DEFAULTS, **self.NET_DEFAULTS}
        unknown = sorted(set(params) - set(defaults))
        if unknown:
            raise ConfigError(f"unknown {self.kind} parameter(s) {unknown}; allowed: {sorted(defaults)}")
        super().__init__(**{**defaults, **params})
        self.net: nn.Module | None = None
        self.mean: Tensor | None = None
        self.std: Tensor | None = None

    def _build(self, features: int, classes: int, window: int) -> nn.Module:
        raise NotImplementedError

    def _net_params(self) -> dict[str, Any]:
        return {k: self.params[k] for k in self.NET_DEFAULTS}

    def _scale(self, X: npt.NDArray[np.float32]) -> Tensor:
        assert self.mean is not None and self.std is not None
        return (torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)) - self.mean) / self.std

    def fit(self, train: Samples, dev: Samples | None = None, seed: int = 0) -> Self:
        """Train (see the module docstring); records ``epochs``, ``best_epoch``, ``best_dev_loss``,
        ``train_seconds``, ``fit_samples`` and ``holdout_samples`` in :attr:`meta`."""
        if not np.isfinite(train.X).all():
            raise ValueError("train.X holds NaN or infinite values")
        p = self.params
        start = time.perf_counter()
        part, hold = (train, dev) if dev is not None else tail_split(train, float(p["holdout"]))
        flat = part.X.reshape(-1, part.X.shape[2]).astype(np.float64)
        std = flat.std(axis=0)
        self.mean = torch.from_numpy(flat.mean(axis=0).astype(np.float32))
        self.std = torch.from_numpy(np.where(std > 1e-12, std, 1.0).astype(np.float32))
        torch.set_num_threads(int(p["threads"]))
        with torch.random.fork_rng(devices=[]), _deterministic():
            torch.manual_seed(seed)
            net = self._build(train.X.shape[2], train.classes, train.X.shape[1])
            weight = torch.from_numpy(class_weights(part.y, train.classes).astype(np.float32))
            loss_fn = nn.CrossEntropyLoss(weight=weight)
            opt = torch.optim.AdamW(net.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
            X, y = self._scale(part.X), torch.from_numpy(part.y)
            rng = np.random.default_rng(seed)
            best, best_epoch, best_state, bad, epoch = math.inf, 0, copy.deepcopy(net.state_dict()), 0, 0
            for epoch in range(1, int(p["epochs"]) + 1):
                net.train()
                order = torch.from_numpy(rng.permutation(len(part)))
                for batch in torch.split(order, int(p["batch_size"])):
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn(net(X[batch]), y[batch])
                    loss.backward()
                    nn.utils.clip_grad_norm_(net.parameters(), float(p["clip"]))
                    opt.step()
                if hold is None:
                    continue
                net.eval()
                with torch.inference_mode():
                    dev_loss = float(loss_fn(net(self._scale(hold.X)), torch.from_numpy(hold.y)))
                if dev_loss < best - 1e-6:
                    best, best_epoch, best_state, bad = dev_loss, epoch, copy.deepcopy(net.state_dict()), 0
                else:
                    bad += 1
                    if bad >= int(p["patience"]):
                        break
            if hold is not None:
                net.load_state_dict(best_state)
        net.eval()
        self.net = net
        self._fitted_on(train, seed)
        self.meta.update(
            epochs=epoch,
            best_epoch=best_epoch if hold is not None else epoch,
            best_dev_loss=best if hold is not None else None,
            train_seconds=round(time.perf_counter() - start, 3),
            fit_samples=len(part),
            holdout_samples=0 if hold is None else len(hold),
        )
        return self

    def predict_proba(self, X: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """``(n, classes)`` float64 softmax probabilities; eval mode, ``torch.inference_mode``, chunks of 8192."""
        if self.net is None:
            raise RuntimeError(f"{self.kind} model is not fitted")
        if X.ndim != 3 or X.shape[1:] != (self.meta["window"], len(self.meta["features"])):
            raise ValueError(f"X must be (n, {self.meta['window']}, {len(self.meta['features'])}); got {X.shape}")
        torch.set_num_threads(int(self.params["threads"]))
        self.net.eval()
        with torch.inference_mode():
            logits = [self.net(self._scale(X[i : i + 8192])) for i in range(0, len(X), 8192)]
            out = torch.cat(logits) if logits else torch.zeros(0, self.meta["classes"])
            return torch.softmax(out.double(), dim=1).numpy()

    def _save(self, path: Path) -> None:
        if self.net is None:
            raise RuntimeError(f"{self.kind} model is not fitted")
        torch.save({"state_dict": self.net.state_dict(), "mean": self.mean, "std": self.std}, path / WEIGHTS_FILE)

    def _load(self, path: Path) -> None:
        blob = torch.load(path / WEIGHTS_FILE, weights_only=True)
        net = self._build(len(self.meta["features"]), int(self.meta["classes"]), int(self.meta["window"]))
        net.load_state_dict(blob["state_dict"])
        net.eval()
        self.net, self.mean, self.std = net, blob["mean"], blob["std"]


class LSTMModel(TorchPriceModel):
    """``lstm``: :class:`~.nets.LSTMNet`."""

    kind = "lstm"
    NET_DEFAULTS: ClassVar[dict[str, Any]] = {"hidden": 32, "layers": 1, "dropout": 0.2}

    def _build(self, features: int, classes: int, window: int) -> nn.Module:
        return LSTMNet(features, classes, **self._net_params())


class GRUModel(TorchPriceModel):
    """``gru``: :class:`~.nets.GRUNet`."""

    kind = "gru"
    NET_DEFAULTS: ClassVar[dict[str, Any]] = {"hidden": 32, "layers": 1, "dropout": 0.2}

    def _build(self, features: int, classes: int, window: int) -> nn.Module:
        return GRUNet(features, classes, **self._net_params())


class ALSTMModel(TorchPriceModel):
    """``alstm``: :class:`~.nets.ALSTMNet` (attentive LSTM)."""

    kind = "alstm"
    NET_DEFAULTS: ClassVar[dict[str, Any]] = {"hidden": 32, "mapping": 32, "dropout": 0.2}

    def _build(self, features: int, classes: int, window: int) -> nn.Module:
        return ALSTMNet(features, classes, **self._net_params())


class TransformerModel(TorchPriceModel):
    """``transformer``: :class:`~.nets.TransformerNet`."""

    kind = "transformer"
    NET_DEFAULTS: ClassVar[dict[str, Any]] = {
        "d_model": 32,
        "heads": 4,
        "layers": 1,
        "ff": 64,
        "dropout": 0.1,
        "pos": "sinusoidal",
        "pool": "last",
    }

    def _build(self, features: int, classes: int, window: int) -> nn.Module:
        return TransformerNet(features, classes, window, **self._net_params())


class TCNModel(TorchPriceModel):
    """``tcn``: :class:`~.nets.TCNNet` (dilated causal convolutions)."""

    kind = "tcn"
    NET_DEFAULTS: ClassVar[dict[str, Any]] = {"channels": 32, "levels": 2, "kernel": 3, "dropout": 0.2}

    def _build(self, features: int, classes: int, window: int) -> nn.Module:
        return TCNNet(features, classes, **self._net_params())


DEEP_MODELS: tuple[type[TorchPriceModel], ...] = (LSTMModel, GRUModel, ALSTMModel, TransformerModel, TCNModel)
