"""The feature stage vectorised **across symbols**: every warm symbol's indicators advanced at once, as 2-D arrays.

Per-symbol indicator objects (:mod:`marketpulse.features.indicators`) cost a Python call per indicator, symbol and
micro-batch; with 100 symbols and ~20 new bars each per micro-batch that call overhead, not the arithmetic,
bounded the engine. A :class:`Panel` keeps the state of all warm symbols as arrays — one row per symbol — and
computes a micro-batch of bars of many symbols with one numpy expression per indicator:

* **window indicators** (SMA, Bollinger bands, stochastic, Williams %R, CCI, MFI, ROC, realised volatility,
  z-scores, lagged returns) depend on the last few bars only: each row keeps its last :attr:`Panel.tail` raw bars,
  the new bars are appended (padded to the longest row) and every window is computed directly from its values
  (no running sums, so nothing drifts);
* **recursive indicators** (EMA, MACD, RSI, ATR, ADX) keep their carried values per row and step column by column
  (one column = the i-th new bar of every symbol that has one; rows are sorted by bar count, so the active rows of
  a column are a prefix and nothing is masked). Each step repeats the scalar ``update``'s arithmetic, so the panel
  continues exactly where the symbol's indicator objects stopped.

A symbol enters the panel once its indicator objects are all past their warm-up and it has :attr:`Panel.tail`
bars (warm-up, with its TA-Lib seeding rules, stays in the per-symbol objects, which are TA-Lib-tested); its state
is then extracted from those objects (:func:`kernel_for` lists what each kernel reads). Results agree with the
per-symbol path and TA-Lib to rounding (≤ 1e-9 relative; tested), for any split into micro-batches.

:func:`kernel_for` returns ``None`` for an indicator without a panel kernel; the feature stage then keeps every
symbol on the per-symbol path (correct, slower).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from marketpulse.features.indicator_base import Indicator

F = npt.NDArray[np.float64]
_EPS = 1e-14  # TA-Lib's TA_EPSILON, as the scalar indicators use it
INPUTS = ("high", "low", "close", "volume")


# ---------------------------------------------------------------------------------------------------- window kernels


def _win(x: F, w: int, t: int, k: int) -> F:
    """Windows of ``w`` values ending on each new column: ``x`` is (rows, t + k) = tail ``t`` + ``k`` new."""
    return sliding_window_view(x, w, axis=1)[:, t - w + 1 : t - w + 1 + k]


def _sma(x: F, w: int, t: int, k: int) -> F:
    return _win(x, w, t, k).sum(axis=2) / w


def _flat_std(win: F) -> tuple[F, F, npt.NDArray[np.bool_]]:
    """Per window: newest value − mean, population std and a flat-window mask. Two-pass, from the differences to
    the newest value (exact for nearby prices: a nearly flat window's std is far below the price's rounding)."""
    d = win[..., -1:] - win
    m = d.mean(axis=2)
    sd = np.sqrt(((d - m[..., None]) ** 2).mean(axis=2))
    flat = (win.max(axis=2) == win.min(axis=2)) | (sd == 0.0)
    return m, np.where(flat, 0.0, sd), flat


@dataclass(frozen=True)
class WindowKernel:
    """An indicator of the last ``need + 1`` bars: ``fn(inputs (rows, tail + k), tail, k, start) → outputs
    (rows, k)``; ``start`` is each row's count of bars before the new ones (its global index of the first)."""

    need: int
    fn: Callable[[Mapping[str, F], int, int, npt.NDArray[np.int64]], dict[str, F]]


def _k_sma(period: int) -> WindowKernel:
    return WindowKernel(period - 1, lambda a, t, k, start: {"value": _sma(a["close"], period, t, k)})


def _k_bbands(period: int, nbdevup: float, nbdevdn: float) -> WindowKernel:
    def fn(a: Mapping[str, F], t: int, k: int, start: npt.NDArray[np.int64]) -> dict[str, F]:
        c = a["close"][:, t : t + k]
        above, sd, flat = _flat_std(_win(a["close"], period, t, k))
        mean = np.where(flat, c, c - above)
        return {"upper": mean + sd * nbdevup, "middle": mean, "lower": mean - sd * nbdevdn}

    return WindowKernel(period - 1, fn)


