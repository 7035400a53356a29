"""The StockNet fusion report on real data (a few tickers): every input beside the fusion, a verdict that matches
its figures, and a weight history that stays inside the evaluated split."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("sklearn")

from marketpulse.fusion.evaluate import fusion_report

pytestmark = pytest.mark.integration

TICKERS = ("AAPL", "AMZN", "BAC", "GE", "GOOG", "FB", "MSFT", "VZ", "WFC", "XOM")


def test_fusion_report_on_stocknet(shared_data: Path) -> None:
    path = shared_data / "stocknet"
    if not (path / "price" / "raw").is_dir():
        pytest.skip(f"StockNet folder not found at {path}")
    report = fusion_report(path, "test", "logreg", seeds=2, tickers=TICKERS)
    assert report["tickers"] == len(TICKERS) and report["n"] > 300
    for name in ("price_only", "sentiment_only", "fused"):
        assert {"accuracy", "mcc", "std", "per_seed"} <= set(report[name])
        assert report[name]["n"] == report["n"]
    assert {"majority", "previous_move"} <= set(report["baselines"])
    fused, price, sentiment = (report[k]["mcc"] for k in ("fused", "price_only", "sentiment_only"))
    assert ("does not beat" in report["verdict"]) == (fused < max(price, sentiment))
    days = [h["day"] for h in report["weight_history"]]
    assert days == sorted(days) and days[0] >= "2015-10-01" and days[-1] < "2016-01-01"
    weights = report["fusion"]["final"]["weights"]
    assert set(weights) == {"price", "sentiment"} and abs(sum(weights.values()) - 1) < 1e-9
