"""Is the fused signal better than either input? StockNet, time-ordered, over seeds.

Inputs, all fitted on the StockNet **train** split only (target days before 2015-08-01):

- ``price_only`` — a price model of ``kind`` on the price features (one model per seed);
- ``sentiment_only`` — a logistic regression on the tweet-sentiment features of the same 5-day window
  (:data:`~marketpulse.predict.stocknet.TEXT_FEATURES`: count, mean polarity and intensity, label shares), the
  tweets scored by ``sentiment_model`` (``lexicon``, ``transformer``, ``ensemble``, …);
- ``fused`` — the fusion of ``config.method`` (:class:`~marketpulse.fusion.ensemble.HedgeFusion` or
  :class:`~marketpulse.fusion.stacking.StackingFusion`) over the two, walked forward day by day through the
  dev split (its warm-up) and then the evaluated split: each day every symbol is predicted with the current weights,
  and only then are that day's outcomes learned from (a target day's move is known at its close, before the next
  day's prediction). A window without tweets gives the fusion no sentiment input (price alone that day).

Figures: accuracy, MCC, F1, Brier, AUC per seed and mean ± std (:func:`marketpulse.predict.evaluate.seed_report`),
the majority and previous-move baselines, the fusion's final weights and its daily weight history (first seed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from marketpulse.errors import ConfigError
from marketpulse.fusion.backtest import BacktestConfig, backtest
from marketpulse.fusion.ensemble import FusionConfig, make_fusion
from marketpulse.predict.base import Samples
from marketpulse.predict.evaluate import baseline_reports, fit_seeds, seed_report
from marketpulse.predict.models import create, predict_samples
from marketpulse.predict.stocknet import (
    PRICE_FEATURES,
    TEXT_FEATURES,
    load_stocknet,
    stocknet_moves,
    stocknet_samples,
)

INPUTS = ("price", "sentiment")


def select(samples: Samples, names: tuple[str, ...]) -> Samples:
    """``samples`` restricted to the features ``names`` (same rows; the schema records the selection)."""
    idx = [samples.feature_names.index(n) for n in names]
    return Samples(samples.X[:, :, idx], samples.y, samples.ts, samples.symbol, samples.prev, names,
                   f"{samples.schema}[{','.join(names)}]", samples.classes, dict(samples.info))  # fmt: skip


@dataclass(frozen=True)
class WalkResult:
    """Fused ``p(up)`` per row of the evaluated split and the weights after each day (``(day, weights)``)."""

    probability: npt.NDArray[np.float64]
    history: list[tuple[int, dict[str, float]]]
    final: dict[str, Any]


def walk_forward_fusion(
    ts: npt.NDArray[np.int64],
    y: npt.NDArray[np.int64],
    inputs: dict[str, npt.NDArray[np.float64]],
    evaluated: npt.NDArray[np.bool_],
    config: FusionConfig,
) -> WalkResult:
    """Walk rows in day order: predict each day's rows with the current weights, then learn their outcomes.

    ``inputs`` maps an input name to ``p(up)`` per row (NaN = absent that row); ``evaluated`` marks the rows whose
    fused probability is returned (the others only warm the weights up). Rows must be sorted by ``ts``."""
    if len(ts) and np.any(np.diff(ts) < 0):
        raise ConfigError("walk_forward_fusion: rows must be sorted by time")
    fusion = make_fusion(config)
    fused = np.full(len(ts), np.nan)
    history: list[tuple[int, dict[str, float]]] = []
    bounds = np.flatnonzero(np.diff(ts)) + 1
    for rows in np.split(np.arange(len(ts)), bounds):
        if not len(rows):
            continue
        day = [{name: _value(p[i]) for name, p in inputs.items()} for i in rows]
        for i, values in zip(rows.tolist(), day, strict=True):
            signal = fusion.predict(values)
            fused[i] = signal.probability if signal is not None else 0.5
        for i, values in zip(rows.tolist(), day, strict=True):  # the day closed: its outcomes are known now
            fusion.update(values, bool(y[i] == 1))
        if evaluated[rows].any():
            history.append((int(ts[rows[0]]), dict(fusion.weights)))
    return WalkResult(fused[evaluated], history, fusion.state())


def _value(p: float) -> float | None:
    return None if np.isnan(p) else float(p)


def _up(proba: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.asarray(proba[:, 1], dtype=np.float64)


def _two(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    return np.column_stack([1.0 - p, p])


@dataclass(frozen=True)
class TextOptions:
    """How the tweets become the sentiment input: the scoring model, and where its scores are kept."""

    sentiment_model: str = "lexicon"
    cache_dir: Path | None = None


@dataclass(frozen=True)
class _Inputs:
    """Both inputs' ``p(up)`` over the walked splits (dev, then the evaluated one), fitted on train only."""

    train: Samples
    target: Samples
    ts: npt.NDArray[np.int64]
    evaluated: npt.NDArray[np.bool_]
    price: list[npt.NDArray[np.float64]]
    sentiment: npt.NDArray[np.float64]
    tweets: npt.NDArray[np.bool_]
    labels: npt.NDArray[np.int64]
    moves: npt.NDArray[np.float64]
    tickers: int


