"""The benchmarks' shared latency figures."""

from __future__ import annotations

from marketpulse.bench_stats import p50_p99


def test_percentiles_are_rounded_and_named() -> None:
    figures = p50_p99("batch_ms", [float(v) for v in range(1, 101)], 2)
    assert figures == {"batch_ms_p50": 50.5, "batch_ms_p99": 99.01}


def test_no_samples_give_none_rather_than_a_crash() -> None:
    assert p50_p99("warmup_ms", []) == {"warmup_ms_p50": None, "warmup_ms_p99": None}
