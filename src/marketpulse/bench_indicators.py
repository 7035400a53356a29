"""Benchmark behind ``marketpulse bench indicators``: figures, never assertions.

For each indicator (by default a representative set: SMA, EMA, RSI, MACD, BBANDS, ATR, ADX), on one random-walk
series of ``n`` bars, timed in the same run beside **TA-Lib's own function on the same arrays**:

* ``batch`` — our full-series form (it calls TA-Lib, so the ratio is our wrapper's overhead; target ≤ 2×);
* ``update_many`` — one call over the whole series, and ``micro`` — the series cut into micro-batches of
  ``micro_batch`` points, the state carried from one to the next. **This is what an engine does**: each micro-batch
  is processed vectorised and the incremental state only carries across batches;
* ``update`` — the River-style Python loop, one point at a time over ``n_incremental`` points. It is O(1) per point
  but pure Python, so one to two orders of magnitude slower than TA-Lib; it is reported as it is, for the cost of
  the one-point-at-a-time path (e.g. a live tick), not as an engine's throughput.

Each figure is the best of ``repeat`` runs (the machine is shared; the best run is the least disturbed): points per
second and the ratio of our time per point to TA-Lib's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np
import talib

from marketpulse.features.indicators import INDICATORS, Indicator, create

REPRESENTATIVE = ("sma", "ema", "rsi", "macd", "bbands", "atr", "adx")

_TALIB: dict[str, Callable[[dict[str, np.ndarray]], Any]] = {
    "sma": lambda d: talib.SMA(d["close"], 30),
    "ema": lambda d: talib.EMA(d["close"], 30),
    "wma": lambda d: talib.WMA(d["close"], 30),
    "dema": lambda d: talib.DEMA(d["close"], 30),
    "rsi": lambda d: talib.RSI(d["close"], 14),
    "macd": lambda d: talib.MACD(d["close"], 12, 26, 9),
    "bbands": lambda d: talib.BBANDS(d["close"], 20, 2.0, 2.0, talib.MA_Type.SMA),
    "mom": lambda d: talib.MOM(d["close"], 10),
    "roc": lambda d: talib.ROC(d["close"], 10),
    "atr": lambda d: talib.ATR(d["high"], d["low"], d["close"], 14),
    "adx": lambda d: talib.ADX(d["high"], d["low"], d["close"], 14),
    "stoch": lambda d: talib.STOCH(d["high"], d["low"], d["close"], 5, 3, talib.MA_Type.SMA, 3, talib.MA_Type.SMA),
    "willr": lambda d: talib.WILLR(d["high"], d["low"], d["close"], 14),
    "cci": lambda d: talib.CCI(d["high"], d["low"], d["close"], 14),
    "obv": lambda d: talib.OBV(d["close"], d["volume"]),
    "mfi": lambda d: talib.MFI(d["high"], d["low"], d["close"], d["volume"], 14),
}


def _bars(n: int, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    return {
        "close": close,
        "high": close * (1.0 + np.abs(rng.normal(0.0, 5e-4, n))),
        "low": close * (1.0 - np.abs(rng.normal(0.0, 5e-4, n))),
        "volume": rng.integers(100, 10_000, n).astype(np.float64),
    }


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _micro(name: str, a: dict[str, np.ndarray], size: int) -> None:
    ind = create(name)
    n = len(a["close"])
    for i in range(0, n, size):
        ind.update_many(**{k: v[i : i + size] for k, v in a.items()})


def _loop(name: str, a: dict[str, np.ndarray]) -> None:
    ind: Indicator = create(name)
    update = ind.update
    for row in zip(*(a[k].tolist() for k in ind.inputs), strict=True):
        update(*row)


def bench_indicators(
    n: int = 1_000_000,
    repeat: int = 3,
    micro_batch: int = 1_000,
    n_incremental: int = 100_000,
    names: Sequence[str] = REPRESENTATIVE,
) -> dict[str, Any]:
    """Time each indicator in ``names`` (``("all",)`` for every registered one) as described in the module
    docstring; returns ``{"n", "repeat", "micro_batch", "n_incremental", "indicators": {name: figures}}`` where the
    figures are ``talib_pts_s`` and, for ``batch``, ``update_many``, ``micro`` and ``update``, ``<form>_pts_s`` and
    ``<form>_ratio`` (our seconds per point / TA-Lib's; absent for indicators TA-Lib lacks)."""
    if tuple(names) == ("all",):
        names = tuple(INDICATORS)
    data = _bars(n)
    small = {k: v[:n_incremental] for k, v in data.items()}
    results: dict[str, dict[str, float]] = {}
    for name in names:
        ind = create(name)
        a = {k: data[k] for k in ind.inputs}
        a_small = {k: small[k] for k in ind.inputs}
        timings = {
            "batch": (_best(partial(ind.batch, **a), repeat), n),
            "update_many": (_best(partial(_micro, name, a, n), repeat), n),
            "micro": (_best(partial(_micro, name, a, micro_batch), repeat), n),
            "update": (_best(partial(_loop, name, a_small), repeat), n_incremental),
        }
        fig: dict[str, float] = {}
        ref = _TALIB.get(name)
        talib_s = _best(partial(ref, data), repeat) / n if ref is not None else None
        if talib_s is not None:
            fig["talib_pts_s"] = round(1.0 / talib_s)
        for form, (secs, points) in timings.items():
            fig[f"{form}_pts_s"] = round(points / secs)
            if talib_s is not None:
                fig[f"{form}_ratio"] = round(secs / points / talib_s, 2)
        results[name] = fig
    return {"n": n, "repeat": repeat, "micro_batch": micro_batch, "n_incremental": n_incremental, "indicators": results}
