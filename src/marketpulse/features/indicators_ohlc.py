"""Bar indicators (high/low/close[/volume] inputs) that agree with TA-Lib: ATR, ADX, STOCH, WILLR, CCI, OBV, MFI,
under the contract of :mod:`~marketpulse.features.indicator_base` (``update(high, low, close[, volume])``).

Flat windows (high == low == close) are where implementations differ; these follow TA-Lib 0.8: STOCH %K and WILLR
are 0 when the window's range is 0 (STOCH: within 1e-14 of the extremes' magnitude), CCI is 0 when the typical
price's deviation or mean deviation is within 1e-14 of the window mean's magnitude (CCI sums its ring in TA-Lib's
slot order, so those decisions are bit-identical), ADX holds its value while the DI sum is 0, MFI treats a typical
price move within 1e-14 (relative) as none and is 0 for a window without money flow.
"""

from __future__ import annotations

from collections import deque
from typing import Any, NamedTuple

import numpy as np
import talib

from marketpulse.features.indicator_base import (
    NAN,
    TINY,
    FloatArray,
    Indicator,
    Output,
    WindowIndicator,
    check_period,
    ema_continue,
    naive_sum,
    register,
    wilder,
)

_EPS = 1e-14  # TA-Lib's TA_EPSILON


def true_range(high: float, low: float, prev_close: float) -> float:
    """``max(high − low, |prev_close − high|, |prev_close − low|)``, compared in TA-Lib's order."""
    greatest = high - low
    v = abs(prev_close - high)
    if v > greatest:
        greatest = v
    v = abs(prev_close - low)
    return v if v > greatest else greatest


def _true_ranges(prev_close: float, h: FloatArray, lo: FloatArray, c: FloatArray) -> FloatArray:
    """True ranges of the bars ``(h, lo, c)`` following a bar that closed at ``prev_close`` (TA-Lib's TRANGE)."""
    return talib.TRANGE(np.insert(h, 0, h[0]), np.insert(lo, 0, lo[0]), np.insert(c, 0, prev_close))[1:]


def _prev(first: float, x: FloatArray) -> FloatArray:
    return np.concatenate(([first], x[:-1]))


class _Extremes:
    """Highest high and lowest low of the last ``period`` pushes (monotonic deques, amortised O(1))."""

    def __init__(self, period: int) -> None:
        self.period, self.i = period, 0
        self.hi: deque[tuple[int, float]] = deque()
        self.lo: deque[tuple[int, float]] = deque()

    def push(self, high: float, low: float) -> tuple[float, float]:
        self.i += 1
        i, hi, lo = self.i, self.hi, self.lo
        while hi and hi[-1][1] <= high:
            hi.pop()
        hi.append((i, high))
        while lo and lo[-1][1] >= low:
            lo.pop()
        lo.append((i, low))
        if hi[0][0] <= i - self.period:
            hi.popleft()
        if lo[0][0] <= i - self.period:
            lo.popleft()
        return hi[0][1], lo[0][1]


class _Bar(Indicator):
    inputs = ("high", "low", "close")

    def __init__(self, period: int = 14) -> None:
        self.period = check_period(period)
        self.warmup = self._lookback()
        self.reset()

    def _lookback(self) -> int:
        return self.period

    def params(self) -> dict[str, Any]:
        return {"period": self.period}


@register
class ATR(_Bar):
    """Average true range: Wilder smoothing of the true range, seeded with the mean of the first ``period`` true
    ranges (the first bar has none); warm-up ``period``."""

    name = "atr"

    def reset(self) -> None:
        self.count = 0
        self._pc = NAN
        self._w = wilder(self.period)
        self._value = NAN

    def update(self, high: float, low: float, close: float) -> float:
        self.count += 1
        if self.count > 1:
            self._value = self._w.step(true_range(float(high), float(low), self._pc))
        self._pc = float(close)
        return self._value

    def _update_many(self, a: dict[str, FloatArray], n: int) -> Output:
        h, lo, c = a["high"], a["low"], a["close"]
        head = self._loop(a, 0, i := min(n, max(0, self.period + 1 - self.count)))
        if i == n:
            return head
        out = self._w.many(_true_ranges(self._pc, h[i:], lo[i:], c[i:]))
        self._pc = float(c[-1])
        self.count += n - i
        return np.concatenate((np.asarray(head), out))

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        return talib.ATR(a["high"], a["low"], a["close"], self.period)


