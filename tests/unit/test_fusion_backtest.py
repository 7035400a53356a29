"""The walk-forward backtest: positions, costs, equity and figures checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from marketpulse.errors import ConfigError
from marketpulse.fusion.backtest import BUY_AND_HOLD, BacktestConfig, backtest, positions


def _frame(rets: dict[str, list[float]], probs: dict[str, list[float]]) -> pd.DataFrame:
    rows = []
    for symbol, series in rets.items():
        for t, r in enumerate(series):
            rows.append({"ts": pd.Timestamp("2015-01-02", tz="UTC") + pd.Timedelta(days=t), "symbol": symbol,
                         "ret": r, "p": probs[symbol][t]})  # fmt: skip
    return pd.DataFrame(rows)


def test_positions_follow_the_bands_and_missing_is_flat() -> None:
    config = BacktestConfig(long_above=0.6, short_below=0.4)
    assert positions(np.array([0.7, 0.6, 0.5, 0.4, 0.1, np.nan]), config).tolist() == [1, 1, 0, -1, -1, 0]
    long_only = BacktestConfig(long_above=0.6, short_below=0.4, allow_short=False)
    assert positions(np.array([0.1, 0.9]), long_only).tolist() == [0, 1]
    with pytest.raises(ValueError, match="short_below"):
        BacktestConfig(long_above=0.4, short_below=0.6)


def test_one_symbol_by_hand_with_costs() -> None:
    # long, long, short, flat: returns +1 %, −2 %, −3 %, +5 %
    frame = _frame({"A": [0.01, -0.02, -0.03, 0.05]}, {"A": [0.9, 0.8, 0.1, 0.5]})
    report = backtest(frame, ["p"], BacktestConfig(cost_bps=10, slippage_bps=5))
    fig = report["strategies"]["p"]
    rate = 15e-4
    net = [0.01 - rate, -0.02, 0.03 - 2 * rate, 0.0 - rate]  # entry 1 unit, flip 2 units, exit 1 unit
    equity = np.cumprod(1 + np.array(net))
    assert fig["total_return"] == pytest.approx(equity[-1] - 1)
    assert fig["costs_paid"] == pytest.approx(4 * rate) and fig["trades"] == 3
    assert fig["hit_rate"] == pytest.approx(2 / 3), "long +1 % hit, long −2 % miss, short −3 % hit; flat not counted"
    assert fig["exposure"] == pytest.approx(0.75) and fig["turnover_per_period"] == pytest.approx(1.0)
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    assert fig["max_drawdown"] == pytest.approx((equity / peak - 1).min())
    std = np.std(net, ddof=1)
    assert fig["sharpe"] == pytest.approx(np.mean(net) / std * math.sqrt(252))
    assert report["equity"]["p"].iloc[-1] == pytest.approx(equity[-1])
    hold = report["strategies"][BUY_AND_HOLD]
    assert hold["total_return"] == pytest.approx((1 + 0.01 - rate) * 0.98 * 0.97 * 1.05 - 1), "one entry cost"


def test_capital_is_split_over_the_symbols_present() -> None:
    frame = _frame({"A": [0.02, 0.02], "B": [-0.04, 0.01]}, {"A": [0.9, 0.9], "B": [0.5, 0.5]})
    report = backtest(frame, ["p"], BacktestConfig(cost_bps=0))
    assert report["strategies"]["p"]["total_return"] == pytest.approx(1.01 * 1.01 - 1), "B flat: half the capital idle"
    assert report["strategies"][BUY_AND_HOLD]["total_return"] == pytest.approx(0.99 * 1.015 - 1)


def test_a_perfect_signal_beats_buy_and_hold_and_costs_can_eat_it() -> None:
    rng = np.random.default_rng(3)
    rets = rng.normal(0.0, 0.01, 300).tolist()
    perfect = [0.99 if r > 0 else 0.01 for r in rets]
    frame = _frame({"A": rets}, {"A": perfect})
    free = backtest(frame, ["p"], BacktestConfig(cost_bps=0))["strategies"]
    assert free["p"]["hit_rate"] == 1.0 and free["p"]["max_drawdown"] == 0.0
    assert free["p"]["sharpe"] > free[BUY_AND_HOLD]["sharpe"] + 5, (free["p"]["sharpe"], free[BUY_AND_HOLD]["sharpe"])
    costly = backtest(frame, ["p"], BacktestConfig(cost_bps=200))["strategies"]["p"]
    assert costly["total_return"] < free["p"]["total_return"] and costly["costs_paid"] > 0


def test_bad_frames_are_refused_with_the_reason() -> None:
    frame = _frame({"A": [0.01, 0.02]}, {"A": [0.9, 0.9]})
    with pytest.raises(ConfigError, match="lacks columns"):
        backtest(frame.drop(columns=["ret"]), ["p"])
    with pytest.raises(ConfigError, match="two rows"):
        backtest(pd.concat([frame, frame.iloc[:1]]), ["p"])
    with pytest.raises(ConfigError, match="finite"):
        backtest(frame.assign(ret=[0.01, np.nan]), ["p"])
    with pytest.raises(ConfigError, match="benchmark"):
        backtest(frame.assign(buy_and_hold=0.5), ["buy_and_hold"])