def _inputs(
    path: Path,
    split: str,
    kind: str,
    seeds: int,
    params: dict[str, Any] | None,
    tickers: Sequence[str] | None,
    middle_band: bool,
    text: TextOptions,
) -> _Inputs:
    if split not in ("dev", "test"):
        raise ConfigError(f"split {split!r}: allowed values are dev, test (train fits the inputs)")
    data = load_stocknet(Path(path), tickers, text.sentiment_model, text.cache_dir)
    train = stocknet_samples(data, "train", text=True)
    walk = ("dev", "test") if split == "test" else ("dev",)
    rows = {name: stocknet_samples(data, name, text=True, middle_band=middle_band) for name in walk}
    texts = {n: select(rows[n], TEXT_FEATURES) for n in walk}
    sentiment_model = create("logreg").fit(select(train, TEXT_FEATURES), None, seed=0)
    sentiment = np.concatenate([_up(predict_samples(sentiment_model, texts[n])) for n in walk])
    dev = rows["dev"] if not middle_band else stocknet_samples(data, "dev", text=True)  # labelled days only
    models = fit_seeds(kind, select(train, PRICE_FEATURES), select(dev, PRICE_FEATURES), seeds, params or {})
    price = [np.concatenate([_up(predict_samples(m, select(rows[n], PRICE_FEATURES))) for n in walk]) for m in models]
    return _Inputs(
        train=train,
        target=rows[split],
        ts=np.concatenate([rows[n].ts for n in walk]),
        evaluated=np.concatenate([np.full(len(rows[n]), n == split) for n in walk]),
        price=price,
        sentiment=sentiment,
        tweets=np.concatenate([(texts[n].X[:, :, 0] > 0).any(axis=1) for n in walk]),
        labels=np.concatenate([rows[n].y for n in walk]),
        moves=np.concatenate([stocknet_moves(data, rows[n]) for n in walk]),
        tickers=len(data.tickers),
    )


def _fusion_config(config: FusionConfig | None) -> FusionConfig:
    config = config or FusionConfig(inputs=INPUTS)
    if set(config.inputs) != set(INPUTS):
        raise ConfigError(f"fusion inputs {list(config.inputs)}: StockNet fusion uses exactly {list(INPUTS)}")
    return config


def fusion_report(
    path: Path,
    split: str = "test",
    kind: str = "lgbm",
    seeds: int = 3,
    params: dict[str, Any] | None = None,
    config: FusionConfig | None = None,
    tickers: Sequence[str] | None = None,
    text: TextOptions | None = None,
) -> dict[str, Any]:
    """``price_only``, ``sentiment_only`` and ``fused`` on StockNet ``split`` (``dev`` or ``test``; see the module
    docstring), with baselines, weights and a plain ``verdict``."""
    config = _fusion_config(config)
    text = text or TextOptions()
    got = _inputs(path, split, kind, seeds, params, tickers, middle_band=False, text=text)
    ev = got.evaluated
    sentiment = np.where(got.tweets, got.sentiment, np.nan)
    price_probas, fused_probas, walks = [], [], []
    for p_price in got.price:
        result = walk_forward_fusion(got.ts, got.labels, {"price": p_price, "sentiment": sentiment}, ev, config)
        price_probas.append(_two(p_price[ev]))
        fused_probas.append(_two(result.probability))
        walks.append(result)
    target = got.target
    price_only = select(target, PRICE_FEATURES)  # the previous-move baseline reads prev, not X
    report: dict[str, Any] = {
        "dataset": "stocknet",
        "split": split,
        "kind": kind,
        "seeds": seeds,
        "sentiment_model": text.sentiment_model,
        "tickers": got.tickers,
        "n": len(target),
        "with_tweets": int(got.tweets[ev].sum()),
        "price_only": seed_report(price_probas, target),
        "sentiment_only": seed_report([_two(got.sentiment[ev])], target),
        "fused": seed_report(fused_probas, target),
        "baselines": baseline_reports(
            select(got.train, PRICE_FEATURES), price_only, None, ("majority", "previous_move")
        ),
        "fusion": {**config.model_dump(), "final": walks[0].final},
        "weight_history": _history(walks[0]),
    }
    report["verdict"] = verdict(report)
    return report


