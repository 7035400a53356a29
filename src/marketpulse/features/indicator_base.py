"""Base of the incremental indicators that agree with TA-Lib: River-style ``update``/``get``, a vectorised
micro-batch ``update_many`` that carries the state, a full-series ``batch``, and the registry behind feature names.

**Contract (every indicator).** ``update(...)`` consumes one point and returns the current value — a ``float``, NaN
during warm-up, or a NamedTuple of floats for multi-output indicators — and ``get()`` returns it again. Inputs are
named: ``close`` for price indicators, ``high, low, close[, volume]`` for bar indicators; the class attribute
``inputs`` lists them, so an engine can call ``ind.update(**{k: bar[k] for k in ind.inputs})``. ``warmup`` is the
number of inputs consumed before the first valid value (TA-Lib's lookback): output number ``warmup`` (0-based) is
the first one that is not NaN. ``update`` is O(1) per point (amortised; CCI is O(period) — a mean absolute deviation
has no running form, TA-Lib recomputes it too). Running sums are recomputed from their window every
``RESEED_EVERY · period`` updates, so long series do not drift.

``update_many(**arrays)`` consumes a micro-batch vectorised (TA-Lib or numpy) while carrying the state, and leaves
the state ``update`` would have left: **engines call it on each micro-batch** and use the state only to carry
across batches (the Python loop of ``update`` is one to two orders of magnitude slower than TA-Lib; see
``marketpulse.bench_indicators``). Window indicators run ``batch`` over the remembered last inputs plus the new
ones, then replay those last inputs into the scalar state; recursive ones (EMA family, Wilder smoothing) continue
TA-Lib's EMA from the carried value. Micro-batches shorter than ``scalar_below`` points are looped through
``update``, which is cheaper there. ``batch(**arrays)`` computes a series from scratch (TA-Lib
itself where it has the indicator) and ignores the state. Multi-output forms return ``dict[str, ndarray]`` keyed by
``outputs``. All three agree with TA-Lib to ≤ 1e-9 relative (rounding differs, decisions at flat windows do not);
``update`` repeats TA-Lib's arithmetic step for step where that is cheap, and is then bit-identical to it (EMA,
DEMA, RSI, ADX, CCI, MFI, OBV, MOM, ROC on the SPY bars and the tests' random bars).

``state()`` returns a picklable snapshot and ``from_state`` restores it; the continuation is identical. Indicators
also pickle and deep-copy as they are. Inputs must be finite; prices positive.

**TA-Lib conventions matched** (TA-Lib 0.8, unstable period 0, default compatibility, TA-Lib's default parameters):
EMA seeded with the SMA of its first ``period`` inputs; Wilder smoothing (RSI, ATR, ADX: k = 1/period) seeded with
the mean (RSI, ATR) or the sum (ADX's DM and TR) of the first values; MACD's two EMAs seeded on windows that end on
the same bar, its signal seeded with the mean of the first ``signal`` MACD values, nothing output before that;
BBANDS with the population standard deviation around an SMA; RSI 0 when nothing moved. ``batch`` calls TA-Lib,
so it would follow a process-wide ``talib.set_unstable_period``/``set_compatibility``; the incremental forms keep
the defaults — leave those settings alone.
"""

from __future__ import annotations

import copy
import math
import operator
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
import numpy.typing as npt
import talib

from marketpulse.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
Output = FloatArray | dict[str, FloatArray]
NAN = math.nan
RESEED_EVERY = 32
"""Running sums are recomputed from their window every ``RESEED_EVERY * period`` updates."""
TINY = 1e-290
"""Below this a Wilder average (RSI, ADX) is about to turn subnormal — after a flat stretch of roughly 700·period
bars — and ``update_many`` switches to TA-Lib's exact scalar steps. Past that point TA-Lib's own output is subnormal
rounding noise: ``update`` reproduces it bit for bit (same arithmetic from the first bar), ``update_many`` only from
a state equal to TA-Lib's to ~1e-15, so it can differ there."""

INDICATORS: dict[str, type[Indicator]] = {}
"""Indicator name → class; ``INDICATORS[name]()`` has the default (TA-Lib's) parameters."""