@register
class ADX(_Bar):
    """Wilder's average directional index: +DM/−DM and TR summed over bars 1..period−1, then Wilder-smoothed
    (``S − S/period + x``); DX = 100·|−DI − +DI| / (−DI + +DI) accumulated over the next ``period`` bars, the first
    ADX their mean, then Wilder-smoothed; a bar with zero TR or DI sum leaves the ADX unchanged; warm-up
    ``2·period − 1``."""

    name = "adx"

    def _lookback(self) -> int:
        return 2 * self.period - 1

    def reset(self) -> None:
        self.count = 0
        self._ph = self._pl = self._pc = NAN
        self._mdm = self._pdm = self._tr = self._sum_dx = 0.0
        self._value = NAN

    def update(self, high: float, low: float, close: float) -> float:
        h, lo, p, t = float(high), float(low), self.period, self.count
        self.count += 1
        if t > 0:
            dp, dm = h - self._ph, self._pl - lo
            mdm = dm if dm > 0.0 and dp < dm else 0.0
            pdm = dp if dp > 0.0 and dp > dm else 0.0
            tr = true_range(h, lo, self._pc)
            if t < p:
                self._mdm, self._pdm, self._tr = self._mdm + mdm, self._pdm + pdm, self._tr + tr
            else:
                self._mdm = self._mdm - self._mdm / p + mdm
                self._pdm = self._pdm - self._pdm / p + pdm
                self._tr = self._tr - self._tr / p + tr
                dx = self._dx()
                if t < 2 * p - 1:
                    self._sum_dx += dx if dx is not None else 0.0
                elif t == 2 * p - 1:
                    self._value = (self._sum_dx + (dx if dx is not None else 0.0)) / p
                elif dx is not None:
                    self._value = (self._value * (p - 1) + dx) / p
        self._ph, self._pl, self._pc = h, lo, float(close)
        return self._value

    def _dx(self) -> float | None:
        if not self._tr > 0.0:
            return None
        m, q = 100.0 * (self._mdm / self._tr), 100.0 * (self._pdm / self._tr)
        s = m + q
        return None if -_EPS < s < _EPS else 100.0 * (abs(m - q) / s)

    def _update_many(self, a: dict[str, FloatArray], n: int) -> Output:
        head = self._loop(a, 0, i := min(n, max(0, 2 * self.period - self.count)))
        if i == n:
            return head
        h, lo, c = a["high"][i:], a["low"][i:], a["close"][i:]
        p, k = self.period, 2 * self.period - 1
        dp, dm = h - _prev(self._ph, h), _prev(self._pl, lo) - lo
        mdm = ema_continue(p * np.where((dm > 0.0) & (dp < dm), dm, 0.0), k, self._mdm)
        pdm = ema_continue(p * np.where((dp > 0.0) & (dp > dm), dp, 0.0), k, self._pdm)
        tr = ema_continue(p * _true_ranges(self._pc, h, lo, c), k, self._tr)
        if np.any((tr > 0.0) & (tr < TINY)):  # subnormal Wilder sums (long flat stretch): exact scalar steps
            return np.concatenate((np.asarray(head), np.asarray(self._loop(a, i, n))))
        with np.errstate(divide="ignore", invalid="ignore"):
            mdi, pdi = 100.0 * (mdm / tr), 100.0 * (pdm / tr)
            s = mdi + pdi
            ok = (tr > 0.0) & ~((s > -_EPS) & (s < _EPS))
            dx = 100.0 * (np.abs(mdi - pdi)[ok] / s[ok])
        adx = np.concatenate(([self._value], ema_continue(dx, k, self._value)))
        out = adx[np.cumsum(ok)]
        self._ph, self._pl, self._pc = float(h[-1]), float(lo[-1]), float(c[-1])
        self._mdm, self._pdm, self._tr, self._value = float(mdm[-1]), float(pdm[-1]), float(tr[-1]), float(out[-1])
        self.count += n - i
        return np.concatenate((np.asarray(head), out))

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        return talib.ADX(a["high"], a["low"], a["close"], self.period)


class StochValue(NamedTuple):
    slowk: float
    slowd: float