def _extremes(a: Mapping[str, F], w: int, t: int, k: int) -> tuple[F, F]:
    return _win(a["high"], w, t, k).max(axis=2), _win(a["low"], w, t, k).min(axis=2)


def _k_stoch(fastk_period: int, slowk_period: int, slowd_period: int) -> WindowKernel:
    need = fastk_period + slowk_period + slowd_period - 3

    def fn(a: Mapping[str, F], t: int, k: int, start: npt.NDArray[np.int64]) -> dict[str, F]:
        n = k + slowk_period + slowd_period - 2  # fast %K values the outputs need
        hi, lo = _extremes(a, fastk_period, t - n + k, n)
        c = a["close"][:, t - n + k : t + k]
        rng = hi - lo
        fast = np.where(np.abs(rng) <= _EPS * (np.abs(hi) + np.abs(lo)), 0.0, (c - lo) / (rng / 100.0))
        m = k + slowd_period - 1
        slowk = sliding_window_view(fast, slowk_period, axis=1).sum(axis=2) / slowk_period  # n - sk + 1 == m
        slowd = sliding_window_view(slowk, slowd_period, axis=1).sum(axis=2) / slowd_period
        return {"slowk": slowk[:, m - k :], "slowd": slowd}

    return WindowKernel(need, fn)


def _k_willr(period: int) -> WindowKernel:
    def fn(a: Mapping[str, F], t: int, k: int, start: npt.NDArray[np.int64]) -> dict[str, F]:
        hi, lo = _extremes(a, period, t, k)
        diff = (hi - lo) / (-100.0)
        c = a["close"][:, t : t + k]
        return {"value": np.where(diff != 0.0, (hi - c) / np.where(diff != 0.0, diff, 1.0), 0.0)}

    return WindowKernel(period - 1, fn)


def _typical(a: Mapping[str, F]) -> F:
    return (a["high"] + a["low"] + a["close"]) / 3


def _ring_sum(win: F, start: npt.NDArray[np.int64]) -> F:
    """Left-to-right sums of windows of ``p`` values in TA-Lib's ring order (slot = global index mod ``p``, summed
    from slot 0), as the scalar CCI does: a mean deviation of a nearly flat window is rounding-sensitive, so the
    order of the additions is matched, not just the values. ``start`` is the global index of each row's first new
    value; window ``j`` of a row ends on index ``start + j``."""
    p = win.shape[2]
    end = start[:, None] + np.arange(win.shape[1])[None, :]
    order = (np.arange(p)[None, None, :] - (end[..., None] + 1)) % p
    ring = np.take_along_axis(win, order, axis=2)
    acc = ring[..., 0].copy()
    for j in range(1, p):
        acc += ring[..., j]
    return acc


def _k_cci(period: int) -> WindowKernel:
    def fn(a: Mapping[str, F], t: int, k: int, start: npt.NDArray[np.int64]) -> dict[str, F]:
        tp = _typical(a)
        win = _win(tp, period, t, k)
        avg = _ring_sum(win, start) / period
        dev = _ring_sum(np.abs(win - avg[..., None]), start) / period
        x, scale = tp[:, t : t + k] - avg, _EPS * np.abs(avg)
        ok = (np.abs(x) > scale) & (np.abs(dev) > scale)
        return {"value": np.where(ok, x / (0.015 * np.where(ok, dev, 1.0)), 0.0)}

    return WindowKernel(period - 1, fn)


def _k_mfi(period: int) -> WindowKernel:
    def fn(a: Mapping[str, F], t: int, k: int, start: npt.NDArray[np.int64]) -> dict[str, F]:
        tp = _typical(a)
        d = tp[:, 1:] - tp[:, :-1]
        still = np.abs(d) <= _EPS * (np.abs(tp[:, 1:]) + np.abs(tp[:, :-1]))
        flow = np.where(still, 0.0, tp[:, 1:] * a["volume"][:, 1:])
        pos, neg = np.where(d < 0.0, 0.0, flow), np.where(d < 0.0, flow, 0.0)
        ps, ns = _win(pos, period, t - 1, k).sum(axis=2), _win(neg, period, t - 1, k).sum(axis=2)
        total = ps + ns
        pc = np.where(ps < 0.0, 0.0, np.minimum(ps, total))
        return {"value": np.where(total <= 0.0, 0.0, 100.0 * (pc / np.where(total <= 0.0, 1.0, total)))}

    return WindowKernel(period, fn)


