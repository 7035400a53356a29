"""What the dashboard computes for display: overlays (against TA-Lib), engine levels, realised outcomes, sentiment
timeline rows, stats picking and counter rates; figures build from odd inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("plotly")

from marketpulse.dashboard import views


def _bars(n: int = 60, seed: int = 1, freq: str = "1D") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    ts = pd.date_range("2014-05-01 20:00", periods=n, freq=freq, tz="UTC")
    return pd.DataFrame(
        {"ts": ts, "open": close - 0.3, "high": close + 1, "low": close - 1, "close": close, "volume": 1e6}
    )


def test_overlays_agree_with_talib() -> None:
    talib = pytest.importorskip("talib")
    bars = _bars()
    ov = views.overlays(bars)
    close = bars["close"].to_numpy(float)
    np.testing.assert_allclose(ov["sma_20"], talib.SMA(close, 20), equal_nan=True, rtol=1e-10)
    np.testing.assert_allclose(ov["ema_12"], talib.EMA(close, 12), equal_nan=True, rtol=1e-10)
    upper, mid, lower = talib.BBANDS(close, 20, 2.0, 2.0)
    np.testing.assert_allclose(ov["bb_upper"], upper, equal_nan=True, rtol=1e-9)
    np.testing.assert_allclose(ov["bb_mid"], mid, equal_nan=True, rtol=1e-9)
    np.testing.assert_allclose(ov["bb_lower"], lower, equal_nan=True, rtol=1e-9)


def test_overlays_on_few_bars_are_nan_not_errors() -> None:
    ov = views.overlays(_bars(5))
    assert ov[["sma_20", "ema_12", "bb_upper"]].isna().all().all()
    assert views.overlays(_bars(0)).empty


def test_engine_levels_and_oscillators() -> None:
    values = {"sma_30_gap": 0.01, "ema_12_gap": -0.02, "bb_upper": -0.05, "bb_lower": None, "rsi_14": 0.2}
    levels = views.engine_levels(values, 101.0)
    assert levels == pytest.approx({"SMA 30": 100.0, "EMA 12": 101.0 / 0.98, "Bollinger upper": 101.0 / 0.95})
    assert views.engine_levels(values, None) == {}
    assert views.engine_levels({"sma_30_gap": -1.0}, 100.0) == {}  # a level of infinity is no level
    assert views.oscillators(values) == pytest.approx({"RSI 14": 70.0})


def test_realised_outcomes() -> None:
    prices = pd.DataFrame(
        {
            "ts": pd.to_datetime(
                ["2014-06-02 14:30", "2014-06-02 14:31", "2014-06-02 14:32", "2014-06-02 14:33"], utc=True
            ),
            "close": [100.0, 101.0, 101.0, 99.0],
        }
    )
    preds = pd.DataFrame(
        {
            "ts": pd.to_datetime(
                ["2014-06-02 14:30", "2014-06-02 14:31", "2014-06-02 14:32", "2014-06-02 14:33", "2014-06-02 14:00"],
                utc=True,
            ),
            "p_up": [0.8, 0.9, 0.3, 0.5, 0.5],
            "horizon_s": [60, 60, 60, 60, 60],
        }
    )
    out = views.realised(preds, prices)
    assert out["outcome"].tolist() == ["up", "flat", "down", "pending", "unknown"]
    assert out["hit"].tolist() == [True, None, True, None, None]
    assert out["realised_return"].iloc[0] == pytest.approx(0.01)
    # daily bars cannot judge a one-minute horizon
    one = pd.DataFrame({"ts": [pd.Timestamp("2014-05-03 20:00", tz="UTC")], "p_up": [0.7], "horizon_s": [60]})
    daily = views.realised(one, _bars(10))
    assert daily["outcome"].tolist() == ["unknown"]
    assert views.realised(preds.iloc[:0], prices).empty
    assert views.realised(preds, prices.iloc[:0])["outcome"].eq("unknown").all()
    no_horizon = views.realised(preds.drop(columns=["horizon_s"]).iloc[:1], prices, default_horizon_s=120)
    assert no_horizon["realised_return"].iloc[0] == pytest.approx(0.01)


def test_sentiment_points_and_frame() -> None:
    reply = {
        "ts": "2014-06-02T14:30:00Z",
        "polarity": 0.2,
        "intensity": 0.4,
        "sources": [{"source": "twitter", "polarity": -0.1, "intensity": 0.3, "count": 4}, {"polarity": None}],
    }
    rows = views.sentiment_points(reply)
    assert [(r["source"], r["polarity"]) for r in rows] == [("combined", 0.2), ("twitter", -0.1)]
    assert views.sentiment_points({"sources": {"news": {"polarity": 0.5}}, "ts": 1401719400}) == [
        {
            "ts": pd.Timestamp("2014-06-02T14:30:00Z"),
            "source": "news",
            "polarity": 0.5,
            "intensity": None,
            "count": None,
        }
    ]
    assert views.sentiment_points({}) == []
    frame = views.sentiment_frame(None, rows + rows)  # the same sample twice counts once
    assert len(frame) == 2
    history = {"history": [{"ts": "2014-06-01T00:00:00Z", "polarity": 0.1}]}
    assert views.sentiment_frame(history, rows)["source"].tolist() == ["combined"]
    assert views.sentiment_frame(None, []).empty


def test_sentiment_frame_reads_the_sentiment_history_answer() -> None:
    """The ``GET /v1/sentiment/{symbol}/history`` shape: rows under ``sentiment``; the combined ``all`` rows are
    drawn as ``combined``, like the samples; an empty answer falls back to the samples."""
    point = {"probs": {"negative": 0.1, "neutral": 0.6, "positive": 0.3}, "dispersion": 0.1}
    answer = {
        "symbol": "MSFT",
        "step_s": 300,
        "window_s": 86400.0,
        "count": 3,
        "truncated": False,
        "sentiment": [
            {"ts": "2014-06-02T14:30:00Z", "source": "all", "polarity": 0.2, "intensity": 0.3, "count": 3, **point},
            {"ts": "2014-06-02T14:30:00Z", "source": "news", "polarity": 0.4, "intensity": 0.5, "count": 1, **point},
            {"ts": "2014-06-02T14:25:00Z", "source": "news", "polarity": 0.1, "intensity": 0.2, "count": 1, **point},
        ],
    }
    frame = views.sentiment_frame(answer, [])
    assert frame["source"].tolist() == ["news", "combined", "news"]  # sorted by time
    assert frame["polarity"].tolist() == [0.1, 0.2, 0.4] and frame["count"].tolist() == [1, 3, 1]
    assert frame["ts"].iloc[0] == pd.Timestamp("2014-06-02T14:25:00Z")
    samples = [{"ts": pd.Timestamp("2014-06-02T14:30:00Z"), "source": "combined", "polarity": 0.0}]
    empty = views.sentiment_frame({**answer, "count": 0, "sentiment": []}, samples)
    assert empty["polarity"].tolist() == [0.0]
    assert len(views.sentiment_figure(frame).data) == 2


def test_pick_stats_and_counter_rates() -> None:
    stats = {
        "pipeline": {
            "records_per_s": 10.0,
            "event_time_ns": 0,
            "engine": {"ticks": 100, "feature_rows": 50, "latency_ms_p50": 2.0, "consumer_lag": 3},
            "pipeline": {"published": 7, "reasons": {"x": 1}},
        },
        "api": {"requests": {"total": 1}},
    }
    groups = views.pick_stats(stats)
    assert groups["throughput"] == {"pipeline.records_per_s": 10.0}
    assert groups["latency"] == {"pipeline.engine.latency_ms_p50": 2.0}
    assert groups["lag"] == {"pipeline.engine.consumer_lag": 3.0}
    first = views.counters_of(stats)
    assert first == {
        "pipeline.event_time_ns": 0.0,
        "pipeline.engine.ticks": 100.0,
        "pipeline.engine.feature_rows": 50.0,
        "pipeline.pipeline.published": 7.0,
    }
    later = {**first, "pipeline.engine.ticks": 300.0, "pipeline.event_time_ns": 600e9}
    rates = views.counter_rates([(0.0, first), (2.0, later)])
    assert rates["ticks/s"] == 100.0 and rates["features/s"] == 0.0 and rates["event time ×"] == 300.0
    assert views.counter_rates([(0.0, first)]) == {}
    restarted = {**first, "pipeline.engine.ticks": 1.0}
    assert "ticks/s" not in views.counter_rates([(0.0, first), (1.0, restarted)])
    assert views.short_label("pipeline.engine.latency_ms_p50") == "engine latency ms p50"


def test_figures_build() -> None:
    bars = _bars(30, freq="B")
    fig = views.price_figure(bars, "AAPL", {"SMA 30": 100.0})
    assert {t.type for t in fig.data} >= {"candlestick", "scatter", "bar"}
    assert fig.layout.xaxis.rangebreaks  # daily bars: weekends hidden
    assert views.price_figure(_bars(1), "AAPL").data
    frame = pd.DataFrame(views.sentiment_points({"ts": 1401719400, "polarity": 0.1, "intensity": 2.0}))
    assert views.sentiment_figure(frame).data
    preds = views.realised(pd.DataFrame({"ts": bars["ts"], "p_up": 0.6, "horizon_s": 86_400}), bars)
    assert views.prediction_figure(preds).data
    assert len(views.weights_figure({"price": 0.7}, {"sentiment": 0.1}).data) == 2
    samples = pd.DataFrame({"ts": bars["ts"][:3], "ticks/s": [1.0, 2.0, 3.0]})
    assert views.series_figure(samples, "t").data


def test_weights_frame_and_history_figure() -> None:
    history = {
        "signals": [
            {"ts": "2014-06-02T14:31:00Z", "score": 0.3, "weights": {"price": 0.9}},  # no sentiment in this one
            {"ts": "2014-06-02T14:30:00Z", "score": -0.2, "weights": {"price": 0.7, "sentiment": 0.3}},
            {"ts": "garbage", "score": 1.0, "weights": {"price": 0.1}},
            {"ts": "2014-06-02T14:32:00Z", "score": None, "weights": {"price": 1.6, "sentiment": -0.6, "news": "x"}},
        ]
    }
    frame = views.weights_frame(history)
    assert list(frame.columns) == ["ts", "score", "weight.news", "weight.price", "weight.sentiment"]
    assert frame["ts"].is_monotonic_increasing and len(frame) == 3  # sorted, the unreadable time dropped
    assert frame["weight.price"].tolist() == [0.7, 0.9, 1.6]  # stacking coefficients above 1 kept as they are
    assert frame["weight.sentiment"].tolist()[0::2] == [0.3, -0.6] and np.isnan(frame["weight.sentiment"][1])
    fig = views.weights_history_figure(frame)
    lines = {t.name: t for t in fig.data}
    assert set(lines) == {"price", "sentiment", "fused score"}  # "news" never had a number: no line
    assert list(lines["price"].y) == [0.7, 0.9, 1.6] and lines["price"].yaxis == "y"
    assert list(lines["sentiment"].y)[0::2] == [0.3, -0.6] and np.isnan(lines["sentiment"].y[1])
    assert list(lines["fused score"].y)[:2] == [-0.2, 0.3] and lines["fused score"].yaxis == "y2"
    assert fig.layout.yaxis2.range == (-1.05, 1.05) and not fig.layout.annotations
    assert views.weights_frame({"ts": 1401719400, "score": 0.1, "weights": {"a": 1}})["weight.a"].tolist() == [1.0]
    for nothing in (None, {"signals": []}, [{"score": 0.5}], {"signals": "x"}):
        empty = views.weights_history_figure(views.weights_frame(nothing))
        assert not empty.data and [a.text for a in empty.layout.annotations] == ["no signals yet"]