@register
class STOCH(WindowIndicator):
    """Slow stochastic (TA-Lib's STOCH with SMA smoothing): %K fast = 100·(close − lowest low)/(highest high −
    lowest low) over ``fastk_period`` (0 for a flat window), %K slow = its SMA over ``slowk_period``, %D = the SMA
    of %K slow over ``slowd_period``; warm-up ``fastk + slowk + slowd − 3`` (8 with TA-Lib's defaults 5, 3, 3)."""

    name = "stoch"
    inputs = ("high", "low", "close")
    outputs = ("slowk", "slowd")

    def __init__(self, fastk_period: int = 5, slowk_period: int = 3, slowd_period: int = 3) -> None:
        self.fastk_period = check_period(fastk_period, 1, "fastk_period")
        self.slowk_period = check_period(slowk_period, 1, "slowk_period")
        self.slowd_period = check_period(slowd_period, 1, "slowd_period")
        self.warmup = self.fastk_period + self.slowk_period + self.slowd_period - 3
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"fastk_period": self.fastk_period, "slowk_period": self.slowk_period, "slowd_period": self.slowd_period}

    def reset(self) -> None:
        self._start()
        self._ext = _Extremes(self.fastk_period)
        self._fk: deque[float] = deque(maxlen=self.slowk_period)
        self._sk: deque[float] = deque(maxlen=self.slowd_period)
        self._value = StochValue(NAN, NAN)

    def update(self, high: float, low: float, close: float) -> StochValue:
        c = float(close)
        self._remember(float(high), float(low), c)
        hi, lo = self._ext.push(float(high), float(low))
        if self._ext.i < self.fastk_period:
            return self._value
        rng = hi - lo
        self._fk.append(0.0 if abs(rng) <= _EPS * (abs(hi) + abs(lo)) else (c - lo) / (rng / 100.0))
        if len(self._fk) == self.slowk_period:
            self._sk.append(naive_sum(self._fk) / self.slowk_period)
            if len(self._sk) == self.slowd_period:
                self._value = StochValue(self._sk[-1], naive_sum(self._sk) / self.slowd_period)
        return self._value

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        k, d = talib.STOCH(
            a["high"],
            a["low"],
            a["close"],
            self.fastk_period,
            self.slowk_period,
            talib.MA_Type.SMA,
            self.slowd_period,
            talib.MA_Type.SMA,
        )
        return {"slowk": k, "slowd": d}


@register
class WILLR(WindowIndicator):
    """Williams %R = −100·(highest high − close)/(highest high − lowest low) over ``period`` (0 for a flat window);
    warm-up ``period − 1``."""

    name = "willr"
    inputs = ("high", "low", "close")

    def __init__(self, period: int = 14) -> None:
        self.period = check_period(period)
        self.warmup = self.period - 1
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"period": self.period}

    def reset(self) -> None:
        self._start()
        self._ext = _Extremes(self.period)
        self._value = NAN

    def update(self, high: float, low: float, close: float) -> float:
        c = float(close)
        self._remember(float(high), float(low), c)
        hi, lo = self._ext.push(float(high), float(low))
        if self._ext.i >= self.period:
            diff = (hi - lo) / (-100.0)
            self._value = (hi - c) / diff if diff != 0.0 else 0.0
        return self._value

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        return talib.WILLR(a["high"], a["low"], a["close"], self.period)


@register
class CCI(WindowIndicator):
    """Commodity channel index (tp − mean)/(0.015·mean absolute deviation) of the typical price tp = (h+l+c)/3
    over ``period``; O(period) per update (as TA-Lib: a mean deviation has no running form); warm-up
    ``period − 1``."""

    name = "cci"
    inputs = ("high", "low", "close")

    def __init__(self, period: int = 14) -> None:
        self.period = check_period(period)
        self.warmup = self.period - 1
        self.reset()

    def _history(self) -> int:
        return self.warmup + self.period

    def _alignment(self) -> int:
        return self.period  # a batch must start on TA-Lib's ring slot 0: same summation order

    def params(self) -> dict[str, Any]:
        return {"period": self.period}

    def reset(self) -> None:
        self._start()
        self._ring = [0.0] * self.period
        self._n = 0
        self._value = NAN

    def update(self, high: float, low: float, close: float) -> float:
        p, slot = self.period, self.count % self.period
        self._remember(float(high), float(low), float(close))
        tp = (float(high) + float(low) + float(close)) / 3
        self._ring[slot] = tp
        self._n += 1
        if self._n >= p:
            avg = naive_sum(self._ring) / p
            dev = naive_sum(abs(v - avg) for v in self._ring) / p
            t, scale = tp - avg, _EPS * abs(avg)
            self._value = t / (0.015 * dev) if abs(t) > scale and abs(dev) > scale else 0.0
        return self._value

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        return talib.CCI(a["high"], a["low"], a["close"], self.period)


