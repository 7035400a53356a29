"""Indicators TA-Lib does not have — one-step log return, realised volatility, rolling z-score, VWAP — under the
contract of :mod:`~marketpulse.features.indicator_base`; their references in the tests are plain numpy/pandas."""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Hashable
from typing import Any

import numpy as np
import numpy.typing as npt
import talib
from numpy.lib.stride_tricks import sliding_window_view

from marketpulse.features.indicator_base import (
    NAN,
    RESEED_EVERY,
    FloatArray,
    LaggedIndicator,
    Output,
    RollingMoments,
    WindowIndicator,
    check_period,
    naive_sum,
    register,
)

_CHUNK = 1 << 15  # rows of windows per vectorised step of the z-score batch


def log_returns(close: FloatArray) -> FloatArray:
    """``ln(close[t] / close[t-1])``, NaN first (and where the ratio is not positive)."""
    out = np.full(len(close), NAN)
    if len(close) > 1:
        ratio = close[1:] / close[:-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[1:] = np.where(ratio > 0.0, np.log(np.where(ratio > 0.0, ratio, 1.0)), NAN)
    return out


@register
class LogReturn(LaggedIndicator):
    """One-step log return ``ln(close[t] / close[t-1])``; warm-up 1. (Not in TA-Lib; reference: numpy.)"""

    name = "log_return"

    def __init__(self) -> None:
        super().__init__(1)

    def params(self) -> dict[str, Any]:
        return {}

    def _of(self, x: float, old: float) -> float:
        r = x / old if old != 0.0 else NAN
        return math.log(r) if r > 0.0 else NAN

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        return log_returns(a["close"])


def _flat(x: FloatArray, period: int) -> npt.NDArray[np.bool_]:
    """Windows of ``period`` identical values (exact): their standard deviation is 0 by definition."""
    return np.asarray(talib.MAX(x, period) == talib.MIN(x, period))


@register
class RealizedVol(WindowIndicator):
    """Realised volatility: the sample standard deviation (ddof=1) of the last ``period`` one-step log returns,
    scaled by ``√horizon`` (square-root-of-time; ``horizon`` defaults to ``period``, i.e. the volatility over the
    window's span; 1 gives per-bar volatility, 252·390 annualises 1-minute bars); warm-up ``period``.
    (Not in TA-Lib; reference: pandas/numpy.)"""

    name = "realized_vol"

    def __init__(self, period: int = 20, horizon: float | None = None) -> None:
        self.period = check_period(period)
        self.horizon = float(self.period if horizon is None else horizon)
        self.warmup = self.period
        self._factor = math.sqrt(self.period / (self.period - 1) * self.horizon)
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"period": self.period, "horizon": self.horizon}

    def reset(self) -> None:
        self._start()
        self._prev = NAN
        self._mom = RollingMoments(self.period)
        self._value = NAN

    def update(self, close: float) -> float:
        x = float(close)
        self._remember(x)
        if self._prev == self._prev:
            r = self._mom.push(math.log(x / self._prev))
            self._value = math.sqrt(r[1]) * self._factor if r is not None else NAN
        self._prev = x
        return self._value

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        r = log_returns(a["close"])
        if len(r) <= self.period:
            return np.full(len(r), NAN)
        sd = talib.STDDEV(r, self.period, 1.0) * self._factor
        sd[1:][_flat(r[1:], self.period)] = 0.0
        return sd


@register
class ZScore(WindowIndicator):
    """Rolling z-score ``(close − mean) / std`` over the last ``period`` closes (current one included), population
    standard deviation (ddof=0, as BBANDS); 0 for a window of identical closes; warm-up ``period - 1``.
    (Not in TA-Lib; reference: pandas/numpy.)"""

    name = "zscore"

    def __init__(self, period: int = 20) -> None:
        self.period = check_period(period)
        self.warmup = self.period - 1
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"period": self.period}

    def reset(self) -> None:
        self._start()
        self._mom = RollingMoments(self.period)
        self._value = NAN

    def update(self, close: float) -> float:
        x = float(close)
        self._remember(x)
        r = self._mom.push(x)
        if r is not None:
            dev = (x - self._mom.shift) - self._mom.m1
            self._value = dev / math.sqrt(r[1]) if r[1] > 0.0 else 0.0
        return self._value

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        """From the differences ``close[t] − close[t−j]`` (exact for nearby prices), not ``close − SMA``: a nearly
        flat window has a standard deviation ~1e-6 of the price, and an SMA's rounding at the price's scale would
        then be a 1e-8 error in z. O(n·period), in chunks."""
        x, p = a["close"], self.period
        z = np.full(len(x), NAN)
        if len(x) < p:
            return z
        w = sliding_window_view(x, p)
        for lo in range(0, len(w), _CHUNK):
            c = w[lo : lo + _CHUNK]
            d = c[:, -1:] - c
            m = d.mean(axis=1)
            sd = np.sqrt(((d - m[:, None]) ** 2).mean(axis=1))
            flat = (c.max(axis=1) == c.min(axis=1)) | (sd == 0.0)
            z[p - 1 + lo : p - 1 + lo + len(c)] = np.where(flat, 0.0, m / np.where(flat, 1.0, sd))
        return z


