"""``bench engine`` runs end to end on a small input and reports consistent figures (no wall-clock assertions)."""

from __future__ import annotations

from marketpulse.bench_engine import bench_engine


def test_bench_engine_reports_throughput_reference_and_steady_state_latency() -> None:
    out = bench_engine(n=30_000, symbols=5, repeat=1, chunk=5_000, latency_s=1.5, warm_s=40)
    assert out["benchmark"] == "engine" and out["symbols"] == 5
    assert out["feature_rows"] > 0 and out["bars_indicators_features_ticks_per_s"] > 0
    assert out["reference_ticks_per_s"] > 0 and out["ratio_vs_reference"] > 0
    assert out["latency_samples_feature_vectors"] > 0, "the measured window must produce feature vectors"
    assert out["ingest_to_feature_ms_p50"] <= out["ingest_to_feature_ms_p99"]