@register
class OBV(Indicator):
    """On-balance volume: starts at the first bar's volume, then adds (subtracts) the volume of each bar whose close
    is above (below) the previous close; warm-up 0. Its level depends on where the series starts."""

    name = "obv"
    inputs = ("close", "volume")
    warmup = 0

    def __init__(self) -> None:
        self.reset()

    def params(self) -> dict[str, Any]:
        return {}

    def reset(self) -> None:
        self.count = 0
        self._pc = NAN
        self._value = NAN

    def update(self, close: float, volume: float) -> float:
        c, v = float(close), float(volume)
        if self.count == 0:
            self._value = v
        elif c > self._pc:
            self._value += v
        elif c < self._pc:
            self._value -= v
        self.count += 1
        self._pc = c
        return self._value

    def _update_many(self, a: dict[str, FloatArray], n: int) -> Output:
        head = self._loop(a, 0, i := min(n, 1 - min(self.count, 1)))
        if i == n:
            return head
        c, v = a["close"][i:], a["volume"][i:]
        pc = _prev(self._pc, c)
        signed = np.where(c > pc, v, np.where(c < pc, -v, 0.0))
        out = np.cumsum(np.concatenate(([self._value], signed)))[1:]
        self._pc, self.count = float(c[-1]), self.count + n - i
        return np.concatenate((np.asarray(head), out))

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        return talib.OBV(a["close"], a["volume"])


@register
class MFI(WindowIndicator):
    """Money flow index 100·Σ⁺/(Σ⁺ + Σ⁻) of the money flow tp·volume over ``period`` bars, signed by the move of the
    typical price tp = (h+l+c)/3 (a move within 1e-14 relative is none); 0 for a window without flow; warm-up
    ``period``. Running sums as TA-Lib (reset to exactly 0 after ``period`` bars without flow)."""

    name = "mfi"
    inputs = ("high", "low", "close", "volume")

    def __init__(self, period: int = 14) -> None:
        self.period = check_period(period)
        self.warmup = self.period
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"period": self.period}

    def reset(self) -> None:
        self._start()
        p = self.period
        self._ptp = NAN
        self._pos, self._neg = [0.0] * p, [0.0] * p
        self._i = self._n = self._null = 0
        self._ps = self._ns = 0.0
        self._value = NAN

    def update(self, high: float, low: float, close: float, volume: float) -> float:
        h, lo, c, v = float(high), float(low), float(close), float(volume)
        self._remember(h, lo, c, v)
        tp, p, i = (h + lo + c) / 3.0, self.period, self._i
        if self._ptp != self._ptp:
            self._ptp = tp
            return self._value
        if self._n == p:
            self._ps -= self._pos[i]
            self._ns -= self._neg[i]
        d, scale = tp - self._ptp, _EPS * (abs(tp) + abs(self._ptp))
        self._ptp = tp
        flow = 0.0 if abs(d) <= scale else tp * v
        pos, neg = (0.0, flow) if d < 0.0 else (flow, 0.0)
        self._pos[i], self._neg[i] = pos, neg
        self._ps += pos
        self._ns += neg
        self._null = self._null + 1 if flow == 0.0 else 0
        if self._null >= p:
            self._null, self._ps, self._ns = p, 0.0, 0.0
        self._i, self._n = (i + 1) % p, min(self._n + 1, p)
        if self._n == p:
            total = self._ps + self._ns
            pc = 0.0 if self._ps < 0.0 else min(self._ps, total)
            self._value = 0.0 if total <= 0.0 else 100.0 * (pc / total)
        return self._value

    def _batch(self, a: dict[str, FloatArray]) -> Output:
        return talib.MFI(a["high"], a["low"], a["close"], a["volume"], self.period)


__all__ = ["ADX", "ATR", "CCI", "MFI", "OBV", "STOCH", "WILLR", "StochValue", "true_range"]