def _k_roc(period: int) -> WindowKernel:
    def fn(a: Mapping[str, F], t: int, k: int, start: npt.NDArray[np.int64]) -> dict[str, F]:
        c, old = a["close"][:, t : t + k], a["close"][:, t - period : t - period + k]
        return {"value": np.where(old != 0.0, (c / np.where(old != 0.0, old, 1.0) - 1.0) * 100.0, 0.0)}

    return WindowKernel(period, fn)


def _k_realized_vol(period: int, horizon: float) -> WindowKernel:
    factor = float(np.sqrt(period / (period - 1) * horizon))

    def fn(a: Mapping[str, F], t: int, k: int, start: npt.NDArray[np.int64]) -> dict[str, F]:
        c = a["close"]
        r = np.log(c[:, 1:] / c[:, :-1])
        _, sd, _ = _flat_std(_win(r, period, t - 1, k))
        return {"value": sd * factor}

    return WindowKernel(period, fn)


def zscore_window(x: F, period: int, t: int, k: int) -> F:
    """Rolling z-score of the new columns of ``x`` (see :class:`~marketpulse.features.indicators_stats.ZScore`)."""
    above, sd, flat = _flat_std(_win(x, period, t, k))
    return np.where(flat, 0.0, above / np.where(flat, 1.0, sd))


def _k_zscore(period: int) -> WindowKernel:
    return WindowKernel(period - 1, lambda a, t, k, start: {"value": zscore_window(a["close"], period, t, k)})


# ------------------------------------------------------------------------------------------------- recursive kernels


@dataclass(frozen=True)
class RecursiveKernel:
    """An indicator with carried values: ``extract(ind) → state vector``; ``step(state (rows, n), inputs
    (rows, k), counts) → outputs (rows, k)`` advances ``state`` in place, row ``i`` over its first ``counts[i]``
    columns (``counts`` non-increasing)."""

    fields: tuple[str, ...]
    extract: Callable[[Indicator], tuple[float, ...]]
    step: Callable[[F, Mapping[str, F], npt.NDArray[np.int64]], dict[str, F]]


def _reads(*names: str) -> Callable[[Indicator], tuple[float, ...]]:
    """Reader of a warm scalar indicator's carried values (attribute paths of its ``update`` state)."""
    getters = [attrgetter(n) for n in names]
    return lambda ind: tuple(float(g(ind)) for g in getters)


def _active(counts: npt.NDArray[np.int64], k: int) -> list[int]:
    """Rows active in each column (a prefix, since counts are sorted descending)."""
    return [int(v) for v in np.searchsorted(-counts, -np.arange(k), side="left")]


def _k_ema(period: int) -> RecursiveKernel:
    kk = 2.0 / (period + 1)

    def step(st: F, a: Mapping[str, F], counts: npt.NDArray[np.int64]) -> dict[str, F]:
        c = a["close"]
        out = np.empty_like(c)
        prev = st[:, 0]
        for j, n in enumerate(_active(counts, c.shape[1])):
            p = prev[:n]
            prev[:n] = (c[:n, j] - p) * kk + p
            out[:n, j] = prev[:n]
        return {"value": out}

    return RecursiveKernel(("prev",), _reads("_ema.prev"), step)