def _history(walk: WalkResult) -> list[dict[str, Any]]:
    return [{"day": str(np.datetime64(day, "ns").astype("datetime64[D]")), **w} for day, w in walk.history]


def backtest_report(
    path: Path,
    split: str = "test",
    kind: str = "lgbm",
    seeds: int = 3,
    params: dict[str, Any] | None = None,
    config: FusionConfig | None = None,
    costs: BacktestConfig | None = None,
    tickers: Sequence[str] | None = None,
    text: TextOptions | None = None,
) -> dict[str, Any]:
    """Walk-forward backtest on **every** trading day of StockNet ``split`` (the middle-band days StockNet's
    classification protocol drops are traded too): ``price_only`` (the seeds' mean probability, what a registered
    model serves), ``sentiment_only``, ``fused`` (walked forward, learning each day's direction after its close)
    and buy-and-hold, with ``costs``. Returns the figures and the ``equity`` frame (for :func:`plot_equity`)."""
    config = _fusion_config(config)
    text = text or TextOptions()
    got = _inputs(path, split, kind, seeds, params, tickers, middle_band=True, text=text)
    ev = got.evaluated
    up = (got.moves > 0).astype(np.int64)
    p_price = np.mean(got.price, axis=0)
    sentiment = np.where(got.tweets, got.sentiment, np.nan)
    walk = walk_forward_fusion(got.ts, up, {"price": p_price, "sentiment": sentiment}, ev, config)
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(got.ts[ev], utc=True),
            "symbol": got.target.symbol,
            "ret": got.moves[ev],
            "price_only": p_price[ev],
            "sentiment_only": got.sentiment[ev],
            "fused": walk.probability,
        }
    ).dropna(subset=["ret"])
    result = backtest(frame, ["price_only", "sentiment_only", "fused"], costs)
    return {
        "dataset": "stocknet",
        "split": split,
        "kind": kind,
        "seeds": seeds,
        "sentiment_model": text.sentiment_model,
        "tickers": got.tickers,
        "rows": len(frame),
        "days": int(frame["ts"].nunique()),
        "from": str(frame["ts"].min().date()) if len(frame) else None,
        "to": str(frame["ts"].max().date()) if len(frame) else None,
        "config": result["config"],
        "strategies": result["strategies"],
        "fusion": {**config.model_dump(), "final": walk.final},
        "equity": result["equity"],
    }


def verdict(report: dict[str, Any]) -> str:
    """One plain sentence: is the fused MCC at least the better input's, by how much over seeds, and is any of it
    beyond noise (an MCC's standard error near zero correlation is about ``1 / √n``)?"""
    fused, price, sentiment = (report[k]["mcc"] for k in ("fused", "price_only", "sentiment_only"))
    best_name, best = max((("price_only", price), ("sentiment_only", sentiment)), key=lambda kv: kv[1])
    std = report["fused"]["std"]["mcc"]
    n = int(report.get("n") or report["fused"].get("n") or 0)
    se = 1.0 / n**0.5 if n else float("nan")
    noise = (
        f"; every MCC here is within 2 standard errors of 0 (s.e. ≈ {se:.3f} on {n} samples): the inputs carry "
        "too little signal for re-weighting to exploit"
        if max(abs(fused), abs(price), abs(sentiment)) < 2 * se
        else f"; MCC standard error ≈ {se:.3f} on {n} samples"
    )
    if fused >= best:
        return f"fused MCC {fused:.4f} ≥ the better input ({best_name} {best:.4f}); seed std {std:.4f}{noise}"
    return (
        f"fused MCC {fused:.4f} is below the better input ({best_name} {best:.4f}); seed std {std:.4f}: the "
        f"fusion does not beat its best input on this split{noise}"
    )


__all__ = [
    "INPUTS",
    "TextOptions",
    "WalkResult",
    "backtest_report",
    "fusion_report",
    "select",
    "verdict",
    "walk_forward_fusion",
]
