"""``marketpulse bench predict``: model inference latency, and ingest → prediction latency through the engine.

* **Inference**: a registered LSTM (the default deep model; trained for one epoch on synthetic windows shaped like
  the engine's: ``window`` × the feature schema's width) predicts a batch of 100 symbols' windows ``repeat`` times;
  p50/p99 of the wall time per batch, beside the reference measured in the same run: the bare torch module's
  forward pass on the already-scaled tensor (no registry wrapper, no numpy conversions, one seed). Ratio = ours /
  reference.
* **Engine**: the full local engine with that model loaded by its :class:`~marketpulse.predict.online.OnlinePredictor`
  (from a temporary registry), fed at a paced 10,000 ticks/s for 100 symbols on 1-second bars after an unmeasured
  warm-up; p50/p99 from the newest tick's ingest stamp to the publication of the predictions.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from marketpulse.bench_stats import p50_p99
from marketpulse.features.market import NAMES, schema_hash
from marketpulse.predict.base import Samples


def _synthetic(n: int, window: int, seed: int = 0) -> Samples:
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n, window, len(NAMES))).astype(np.float32)
    y = (X[:, -1, 0] + rng.normal(0, 1, n) > 0).astype(np.int64)
    ts = np.arange(n, dtype=np.int64) * 60_000_000_000
    info = {"horizon_ns": 5_000_000_000, "interval_s": 1, "typical_move": 1e-4}
    return Samples(X, y, ts, np.array(["S"] * n), np.full(n, -1), NAMES, schema_hash(), 2, info)


def _ratio(ours: float | None, reference: float | None) -> float | None:
    return round(ours / reference, 3) if ours is not None and reference else None


def bench_predict(
    kind: str = "lstm",
    window: int = 10,
    symbols: int = 100,
    repeat: int = 300,
    latency_s: float = 15.0,
    warm_s: int = 80,
    rate: int = 10_000,
) -> dict[str, Any]:
    """Inference p50/p99 for a batch of ``symbols`` windows beside the bare forward pass, then the engine run."""
    import torch

    from marketpulse.bench_engine import _latency
    from marketpulse.predict.models import create
    from marketpulse.predict.online import OnlinePredictor
    from marketpulse.predict.registry import Registry

    train = _synthetic(2_000, window)
    model = create(kind, epochs=1).fit(train, None, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(Path(tmp))
        card = {"schema": schema_hash(), "features": list(NAMES), "window": window, "interval_s": 1}
        registry.register("bench", [model], {**card, "horizon_ns": 5_000_000_000, "typical_move": 1e-4})
        ensemble = registry.load("bench")
        batch = _synthetic(symbols, window, seed=1).X
        net = ensemble.models[0].net  # type: ignore[attr-defined]
        scaled = ensemble.models[0]._scale(batch)  # type: ignore[attr-defined]
        ours, ref = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            ensemble.predict_proba(batch)
            t1 = time.perf_counter()
            with torch.inference_mode():
                net(scaled)
            ref.append(time.perf_counter() - t1)
            ours.append(t1 - t0)
        inference = p50_p99("inference_ms", np.array(ours) * 1e3)
        reference = p50_p99("reference_ms", np.array(ref) * 1e3)
        predictor = OnlinePredictor(registry, schema_hash(), NAMES, reload_s=3600.0)
        engine = _latency(rate=rate, seconds=latency_s, symbols=symbols, warm_s=warm_s, predictor=predictor)
    return {
        "benchmark": "predict",
        "model": kind,
        "window": window,
        "features": len(NAMES),
        "batch_symbols": symbols,
        "torch_threads": torch.get_num_threads(),
        **inference,
        "reference": "bare torch forward on the scaled tensor",
        **reference,
        "ratio_p50": _ratio(inference["inference_ms_p50"], reference["reference_ms_p50"]),
        "engine_rate_ticks_per_s": rate,
        "engine_predictions": engine["latency_samples_predictions"],
        "ingest_to_prediction_ms_p50": engine["ingest_to_prediction_ms_p50"],
        "ingest_to_prediction_ms_p99": engine["ingest_to_prediction_ms_p99"],
        "ingest_to_feature_ms_p99": engine["ingest_to_feature_ms_p99"],
    }