_I = TypeVar("_I", bound="type[Indicator]")


def register(cls: _I) -> _I:
    """Class decorator: add ``cls`` to :data:`INDICATORS` under ``cls.name``."""
    INDICATORS[cls.name] = cls
    return cls


def check_period(value: int, minimum: int = 2, what: str = "period") -> int:
    """``value`` as an int if it is an integer ``>= minimum``, else :class:`ConfigError`."""
    try:
        n = operator.index(value)
    except TypeError:
        n = minimum - 1
    if n < minimum or isinstance(value, bool):
        raise ConfigError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return n


def naive_sum(values: Iterable[float]) -> float:
    """Left-to-right sum from 0.0, as TA-Lib sums (Python's ``sum`` compensates from 3.12 on)."""
    total = 0.0
    for v in values:
        total += v
    return total


def ema_continue(values: FloatArray, period: int, seed: float) -> FloatArray:
    """EMA with ``k = 2/(period+1)`` continued from ``seed`` over ``values``, vectorised by TA-Lib: a prefix of
    ``period`` copies of the seed makes TA-Lib's SMA seed equal ``seed`` (within ``period`` ulps)."""
    if values.size == 0:
        return np.empty(0)
    return talib.EMA(np.concatenate((np.full(period, seed), values)), period)[period:]


class EmaState:
    """EMA state: seeded with the mean of the first ``seed_len`` inputs, then ``prev += (x - prev) * k`` with
    ``k = 2/(period+1)``. Wilder smoothing over ``n`` is ``EmaState(2n - 1, seed_len=n)`` (k = 1/n exactly)."""

    def __init__(self, period: int, seed_len: int | None = None) -> None:
        self.period = period
        self.k = 2.0 / (period + 1)
        self.seed_len = seed_len or period
        self.n = 0
        self.acc = 0.0
        self.prev = NAN

    @property
    def seeded(self) -> bool:
        """True once the seed (mean of the first ``seed_len`` inputs) is set."""
        return self.n >= self.seed_len

    def step(self, x: float) -> float:
        """Consume one input; the current EMA (NaN until seeded). TA-Lib's own arithmetic."""
        if self.n < self.seed_len:
            self.acc += x
            self.n += 1
            if self.n == self.seed_len:
                self.prev = self.acc / self.seed_len
            return self.prev
        self.prev = (x - self.prev) * self.k + self.prev
        return self.prev

    def many(self, x: FloatArray) -> FloatArray:
        """Consume an array: scalar steps until seeded, then :func:`ema_continue`."""
        out = np.empty(len(x))
        i = 0
        while i < len(x) and not self.seeded:
            out[i] = self.step(float(x[i]))
            i += 1
        if i < len(x):
            out[i:] = ema_continue(x[i:], self.period, self.prev)
            self.prev = float(out[-1])
        return out


def wilder(period: int) -> EmaState:
    """Wilder smoothing (k = 1/period) seeded with the mean of the first ``period`` inputs."""
    return EmaState(2 * period - 1, seed_len=period)


