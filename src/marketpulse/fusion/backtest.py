"""Walk-forward backtest of probability signals, with costs, beside buy-and-hold and each other.

Input: one row per ``(ts, symbol)`` with the **forward** simple return ``ret`` of holding the symbol from ``ts`` to
the next decision time, and one column per signal holding ``p(up)`` computed from information available at ``ts``
only (the caller's contract: the backtest never looks at later rows, but it cannot see how a probability was
made). Rules, per signal:

- position at ``ts``: ``+1`` when ``p >= long_above``, ``-1`` when ``p <= short_below`` (if ``allow_short``), else
  flat; a missing probability is flat;
- the capital is split equally over the symbols present at ``ts`` (flat symbols hold cash at 0 %), so the
  portfolio return is the mean of ``position × ret`` over them;
- costs: every change of a symbol's position pays ``(cost_bps + slippage_bps) / 10⁴`` per unit changed (``0 → +1``
  is 1 unit, ``+1 → −1`` is 2), on that symbol's capital share, in the period of the change; a symbol's first
  appearance starts from flat.

Figures (:func:`performance`): periods, total and annualised return (geometric), annualised volatility, Sharpe
(mean / std of the net period returns × √periods-per-year, risk-free 0), maximum drawdown (≤ 0), hit rate (share of
non-flat symbol-periods whose position had the sign of the return; a zero return is not a hit), exposure (mean
absolute position), turnover (mean units changed per period and per year), costs paid and trades.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from marketpulse.errors import ConfigError

BUY_AND_HOLD = "buy_and_hold"


class BacktestConfig(BaseModel):
    """Position rules and costs of :func:`backtest` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    long_above: float = Field(0.55, ge=0.0, le=1.0, description="go long when p(up) >= this")
    short_below: float = Field(0.45, ge=0.0, le=1.0, description="go short when p(up) <= this")
    allow_short: bool = Field(True, description="False: below short_below is flat, not short")
    cost_bps: float = Field(5.0, ge=0.0, description="commission and fees, basis points per unit traded")
    slippage_bps: float = Field(0.0, ge=0.0, description="slippage, basis points per unit traded")
    periods_per_year: float = Field(252.0, gt=0.0, description="decision periods per year (252 = daily)")

    @model_validator(mode="after")
    def _bands(self) -> BacktestConfig:
        if self.short_below > self.long_above:
            raise ValueError(f"short_below {self.short_below} is above long_above {self.long_above}")
        return self


def positions(p: pd.Series | np.ndarray, config: BacktestConfig) -> np.ndarray:
    """``+1 / 0 / −1`` per probability (NaN → 0) under ``config``'s bands."""
    prob = np.asarray(p, dtype=np.float64)
    out = np.zeros(len(prob))
    out[prob >= config.long_above] = 1.0
    if config.allow_short:
        out[prob <= config.short_below] = -1.0
    out[np.isnan(prob)] = 0.0
    return out


def _frame(frame: pd.DataFrame, signals: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in ("ts", "symbol", "ret", *signals) if c not in frame.columns]
    if missing:
        raise ConfigError(f"backtest frame lacks columns {missing}: expected ts, symbol, ret and the signals")
    if frame.duplicated(["ts", "symbol"]).any():
        first = frame[frame.duplicated(["ts", "symbol"])].iloc[0]
        raise ConfigError(f"backtest frame has two rows for ({first['ts']}, {first['symbol']})")
    if not np.isfinite(frame["ret"].to_numpy(dtype=np.float64)).all():
        raise ConfigError("backtest frame: ret must be finite on every row (drop rows without a realised return)")
    return frame.sort_values(["ts", "symbol"], kind="mergesort").reset_index(drop=True)


def _strategy(frame: pd.DataFrame, pos: np.ndarray, config: BacktestConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per-period gross/cost/net returns of positions ``pos`` (aligned with ``frame``) and the symbol-level facts."""
    ret = frame["ret"].to_numpy(dtype=np.float64)
    previous = pd.Series(pos).groupby(frame["symbol"].to_numpy()).shift(1).fillna(0.0).to_numpy()
    traded = np.abs(pos - previous)
    rate = (config.cost_bps + config.slippage_bps) / 1e4
    rows = pd.DataFrame({"ts": frame["ts"], "gross": pos * ret, "cost": traded * rate, "traded": traded})
    per = rows.groupby("ts", sort=True).mean()
    per["net"] = per["gross"] - per["cost"]
    active = pos != 0
    facts = {
        "hits": int(np.sum(np.sign(pos[active]) == np.sign(ret[active]))),
        "active": int(active.sum()),
        "trades": int(np.count_nonzero(traded)),
        "exposure": float(np.abs(pos).mean()) if len(pos) else 0.0,
    }
    return per, facts


def performance(per: pd.DataFrame, facts: dict[str, Any], periods_per_year: float) -> dict[str, Any]:
    """The figures of one strategy from its per-period ``net``/``cost``/``traded`` (see the module docstring)."""
    net = per["net"].to_numpy(dtype=np.float64)
    n = len(net)
    equity = np.cumprod(1.0 + net)
    total = float(equity[-1] - 1.0) if n else 0.0
    std = float(np.std(net, ddof=1)) if n > 1 else 0.0
    drawdown = equity / np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:] - 1.0 if n else np.zeros(1)
    return {
        "periods": n,
        "total_return": total,
        "annualised_return": float((1.0 + total) ** (periods_per_year / n) - 1.0) if n and total > -1 else -1.0,
        "annualised_volatility": std * math.sqrt(periods_per_year),
        "sharpe": float(net.mean() / std * math.sqrt(periods_per_year)) if std > 0 else None,
        "max_drawdown": float(drawdown.min()),
        "hit_rate": facts["hits"] / facts["active"] if facts["active"] else None,
        "exposure": facts["exposure"],
        "turnover_per_period": float(per["traded"].mean()) if n else 0.0,
        "turnover_per_year": float(per["traded"].mean() * periods_per_year) if n else 0.0,
        "costs_paid": float(per["cost"].sum()),
        "trades": facts["trades"],
    }


def backtest(frame: pd.DataFrame, signals: Sequence[str], config: BacktestConfig | None = None) -> dict[str, Any]:
    """Backtest each column of ``signals`` (probabilities of an up move) and buy-and-hold on ``frame``.

    Returns ``{"config", "strategies": {name: figures}, "equity": DataFrame}`` — ``equity`` is indexed by ``ts``
    with one net equity curve (starting at 1) per strategy, buy-and-hold included under :data:`BUY_AND_HOLD`."""
    config = config or BacktestConfig()
    if not signals:
        raise ConfigError("backtest: no signal columns given")
    if BUY_AND_HOLD in signals:
        raise ConfigError(f"backtest: {BUY_AND_HOLD!r} is the benchmark's name; rename that signal")
    data = _frame(frame, signals)
    strategies: dict[str, dict[str, Any]] = {}
    curves: dict[str, pd.Series] = {}
    for name in (*signals, BUY_AND_HOLD):
        pos = np.ones(len(data)) if name == BUY_AND_HOLD else positions(data[name], config)
        per, facts = _strategy(data, pos, config)
        strategies[name] = performance(per, facts, config.periods_per_year)
        curves[name] = (1.0 + per["net"]).cumprod()
    return {"config": config.model_dump(), "strategies": strategies, "equity": pd.DataFrame(curves)}


__all__ = ["BUY_AND_HOLD", "BacktestConfig", "backtest", "performance", "positions"]
