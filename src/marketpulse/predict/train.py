"""Training: dataset → time-ordered splits → one model per seed → figures beside baselines → the registry.

Datasets (``--dataset``):

* ``stocknet`` — the StockNet benchmark (daily, 5-day lag window, prices + tweets), its own temporal split
  (train 2014-01-01..2015-08-01, dev ..2015-10-01, test ..2016-01-01);
* ``spy`` — next-N-minute direction on a 1-minute bar CSV (the SPY file's layout), features of
  :mod:`marketpulse.features.market` (the engine's feature schema: models trained here serve live);
* ``lobster`` — the same on the LOBSTER sample's 1-minute bars (a folder).

Intraday splits are time-ordered 60 / 20 / 20 % (train / dev / test) with the samples whose label period crosses
a boundary purged from the earlier split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from marketpulse.errors import ConfigError
from marketpulse.predict.base import Samples
from marketpulse.predict.evaluate import baseline_reports, fit_seeds, seed_report
from marketpulse.predict.registry import Registry

DATASETS = ("stocknet", "spy", "lobster")
DEEP = ("lstm", "gru", "alstm", "transformer", "tcn")
KINDS = (*DEEP, "logreg", "lgbm")


@dataclass(frozen=True)
class DataOptions:
    """Dataset options: ``text`` (StockNet: tweets beside prices), intraday ``window``, ``horizon`` (bars)."""

    text: bool = True
    window: int = 30
    horizon: int = 5


def _check(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ConfigError(f"dataset {dataset!r}: allowed values are {', '.join(DATASETS)}")


def load_samples(dataset: str, path: Path, options: DataOptions = DataOptions()) -> Samples:
    """Every labelled sample of ``dataset`` at ``path``, time-ordered (one-line :class:`ConfigError` if bad)."""
    _check(dataset)
    if dataset == "stocknet":
        from marketpulse.predict.stocknet import load_stocknet, stocknet_samples

        return stocknet_samples(load_stocknet(path), "all", text=options.text)
    from marketpulse.predict.intraday import lobster_samples, spy_samples

    make = spy_samples if dataset == "spy" else lobster_samples
    return make(path, window=options.window, horizon=options.horizon)


def load_splits(dataset: str, path: Path, options: DataOptions = DataOptions()) -> dict[str, Samples]:
    """``{"train", "dev", "test"}`` samples of ``dataset`` at ``path``: StockNet's own dates, else
    :func:`time_splits`."""
    _check(dataset)
    if dataset == "stocknet":
        from marketpulse.predict.stocknet import load_stocknet, stocknet_samples

        data = load_stocknet(path)
        return {s: stocknet_samples(data, s, text=options.text) for s in ("train", "dev", "test")}
    return time_splits(load_samples(dataset, path, options))


def time_splits(samples: Samples, shares: tuple[float, float] = (0.6, 0.8)) -> dict[str, Samples]:
    """Train / dev / test by time at the ``shares`` quantiles of the sample times, purging the samples of an
    earlier split whose label period ``(ts, ts + horizon]`` reaches past the next split's first time."""
    if len(samples) < 20:
        raise ConfigError(f"only {len(samples)} labelled samples: too few for train/dev/test splits")
    horizon = int(samples.info.get("horizon_ns", 0))
    times = np.unique(samples.ts)
    cuts = [times[min(len(times) - 1, int(len(times) * q))] for q in shares]
    lo = np.iinfo(np.int64).min
    bounds = [(lo, cuts[0]), (cuts[0], cuts[1]), (cuts[1], np.iinfo(np.int64).max)]
    out = {}
    for name, (a, b) in zip(("train", "dev", "test"), bounds, strict=True):
        mask = (samples.ts >= a) & (samples.ts < b)
        if name != "test":
            mask &= samples.ts + horizon < b
        out[name] = samples.take(mask)
    return out


def _iso(ns: int) -> str:
    return str(np.datetime64(ns, "ns").astype("datetime64[s]"))