def _k_macd(fast: int, slow: int, signal: int) -> RecursiveKernel:
    kf, ks, kg = 2.0 / (fast + 1), 2.0 / (slow + 1), 2.0 / (signal + 1)

    def step(st: F, a: Mapping[str, F], counts: npt.NDArray[np.int64]) -> dict[str, F]:
        c = a["close"]
        m_out, g_out = np.empty_like(c), np.empty_like(c)
        f, s, g = st[:, 0], st[:, 1], st[:, 2]
        for j, n in enumerate(_active(counts, c.shape[1])):
            x = c[:n, j]
            fv, sv, gv = f[:n], s[:n], g[:n]
            f[:n] = (x - fv) * kf + fv
            s[:n] = (x - sv) * ks + sv
            m = f[:n] - s[:n]
            g[:n] = (m - gv) * kg + gv
            m_out[:n, j] = m
            g_out[:n, j] = g[:n]
        return {"macd": m_out, "signal": g_out, "hist": m_out - g_out}

    return RecursiveKernel(("fast", "slow", "signal"), _reads("_f.prev", "_s.prev", "_g.prev"), step)


def _k_rsi(period: int) -> RecursiveKernel:
    inv, p1 = 1.0 / period, period - 1

    def step(st: F, a: Mapping[str, F], counts: npt.NDArray[np.int64]) -> dict[str, F]:
        c = a["close"]
        out = np.empty_like(c)
        prev, gain, loss = st[:, 0], st[:, 1], st[:, 2]
        for j, n in enumerate(_active(counts, c.shape[1])):
            x = c[:n, j]
            d = x - prev[:n]
            up = np.where(d > 0.0, d, 0.0)
            gain[:n] = (gain[:n] * p1 + up) * inv
            loss[:n] = (loss[:n] * p1 + (up - d)) * inv
            s = gain[:n] + loss[:n]
            out[:n, j] = np.where(s > 0.0, 100.0 * (gain[:n] / np.where(s > 0.0, s, 1.0)), 0.0)
            prev[:n] = x
        return {"value": out}

    return RecursiveKernel(("prev", "gain", "loss"), _reads("_prev", "_gain", "_loss"), step)


def _true_range(h: F, lo: F, pc: F) -> F:
    return np.maximum(np.maximum(h - lo, np.abs(pc - h)), np.abs(pc - lo))


def _k_atr(period: int) -> RecursiveKernel:
    kk = 2.0 / (2 * period - 1 + 1)  # Wilder: EmaState(2·period − 1)

    def step(st: F, a: Mapping[str, F], counts: npt.NDArray[np.int64]) -> dict[str, F]:
        h, lo, c = a["high"], a["low"], a["close"]
        out = np.empty_like(c)
        pc, prev = st[:, 0], st[:, 1]
        for j, n in enumerate(_active(counts, c.shape[1])):
            tr = _true_range(h[:n, j], lo[:n, j], pc[:n])
            p = prev[:n]
            prev[:n] = (tr - p) * kk + p
            out[:n, j] = prev[:n]
            pc[:n] = c[:n, j]
        return {"value": out}

    return RecursiveKernel(("pc", "prev"), _reads("_pc", "_w.prev"), step)


def _k_adx(period: int) -> RecursiveKernel:
    p = float(period)

    def step(st: F, a: Mapping[str, F], counts: npt.NDArray[np.int64]) -> dict[str, F]:
        h, lo, c = a["high"], a["low"], a["close"]
        out = np.empty_like(c)
        ph, pl, pc, mdm, pdm, tr, val = (st[:, i] for i in range(7))
        for j, n in enumerate(_active(counts, c.shape[1])):
            hj, lj = h[:n, j], lo[:n, j]
            dp, dm = hj - ph[:n], pl[:n] - lj
            mdm[:n] = mdm[:n] - mdm[:n] / p + np.where((dm > 0.0) & (dp < dm), dm, 0.0)
            pdm[:n] = pdm[:n] - pdm[:n] / p + np.where((dp > 0.0) & (dp > dm), dp, 0.0)
            tr[:n] = tr[:n] - tr[:n] / p + _true_range(hj, lj, pc[:n])
            t = tr[:n]
            ok = t > 0.0
            safe = np.where(ok, t, 1.0)
            m, q = 100.0 * (mdm[:n] / safe), 100.0 * (pdm[:n] / safe)
            s = m + q
            ok &= ~((s > -_EPS) & (s < _EPS))
            dx = 100.0 * (np.abs(m - q) / np.where(ok, s, 1.0))
            val[:n] = np.where(ok, (val[:n] * (p - 1) + dx) / p, val[:n])
            out[:n, j] = val[:n]
            ph[:n], pl[:n], pc[:n] = hj, lj, c[:n, j]
        return {"value": out}

    fields = ("_ph", "_pl", "_pc", "_mdm", "_pdm", "_tr", "_value")
    return RecursiveKernel(fields, _reads(*fields), step)


