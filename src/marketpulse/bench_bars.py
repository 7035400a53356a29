"""Benchmark of the bars stage: ticks/s through :func:`~marketpulse.features.bars.ticks_to_bars`, figures only.

Simulated ticks of ``symbols`` symbols (one regular session holds the whole stream, so a one-minute bar of a
symbol gathers tens of ticks, as on a busy feed) go through ``ticks_to_bars`` in micro-batches of 50,000 (cut
before timing) and :func:`flush`. Beside it, in the same run and on the same ticks, the reference: a plain pandas
``groupby([symbol, bucket]).agg(first, max, min, last, sum)`` over the whole frame at once (no state, no
watermark, no micro-batches), reported as a ratio (> 1: the stage is faster than the reference). Best of
``repeat`` runs each (the machine is shared; the best run is the least disturbed). One process, one core.

``python -m marketpulse.bench_bars`` writes the figures as JSON.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

from marketpulse.features.bars import BarState, flush, ticks_to_bars
from marketpulse.ingest.simulate import simulate_ticks

TARGET_TICKS_PER_S = 3_000_000
BATCH = 50_000


def _run_stage(batches: list[pd.DataFrame], interval_s: int, lateness_s: float) -> tuple[float, int, int]:
    state = BarState()
    start = time.perf_counter()
    n_bars = 0
    for batch in batches:
        n_bars += len(ticks_to_bars(batch, state, interval_s, lateness_s).bars)
    n_bars += len(flush(state))
    return time.perf_counter() - start, n_bars, state.n_late


def _run_reference(ticks: pd.DataFrame, interval_s: int) -> tuple[float, int]:
    start = time.perf_counter()
    bucket = ticks["ts"].to_numpy("datetime64[ns]").view(np.int64) // (interval_s * 1_000_000_000)
    grouped = (
        ticks.assign(bucket=bucket)
        .groupby(["symbol", "bucket"], observed=True, sort=False)
        .agg(
            open=("price", "first"),
            high=("price", "max"),
            low=("price", "min"),
            close=("price", "last"),
            volume=("size", "sum"),
        )
    )
    return time.perf_counter() - start, len(grouped)


def bench_bars(
    n: int = 2_000_000, symbols: int = 100, repeat: int = 3, interval_s: int = 60, lateness_s: float = 1.0
) -> dict[str, Any]:
    """ticks/s of the bars stage (symbols as pandas strings and as categoricals) next to pandas groupby."""
    names = [f"S{i:03d}" for i in range(symbols)]
    ticks = simulate_ticks(names, pd.Timestamp("2024-03-04 14:30", tz="UTC"), n, seed=7, ticks_per_day=n)
    ticks = ticks.rename(columns={"timestamp": "ts"})
    categorical = ticks.assign(symbol=ticks["symbol"].astype("category"))
    runs: dict[str, list[float]] = {"string": [], "categorical": [], "reference": []}
    n_bars = n_late = n_ref = 0
    for _ in range(repeat):
        for name, frame in (("string", ticks), ("categorical", categorical)):
            batches = [frame.iloc[i : i + BATCH] for i in range(0, len(frame), BATCH)]
            secs, n_bars, n_late = _run_stage(batches, interval_s, lateness_s)
            runs[name].append(secs)
        secs, n_ref = _run_reference(ticks, interval_s)
        runs["reference"].append(secs)
    best = {k: min(v) for k, v in runs.items()}
    rate = round(n / best["string"])
    return {
        "benchmark": "bars",
        "ticks": n,
        "symbols": symbols,
        "interval_s": interval_s,
        "allowed_lateness_s": lateness_s,
        "batch": BATCH,
        "bars": n_bars,
        "reference_bars": n_ref,
        "late": n_late,
        "bars_ticks_per_s": rate,
        "bars_categorical_ticks_per_s": round(n / best["categorical"]),
        "reference_pandas_groupby_ticks_per_s": round(n / best["reference"]),
        "ratio_vs_pandas_groupby": round(best["reference"] / best["string"], 3),
        "target_ticks_per_s": TARGET_TICKS_PER_S,
        "meets_target": rate >= TARGET_TICKS_PER_S,
        "repeat": repeat,
        "note": "one core; stage in micro-batches with state and watermark, reference in one call without",
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(bench_bars(), indent=2) + "\n")