class RollingMoments:
    """Mean and population variance of the last ``period`` values, amortised O(1) and numerically stable.

    Keeps sums of ``x - shift`` and ``(x - shift)²`` where ``shift`` is the window mean at the last reseed, so the
    variance never comes from a difference of two large squares; reseeds (O(period)) every ``RESEED_EVERY·period``
    pushes, when the mean has drifted far from the shift, or when a large value leaves the window. A window of
    identical values (tracked as a run length) has variance exactly 0 and mean exactly that value.
    """

    def __init__(self, period: int) -> None:
        self.period = period
        self.buf: deque[float] = deque(maxlen=period)
        self.shift = self.s1 = self.s2 = self.m1 = 0.0
        self.run = self.since = 0

    def push(self, x: float) -> tuple[float, float] | None:
        """Add ``x``; return ``(mean, variance)`` once the window is full, else ``None``. ``mean = shift + m1``:
        ``(x - shift) - m1`` is a deviation from the mean without the rounding of ``mean`` at the price's scale."""
        buf, p = self.buf, self.period
        self.run = self.run + 1 if buf and x == buf[-1] else 1
        big = False
        if len(buf) == p:
            d = buf[0] - self.shift
            self.s1 -= d
            self.s2 -= d * d
            big = d * d > 1e6 * abs(self.s2)
        elif not buf:
            self.shift = x
        buf.append(x)
        d = x - self.shift
        self.s1 += d
        self.s2 += d * d
        if len(buf) < p:
            return None
        if self.run >= p:
            self.shift, self.s1, self.s2, self.since, self.m1 = x, 0.0, 0.0, 0, 0.0
            return x, 0.0
        self.since += 1
        m1 = self.s1 / p
        var = self.s2 / p - m1 * m1
        if big or self.since >= RESEED_EVERY * p or var < 1e-6 * (self.s2 / p):
            self.shift = naive_sum(buf) / p
            self.s1 = naive_sum(v - self.shift for v in buf)
            self.s2 = naive_sum((v - self.shift) ** 2 for v in buf)
            self.since = 0
            m1 = self.s1 / p
            var = self.s2 / p - m1 * m1
        self.m1 = m1
        return self.shift + m1, max(var, 0.0)


def as_f64(x: Any) -> FloatArray:
    """``x`` as a contiguous float64 array (no copy when it already is one)."""
    return np.ascontiguousarray(x, dtype=np.float64)


def _tail(out: Output, start: int) -> Output:
    if isinstance(out, dict):
        return {k: v[start:] for k, v in out.items()}
    return out[start:]


class Indicator(ABC):
    """Base of every indicator (see the module docstring for the contract)."""

    name: ClassVar[str]
    inputs: ClassVar[tuple[str, ...]] = ("close",)
    optional_inputs: ClassVar[tuple[str, ...]] = ()
    outputs: ClassVar[tuple[str, ...]] = ("value",)
    scalar_below: ClassVar[int] = 48
    """``update_many`` loops ``update`` over micro-batches shorter than this: there the Python loop (~0.2-2 µs a
    point) is cheaper than a vectorised call's fixed cost (~10-60 µs). Same results to rounding either way."""
    warmup: int
    count: int
    """Inputs consumed since construction or ``reset()``."""
    _value: Any

    @abstractmethod
    def update(self, *args: Any, **kwargs: Any) -> Any:
        """Consume one point; return the current value (NaN, or a NamedTuple of NaNs, during warm-up)."""

    @abstractmethod
    def reset(self) -> None:
        """Forget everything consumed: the next ``update`` is the first of a new series."""

    @abstractmethod
    def params(self) -> dict[str, Any]:
        """The constructor arguments, such that ``type(self)(**self.params())`` is a fresh equivalent."""

    @abstractmethod
    def _batch(self, a: dict[str, FloatArray]) -> Output: ...

    def get(self) -> Any:
        """The value returned by the last ``update`` (or ``update_many``)."""
        return self._value

    @property
    def ready(self) -> bool:
        """True once the output is valid (``count > warmup``)."""
        return self.count > self.warmup

    def batch(self, *args: Any, **kwargs: Any) -> Output:
        """The whole series from scratch (state untouched): arrays named (or ordered) as ``inputs``."""
        return self._batch(self._arrays(args, kwargs))

    def update_many(self, *args: Any, **kwargs: Any) -> Output:
        """Consume a micro-batch (arrays named or ordered as ``inputs``), vectorised; equals ``update`` point by
        point (to rounding) and leaves the same state."""
        a = self._arrays(args, kwargs)
        n = len(a[self.inputs[0]])
        out = self._loop(a, 0, n) if n < self.scalar_below else self._update_many(a, n)
        if n:
            last = _tail(out, n - 1)
            if isinstance(last, dict):
                self._value = type(self._value)(*(float(last[k][0]) for k in self.outputs))
            else:
                self._value = float(last[0])
        return out

    def _update_many(self, a: dict[str, FloatArray], n: int) -> Output:
        return self._loop(a, 0, n)

    def _loop(self, a: Mapping[str, Any], start: int, stop: int) -> Output:
        names = [k for k in (*self.inputs, *self.optional_inputs) if a.get(k) is not None]
        cols = [np.asarray(a[k][start:stop]).tolist() for k in names]
        update = self.update
        rows = [update(*row) for row in zip(*cols, strict=True)]
        if len(self.outputs) == 1:
            return np.array(rows, dtype=np.float64)
        arr = np.array(rows, dtype=np.float64).reshape(len(rows), len(self.outputs))
        return {k: arr[:, j].copy() for j, k in enumerate(self.outputs)}

    def _arrays(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, FloatArray]:
        if len(args) > len(self.inputs):
            raise TypeError(f"{self.name}: expected at most {len(self.inputs)} positional arrays {self.inputs}")
        given = dict(zip(self.inputs, args, strict=False))
        for k, v in kwargs.items():
            if k in given or k not in (*self.inputs, *self.optional_inputs):
                raise TypeError(f"{self.name}: unexpected or repeated input {k!r}; inputs are {self.inputs}")
            given[k] = v
        missing = [k for k in self.inputs if k not in given]
        if missing:
            raise TypeError(f"{self.name}: missing inputs {missing}")
        out = {k: (v if k in self.optional_inputs else as_f64(v)) for k, v in given.items() if v is not None}
        if len({len(v) for v in out.values()}) > 1:
            raise ValueError(f"{self.name}: input arrays differ in length")
        return out

    def state(self) -> dict[str, Any]:
        """A picklable deep copy of the state (parameters included)."""
        return {"name": self.name, "data": copy.deepcopy(self.__dict__)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Self:
        """Rebuild an indicator from :meth:`state`; it continues exactly where the snapshot was taken."""
        if state.get("name") != cls.name:
            raise ConfigError(f"state of {state.get('name')!r} given to {cls.name!r}")
        obj = cls.__new__(cls)
        obj.__dict__.update(copy.deepcopy(dict(state["data"])))
        return obj

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params().items())})"


