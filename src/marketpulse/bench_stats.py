"""Latency figures shared by the benchmarks: the same percentiles, rounding and empty-sample rule everywhere."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def p50_p99(prefix: str, ms: Sequence[float] | np.ndarray, digits: int = 3) -> dict[str, float | None]:
    """``{prefix}_p50`` and ``{prefix}_p99`` of the millisecond samples ``ms`` rounded to ``digits`` (None when
    there are no samples)."""
    values = np.asarray(ms, dtype=float)
    if not values.size:
        return {f"{prefix}_p50": None, f"{prefix}_p99": None}
    p50, p99 = np.percentile(values, [50, 99]).tolist()
    return {f"{prefix}_p50": round(p50, digits), f"{prefix}_p99": round(p99, digits)}