@register
class VWAP(WindowIndicator):
    """Volume-weighted average price of the typical price tp = (h+l+c)/3, Σ tp·volume / Σ volume, NaN while the
    window holds no volume. ``period=None`` (default): the **session** VWAP, cumulated since the ``session`` key
    (any hashable, e.g. the exchange date, given to ``update``/``update_many``) last changed — or since ``reset``
    when no key is given; warm-up 0. ``period=n``: **rolling** over the last ``n`` bars (key ignored); warm-up
    ``n − 1``. (Not in TA-Lib; reference: numpy.)"""

    name = "vwap"
    inputs = ("high", "low", "close", "volume")
    optional_inputs = ("session",)

    def __init__(self, period: int | None = None) -> None:
        self.period = None if period is None else check_period(period)
        self.warmup = 0 if self.period is None else self.period - 1
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"period": self.period}

    def reset(self) -> None:
        self._start()
        self._session: Hashable | None = None
        self._buf: deque[tuple[float, float]] = deque(maxlen=self.period or 1)
        self._pv = self._v = 0.0
        self._nz = self._since = 0
        self._value = NAN

    def update(self, high: float, low: float, close: float, volume: float, session: Hashable | None = None) -> float:
        h, lo, c, v = float(high), float(low), float(close), float(volume)
        self._remember(h, lo, c, v)
        pv = (h + lo + c) / 3.0 * v
        p = self.period
        if p is None:
            if session is not None and session != self._session:
                self._session, self._pv, self._v = session, 0.0, 0.0
            self._pv += pv
            self._v += v
            self._value = self._pv / self._v if self._v > 0.0 else NAN
            return self._value
        buf = self._buf
        if len(buf) == p:
            self._pv -= buf[0][0]
            self._v -= buf[0][1]
            self._nz -= buf[0][1] != 0.0
        buf.append((pv, v))
        self._pv += pv
        self._v += v
        self._nz += v != 0.0
        self._since += 1
        if self._since >= RESEED_EVERY * p:
            self._pv, self._v, self._since = naive_sum(b[0] for b in buf), naive_sum(b[1] for b in buf), 0
        self._value = self._pv / self._v if len(buf) == p and self._nz > 0 else NAN
        return self._value

    def _update_many(self, a: dict[str, FloatArray], n: int) -> Output:
        if self.period is not None or n == 0:
            return super()._update_many(a, n)
        pv = (a["high"] + a["low"] + a["close"]) / 3.0 * a["volume"]
        v = a["volume"]
        new = np.zeros(n, dtype=bool)
        keys = a.get("session")
        if keys is not None and n:
            keys = np.asarray(keys)
            new[0] = bool(keys[0] != self._session)
            new[1:] = keys[1:] != keys[:-1]
            last = keys[-1]
            self._session = last.item() if isinstance(last, np.generic) else last
        out = np.empty(n)
        cuts = [0, *np.flatnonzero(new[1:]) + 1, n]
        for lo, hi in itertools.pairwise(cuts):
            if new[lo]:
                self._pv = self._v = 0.0
            cpv = np.cumsum(np.concatenate(([self._pv], pv[lo:hi])))[1:]
            cv = np.cumsum(np.concatenate(([self._v], v[lo:hi])))[1:]
            with np.errstate(divide="ignore", invalid="ignore"):
                out[lo:hi] = np.where(cv > 0.0, cpv / cv, NAN)
            self._pv, self._v = float(cpv[-1]), float(cv[-1])
        self.count += n
        return out

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        if self.period is None:
            return type(self)()._update_many(a, len(a["close"]))
        pv = (a["high"] + a["low"] + a["close"]) / 3.0 * a["volume"]
        with np.errstate(divide="ignore", invalid="ignore"):
            out = talib.SUM(pv, self.period) / talib.SUM(a["volume"], self.period)
        out[talib.SUM((a["volume"] != 0.0).astype(np.float64), self.period) == 0.0] = NAN
        return out


__all__ = ["VWAP", "LogReturn", "RealizedVol", "ZScore", "log_returns"]