class WindowIndicator(Indicator):
    """An indicator whose value depends on the last ``warmup + 1`` inputs only. ``update`` must call
    ``self._remember(*inputs)``; ``update_many`` runs ``_batch`` over the remembered inputs plus the new ones, then
    rebuilds the scalar state by replaying the last ``history`` inputs (with ``count`` set so position-dependent
    state lines up). ``_alignment()`` > 1 makes the batch start on a global index multiple of it (CCI's ring order)."""

    _hist: deque[tuple[float, ...]]

    def _history(self) -> int:
        return self.warmup

    def _alignment(self) -> int:
        return 1

    def _start(self) -> None:
        self.count = 0
        self._hist = deque(maxlen=self._history())

    def _remember(self, *row: float) -> None:
        self.count += 1
        self._hist.append(row)

    def _update_many(self, a: dict[str, FloatArray], n: int) -> Output:
        if n == 0:
            return self._loop(a, 0, 0)
        hist = list(self._hist)
        hist = hist[(len(hist) - self.count) % self._alignment() :]
        h = len(hist)
        cat = {k: np.concatenate((np.array([r[j] for r in hist]), a[k])) for j, k in enumerate(self.inputs)}
        out = _tail(self._batch(cat), h)
        keep = min(self._hist.maxlen or 0, h + n)
        total = self.count + n
        self.reset()
        self.count = total - keep
        self._loop(cat, h + n - keep, h + n)
        return out


class LaggedIndicator(WindowIndicator):
    """Base of indicators of the close and the close ``period`` inputs earlier (the oldest one remembered):
    subclasses define ``_of(close, old_close)`` and ``_batch``; warm-up ``period``."""

    def __init__(self, period: int = 10) -> None:
        self.period = check_period(period, minimum=1)
        self.warmup = self.period
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"period": self.period}

    def reset(self) -> None:
        self._start()
        self._value = NAN

    def update(self, close: float) -> float:
        x = float(close)
        old = self._hist[0][0] if len(self._hist) == self.period else NAN
        self._remember(x)
        self._value = self._of(x, old) if old == old else NAN
        return self._value

    @abstractmethod
    def _of(self, x: float, old: float) -> float: ...
