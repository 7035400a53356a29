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


def test_backtest_cli_prints_costed_json_and_writes_the_png(shared_data: Path, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from marketpulse.cli import app

    path = shared_data / "stocknet"
    if not (path / "price" / "raw").is_dir():
        pytest.skip(f"StockNet folder not found at {path}")
    png = tmp_path / "equity.png"
    args = ["backtest", "--path", str(path), "--tickers", ",".join(TICKERS[:5]), "--kind", "logreg", "--seeds", "1",
            "--cost-bps", "10", "--slippage-bps", "2", "--plot", str(png), "--json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["command"] == "backtest" and report["config"]["cost_bps"] == 10 and report["days"] > 50
    assert set(report["strategies"]) == {"price_only", "sentiment_only", "fused", "buy_and_hold"}
    for figures in report["strategies"].values():
        assert {"total_return", "sharpe", "max_drawdown", "hit_rate", "turnover_per_year", "costs_paid"} <= set(figures)
        assert figures["costs_paid"] > 0 and figures["max_drawdown"] <= 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert report["plot"] == str(png)


def test_fusion_cli_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from marketpulse.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["evaluate", "fusion", "--dataset", "spy", "--path", str(tmp_path)])
    assert bad.exit_code == 2 and "allowed values are stocknet" in bad.output
    bands = runner.invoke(app, ["backtest", "--path", str(tmp_path), "--long-above", "0.4", "--short-below", "0.6"])
    assert bands.exit_code == 2 and "short_below" in bands.output


def test_evaluate_fusion_cli_with_stacking_and_transformer_scored_tweets(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real transformer scores the tweets and keeps its scores on disk; a second run gives the same figures;
    the stacking fusion reports its coefficients and bias."""
    import json

    from typer.testing import CliRunner

    from marketpulse.cli import app
    from marketpulse.sentiment import ml_available

    if not ml_available():
        pytest.skip("the ml extra is not installed")
    path = shared_data / "stocknet"
    if not (path / "price" / "raw").is_dir():
        pytest.skip(f"StockNet folder not found at {path}")
    monkeypatch.setenv("MARKETPULSE__SERVICES__CACHE_DIR", str(tmp_path / "cache"))
    args = ["evaluate", "fusion", "--path", str(path), "--tickers", "GE,VZ,XOM", "--kind", "logreg", "--seeds", "1",
            "--method", "stacking", "--sentiment-model", "transformer-fast", "--json"]  # fmt: skip
    runs = []
    for _ in range(2):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    first, second = runs
    assert first["sentiment_model"] == "transformer-fast" and first["fusion"]["method"] == "stacking"
    assert first["fusion"]["final"]["method"] == "stacking" and "bias" in first["fusion"]["final"]
    assert first["sentiment_only"]["mcc"] == second["sentiment_only"]["mcc"]
    [cached] = (tmp_path / "cache" / "text-scores").iterdir()
    assert cached.name.startswith("transformer-fast-") and cached.stat().st_size > 1000
    bad = CliRunner().invoke(app, [*args[:-5], "--method", "blend"])
    assert bad.exit_code == 2 and "--method 'blend': allowed values are hedge, stacking" in bad.output