Kernel = WindowKernel | RecursiveKernel

_FACTORIES: dict[str, Callable[..., Kernel]] = {
    "sma": _k_sma,
    "bbands": _k_bbands,
    "stoch": _k_stoch,
    "willr": _k_willr,
    "cci": _k_cci,
    "mfi": _k_mfi,
    "roc": _k_roc,
    "realized_vol": _k_realized_vol,
    "zscore": _k_zscore,
    "ema": _k_ema,
    "macd": _k_macd,
    "rsi": _k_rsi,
    "atr": _k_atr,
    "adx": _k_adx,
}


def kernel_for(ind: Indicator) -> Kernel | None:
    """The panel kernel computing ``ind`` (same parameters), or ``None`` if the panel has none for it."""
    factory = _FACTORIES.get(ind.name)
    return factory(**ind.params()) if factory else None


# ------------------------------------------------------------------------------------------------------------ panel


@dataclass
class Panel:
    """Array state of the warm symbols (picklable). ``raw[name]`` is (rows, tail): the last ``tail`` bars' inputs;
    ``state[key]`` is (rows, fields) per recursive kernel; ``last_ts`` the newest bar's time per row."""

    tail: int
    rows: dict[str, int] = field(default_factory=dict)
    raw: dict[str, F] = field(default_factory=dict)
    state: dict[Any, F] = field(default_factory=dict)
    last_ts: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    count: npt.NDArray[np.int64] = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def add(
        self, symbol: str, raw: Mapping[str, F], state: Mapping[Any, tuple[float, ...]], last_ts: int, count: int
    ) -> None:
        """Add a warm symbol: its last ``tail`` raw bars, each recursive kernel's extracted state, the time of its
        newest bar and how many bars it has had."""
        self.rows[symbol] = len(self.last_ts)
        for k in INPUTS:
            row = np.asarray(raw[k], dtype=np.float64)[-self.tail :][None, :]
            self.raw[k] = row if k not in self.raw else np.vstack((self.raw[k], row))
        for key, values in state.items():
            row = np.asarray(values, dtype=np.float64)[None, :]
            self.state[key] = row if key not in self.state else np.vstack((self.state[key], row))
        self.last_ts = np.append(self.last_ts, np.int64(last_ts))
        self.count = np.append(self.count, np.int64(count))

    def advance(
        self,
        rows: npt.NDArray[np.int64],
        counts: npt.NDArray[np.int64],
        new: Mapping[str, F],
        kernels: Mapping[Any, Kernel],
    ) -> tuple[dict[str, F], dict[Any, dict[str, F]]]:
        """Consume ``new[input]`` (len(rows), k) — row ``i`` of the panel row ``rows[i]`` has ``counts[i]`` new bars
        (non-increasing), the rest is padding — and return (inputs with tails prepended, kernel outputs
        (len(rows), k)); tails and recursive states advance."""
        t, k = self.tail, next(iter(new.values())).shape[1]
        cat = {name: np.concatenate((self.raw[name][rows], new[name]), axis=1) for name in INPUTS}
        outputs: dict[Any, dict[str, F]] = {}
        start = self.count[rows]
        with np.errstate(all="ignore"):  # padding columns may hold anything; their outputs are discarded
            for key, kern in kernels.items():
                if isinstance(kern, WindowKernel):
                    outputs[key] = kern.fn(cat, t, k, start)
                else:
                    st = self.state[key][rows]
                    outputs[key] = kern.step(st, new, counts)
                    self.state[key][rows] = st
        keep = counts[:, None] + np.arange(t)[None, :]
        for name in INPUTS:
            self.raw[name][rows] = np.take_along_axis(cat[name], keep, axis=1)
        self.count[rows] = start + counts
        return cat, outputs
