"""``bench predict`` runs end to end on a small setting and reports its figures beside the reference."""

from __future__ import annotations

from marketpulse.bench_predict import bench_predict


def test_bench_predict_reports_inference_and_engine_latency() -> None:
    out = bench_predict(window=3, symbols=5, repeat=5, latency_s=1.5, warm_s=45, rate=2_000)
    assert out["benchmark"] == "predict" and out["batch_symbols"] == 5
    assert 0 < out["inference_ms_p50"] <= out["inference_ms_p99"]
    assert 0 < out["reference_ms_p50"] <= out["reference_ms_p99"] and out["ratio_p50"] > 0
    assert out["engine_predictions"] > 0, "the engine must load the registered model and predict"
    assert out["ingest_to_prediction_ms_p50"] <= out["ingest_to_prediction_ms_p99"]
