"""Incremental technical indicators that agree with TA-Lib — the public entry point: price indicators (SMA, WMA,
EMA, DEMA, MACD, RSI, BBANDS, MOM, ROC), the registry :data:`INDICATORS` (bar indicators from
:mod:`~marketpulse.features.indicators_ohlc`, non-TA-Lib ones from :mod:`~marketpulse.features.indicators_stats`
included) and :func:`create` / :func:`batch`. The contract every indicator keeps (``update``/``get``/``warmup``,
vectorised ``update_many`` carrying the state, ``batch``, ``state``/``from_state``) and the TA-Lib conventions
matched are stated in :mod:`~marketpulse.features.indicator_base`.

Usage::

    rsi = create("rsi", period=14)
    value = rsi.update(close)                    # one point, O(1); NaN during warm-up
    values = rsi.update_many(close=closes)       # a micro-batch, vectorised, state carried (what an engine calls)
    snapshot = rsi.state()                       # picklable; RSI.from_state(snapshot) continues identically
    full = batch("macd", close=history)          # backfill from scratch: TA-Lib itself -> {"macd", "signal", "hist"}
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, NamedTuple

import numpy as np
import talib

from marketpulse.errors import ConfigError
from marketpulse.features.indicator_base import (
    INDICATORS,
    NAN,
    RESEED_EVERY,
    TINY,
    EmaState,
    FloatArray,
    Indicator,
    LaggedIndicator,
    Output,
    RollingMoments,
    WindowIndicator,
    check_period,
    ema_continue,
    naive_sum,
    register,
)
from marketpulse.features.indicators_ohlc import (
    ADX,
    ATR,
    CCI,
    MFI,
    OBV,
    STOCH,
    WILLR,
    StochValue,
)
from marketpulse.features.indicators_stats import VWAP, LogReturn, RealizedVol, ZScore


@register
class SMA(WindowIndicator):
    """Simple moving average of the last ``period`` closes; warm-up ``period - 1``."""

    name = "sma"

    def __init__(self, period: int = 30) -> None:
        self.period = check_period(period)
        self.warmup = self.period - 1
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"period": self.period}

    def reset(self) -> None:
        self._start()
        self._buf: deque[float] = deque(maxlen=self.period)
        self._sum = 0.0
        self._since = 0
        self._value = NAN

    def update(self, close: float) -> float:
        x = float(close)
        self._remember(x)
        buf, p = self._buf, self.period
        if len(buf) == p:
            self._sum -= buf[0]
        buf.append(x)
        self._sum += x
        self._since += 1
        if self._since >= RESEED_EVERY * p:
            self._sum, self._since = naive_sum(buf), 0
        self._value = self._sum / p if len(buf) == p else NAN
        return self._value

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        return talib.SMA(a["close"], self.period)


@register
class WMA(WindowIndicator):
    """Linearly weighted moving average (weights 1..period, newest heaviest); warm-up ``period - 1``. Running
    weighted sum: ``num += period·x - sum(previous window)``."""

    name = "wma"

    def __init__(self, period: int = 30) -> None:
        self.period = check_period(period)
        self.warmup = self.period - 1
        self._div = self.period * (self.period + 1) // 2
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"period": self.period}

    def reset(self) -> None:
        self._start()
        self._buf: deque[float] = deque(maxlen=self.period)
        self._num = self._sum = 0.0
        self._since = 0
        self._value = NAN

    def update(self, close: float) -> float:
        x = float(close)
        self._remember(x)
        buf, p = self._buf, self.period
        if len(buf) < p:
            buf.append(x)
            self._num += len(buf) * x
            self._sum += x
        else:
            old = buf[0]
            buf.append(x)
            self._num += p * x - self._sum
            self._sum += x - old
            self._since += 1
            if self._since >= RESEED_EVERY * p:
                self._num = naive_sum((i + 1) * v for i, v in enumerate(buf))
                self._sum, self._since = naive_sum(buf), 0
        self._value = self._num / self._div if len(buf) == p else NAN
        return self._value

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        return talib.WMA(a["close"], self.period)


@register
class EMA(Indicator):
    """Exponential moving average, ``k = 2/(period+1)``, seeded with the SMA of the first ``period`` closes (TA-Lib);
    warm-up ``period - 1``."""

    name = "ema"

    def __init__(self, period: int = 30) -> None:
        self.period = check_period(period)
        self.warmup = self.period - 1
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"period": self.period}

    def reset(self) -> None:
        self.count = 0
        self._ema = EmaState(self.period)
        self._value = NAN

    def update(self, close: float) -> float:
        self.count += 1
        self._value = self._ema.step(float(close))
        return self._value

    def _update_many(self, a: dict[str, FloatArray], n: int) -> Output:
        self.count += n
        return self._ema.many(a["close"])

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        return talib.EMA(a["close"], self.period)


@register
class DEMA(Indicator):
    """Double EMA ``2·EMA(x) − EMA(EMA(x))``, the outer EMA seeded on the first ``period`` valid inner values
    (TA-Lib); warm-up ``2·(period − 1)``."""

    name = "dema"

    def __init__(self, period: int = 30) -> None:
        self.period = check_period(period)
        self.warmup = 2 * (self.period - 1)
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"period": self.period}

    def reset(self) -> None:
        self.count = 0
        self._e1, self._e2 = EmaState(self.period), EmaState(self.period)
        self._value = NAN

    def update(self, close: float) -> float:
        self.count += 1
        e1 = self._e1.step(float(close))
        if self._e1.seeded:
            e2 = self._e2.step(e1)
            self._value = 2.0 * e1 - e2 if self._e2.seeded else NAN
        return self._value

    def _update_many(self, a: dict[str, FloatArray], n: int) -> Output:
        self.count += n
        e1 = self._e1.many(a["close"])
        e2 = np.full(n, NAN)
        j = int(np.argmax(~np.isnan(e1))) if n and not np.isnan(e1[-1]) else n
        e2[j:] = self._e2.many(e1[j:])
        return 2.0 * e1 - e2

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        return talib.DEMA(a["close"], self.period)


class MACDValue(NamedTuple):
    macd: float
    signal: float
    hist: float


@register
class MACD(Indicator):
    """MACD line ``EMA_fast − EMA_slow``, its signal EMA and the histogram (line − signal), as TA-Lib: both EMAs
    seeded by SMAs of windows ending on input ``slow − 1`` (so the fast seed skips the first ``slow − fast``
    inputs), the signal seeded with the mean of the first ``signal`` line values; warm-up
    ``slow + signal − 2``, all three NaN before. ``fast > slow`` is swapped, as TA-Lib does."""

    name = "macd"
    outputs = ("macd", "signal", "hist")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        fast, slow = check_period(fast, what="fast"), check_period(slow, what="slow")
        self.fast, self.slow = min(fast, slow), max(fast, slow)
        self.signal = check_period(signal, what="signal")
        self.warmup = self.slow + self.signal - 2
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"fast": self.fast, "slow": self.slow, "signal": self.signal}

    def reset(self) -> None:
        self.count = 0
        self._first: list[float] = []
        self._f, self._s, self._g = EmaState(self.fast), EmaState(self.slow), EmaState(self.signal)
        self._value = MACDValue(NAN, NAN, NAN)

    def update(self, close: float) -> MACDValue:
        self.count += 1
        x = float(close)
        if not self._s.seeded:
            self._first.append(x)
            if len(self._first) < self.slow:
                return self._value
            for v in self._first:
                self._s.step(v)
            for v in self._first[self.slow - self.fast :]:
                self._f.step(v)
            self._first = []
        else:
            self._f.step(x)
            self._s.step(x)
        m = self._f.prev - self._s.prev
        g = self._g.step(m)
        if self._g.seeded:
            self._value = MACDValue(m, g, m - g)
        return self._value

    def _update_many(self, a: dict[str, FloatArray], n: int) -> Output:
        x = a["close"]
        i = 0
        head = []
        while i < n and not self._g.seeded:
            head.append(self.update(float(x[i])))
            i += 1
        m = self._f.many(x[i:]) - self._s.many(x[i:])
        g = self._g.many(m)
        self.count += n - i
        h = np.array(head, dtype=np.float64).reshape(i, 3)
        return {
            "macd": np.concatenate((h[:, 0], m)),
            "signal": np.concatenate((h[:, 1], g)),
            "hist": np.concatenate((h[:, 2], m - g)),
        }

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        m, g, h = talib.MACD(a["close"], self.fast, self.slow, self.signal)
        return {"macd": m, "signal": g, "hist": h}


@register
class RSI(Indicator):
    """Wilder's RSI ``100·G/(G+L)`` of Wilder-smoothed gains and losses, seeded with their means over the first
    ``period`` changes; 0 while nothing has moved (TA-Lib 0.8.1); warm-up ``period``. ``update`` repeats TA-Lib's
    arithmetic step for step (``(G·(period−1) + gain)·(1/period)``): bit-identical to it."""

    name = "rsi"

    def __init__(self, period: int = 14) -> None:
        self.period = check_period(period)
        self.warmup = self.period
        self._inv = 1.0 / self.period
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"period": self.period}

    def reset(self) -> None:
        self.count = 0
        self._prev = NAN
        self._gain = self._loss = 0.0  # sums over the first `period` changes, then Wilder averages
        self._value = NAN

    def update(self, close: float) -> float:
        x = float(close)
        self.count += 1
        p = self.period
        if self.count > 1:
            d = x - self._prev
            up = d if d > 0.0 else 0.0
            if self.count <= p + 1:
                self._gain += up
                self._loss += up - d
                if self.count == p + 1:
                    self._gain *= self._inv
                    self._loss *= self._inv
            else:
                self._gain = (self._gain * (p - 1) + up) * self._inv
                self._loss = (self._loss * (p - 1) + (up - d)) * self._inv
            if self.count > p:
                s = self._gain + self._loss
                self._value = 100.0 * (self._gain / s) if s > 0.0 else 0.0
        self._prev = x
        return self._value

    def _update_many(self, a: dict[str, FloatArray], n: int) -> Output:
        head = self._loop(a, 0, i := min(n, max(0, self.period + 1 - self.count)))
        if i == n:
            return head
        x = a["close"][i:]
        d = np.diff(x, prepend=self._prev)
        up = np.where(d > 0.0, d, 0.0)
        gain = ema_continue(up, 2 * self.period - 1, self._gain)
        loss = ema_continue(up - d, 2 * self.period - 1, self._loss)
        s = gain + loss
        if np.any((s > 0.0) & (s < TINY)):  # decayed to subnormals in a long flat stretch: TA-Lib's exact steps
            return np.concatenate((np.asarray(head), np.asarray(self._loop(a, i, n))))
        out = np.zeros(n - i)
        np.divide(100.0 * gain, s, out=out, where=s > 0.0)
        self._prev, self._gain, self._loss = float(x[-1]), float(gain[-1]), float(loss[-1])
        self.count += n - i
        return np.concatenate((np.asarray(head), out))

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        return talib.RSI(a["close"], self.period)


class BBandsValue(NamedTuple):
    upper: float
    middle: float
    lower: float


@register
class BBANDS(WindowIndicator):
    """Bollinger bands: SMA ± ``nbdev`` population standard deviations of the last ``period`` closes (TA-Lib, SMA
    middle band); warm-up ``period - 1``."""

    name = "bbands"
    outputs = ("upper", "middle", "lower")

    def __init__(self, period: int = 20, nbdevup: float = 2.0, nbdevdn: float = 2.0) -> None:
        self.period = check_period(period)
        self.nbdevup, self.nbdevdn = float(nbdevup), float(nbdevdn)
        self.warmup = self.period - 1
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"period": self.period, "nbdevup": self.nbdevup, "nbdevdn": self.nbdevdn}

    def reset(self) -> None:
        self._start()
        self._mom = RollingMoments(self.period)
        self._value = BBandsValue(NAN, NAN, NAN)

    def update(self, close: float) -> BBandsValue:
        x = float(close)
        self._remember(x)
        r = self._mom.push(x)
        if r is not None:
            sd = math.sqrt(r[1])
            self._value = BBandsValue(r[0] + sd * self.nbdevup, r[0], r[0] - sd * self.nbdevdn)
        return self._value

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        u, m, lo = talib.BBANDS(a["close"], self.period, self.nbdevup, self.nbdevdn, talib.MA_Type.SMA)
        return {"upper": u, "middle": m, "lower": lo}


@register
class MOM(LaggedIndicator):
    """Momentum ``close − close[period ago]``; warm-up ``period``."""

    name = "mom"

    def _of(self, x: float, old: float) -> float:
        return x - old

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        return talib.MOM(a["close"], self.period)


@register
class ROC(LaggedIndicator):
    """Rate of change in percent ``(close / close[period ago] − 1)·100`` (0 if the old close is 0, as TA-Lib);
    warm-up ``period``."""

    name = "roc"

    def _of(self, x: float, old: float) -> float:
        return (x / old - 1.0) * 100.0 if old != 0.0 else 0.0

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        return talib.ROC(a["close"], self.period)


def create(name: str, /, **params: Any) -> Indicator:
    """A fresh indicator from the registry; unknown names and parameters raise :class:`ConfigError`."""
    try:
        cls = INDICATORS[name]
    except KeyError:
        raise ConfigError(f"unknown indicator {name!r}; known: {sorted(INDICATORS)}") from None
    try:
        return cls(**params)
    except TypeError as e:
        raise ConfigError(f"{name}: {e}") from e


def default_params(name: str) -> dict[str, Any]:
    """The default parameters of indicator ``name`` (TA-Lib's defaults for TA-Lib's indicators)."""
    return create(name).params()


def batch(name: str, /, **kwargs: Any) -> Output:
    """Full series of indicator ``name``: input arrays by name (its ``inputs``) plus its parameters, e.g.
    ``batch("macd", close=c, fast=5)`` → ``{"macd": …, "signal": …, "hist": …}``."""
    cls = INDICATORS.get(name)
    names = (*cls.inputs, *cls.optional_inputs) if cls is not None else ()
    arrays = {k: kwargs.pop(k) for k in names if k in kwargs}
    return create(name, **kwargs).batch(**arrays)


__all__ = [
    "ADX",
    "ATR",
    "BBANDS",
    "CCI",
    "DEMA",
    "EMA",
    "INDICATORS",
    "MACD",
    "MFI",
    "MOM",
    "OBV",
    "ROC",
    "RSI",
    "SMA",
    "STOCH",
    "VWAP",
    "WILLR",
    "WMA",
    "BBandsValue",
    "Indicator",
    "LogReturn",
    "MACDValue",
    "RealizedVol",
    "StochValue",
    "ZScore",
    "batch",
    "create",
    "default_params",
]