def data_range(splits: dict[str, Samples]) -> dict[str, Any]:
    """First and last sample time and count per split (for the model card)."""
    out: dict[str, Any] = {}
    for name, s in splits.items():
        if len(s):
            first, last = (
                np.datetime64(int(v), "ns").astype("datetime64[s]").item().isoformat() for v in (s.ts.min(), s.ts.max())
            )
            out[name] = {"from": first, "to": last, "n": len(s), "balance": s.balance()}
        else:
            out[name] = {"n": 0}
    return out


def train_price(
    dataset: str,
    path: Path,
    kind: str,
    registry: Registry,
    seeds: int = 5,
    name: str | None = None,
    params: dict[str, Any] | None = None,
    options: DataOptions = DataOptions(),
) -> dict[str, Any]:
    """Train ``kind`` on ``dataset`` with ``seeds`` seeds, evaluate on dev and test beside the baselines, register
    it (model card included) and return the card."""
    if kind not in KINDS:
        raise ConfigError(f"model {kind!r}: allowed values are {', '.join(KINDS)}")
    if seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    splits = load_splits(dataset, path, options)
    for split in ("train", "dev", "test"):
        if len(splits[split]) == 0:
            raise ConfigError(f"{dataset} at {path}: the {split} split is empty")
    start = time.perf_counter()
    models = fit_seeds(kind, splits["train"], splits["dev"], seeds, params or {})
    seconds = time.perf_counter() - start
    from marketpulse.predict.models import predict_samples

    metrics = {}
    for split in ("dev", "test"):
        report = seed_report([predict_samples(m, splits[split]) for m in models], splits[split])
        report["baselines"] = baseline_reports(splits["train"], splits[split], splits["dev"])
        metrics[split] = report
    train = splits["train"]
    card = {
        "dataset": dataset,
        "path": str(path),
        "kind": kind,
        "params": models[0].meta.get("params", {}),
        "schema": train.schema,
        "features": list(train.feature_names),
        "window": int(train.X.shape[1]),
        "classes": train.classes,
        "horizon_ns": int(train.info.get("horizon_ns", 0)),
        "interval_s": int(train.info.get("interval_s", 86_400 if dataset == "stocknet" else 60)),
        "typical_move": float(train.info.get("typical_move", 0.0)),
        "data": data_range(splits),
        "metrics": metrics,
        "train_seconds": round(seconds, 2),
        "options": {"text": options.text, "window": options.window, "horizon": options.horizon},
    }
    name = name or f"{dataset}-{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    registry.register(name, models, card)
    return registry.card(name)


def evaluate_registered(
    registry: Registry, name: str, dataset: str, path: Path, split: str = "test", baselines: bool = True
) -> dict[str, Any]:
    """Evaluate registered model ``name`` on ``split`` of ``dataset`` at ``path`` (any folder in that layout):
    figures per seed, mean ± std, ensemble, and the baselines fitted on that folder's train split."""
    ensemble = registry.load(name)
    opts = ensemble.card.get("options", {})
    options = DataOptions(
        text=bool(opts.get("text", True)), window=int(opts.get("window", 30)), horizon=int(opts.get("horizon", 5))
    )
    if split not in ("train", "dev", "test"):
        raise ConfigError(f"split {split!r}: allowed values are train, dev, test")
    splits = load_splits(dataset, path, options)
    samples = splits[split]
    if len(samples) == 0:
        raise ConfigError(f"{dataset} at {path}: the {split} split is empty")
    if samples.schema != ensemble.schema:
        raise ConfigError(
            f"model {name!r} was trained on feature schema {ensemble.schema}, this data has {samples.schema}"
        )
    report = seed_report(ensemble.per_seed(samples), samples)
    if baselines:
        report["baselines"] = baseline_reports(splits["train"], samples, splits["dev"])
    return {"model": name, "version": ensemble.version, "dataset": dataset, "path": str(path), "split": split, **report}
