"""Synthetic ticks: a free-running market simulator and ticks bridged inside real daily bars.

Two generators, both deterministic for a seed and vectorised with numpy (the only Python loops run over
symbols or over a handful of path segments, never over ticks):

* :func:`simulate_ticks` — a multi-symbol tick stream: geometric Brownian motion with Merton jumps in log
  space, volatility switched by a two-state Markov chain, arrivals whose intensity follows an intraday
  U-shape over the regular session, log-normal trade sizes scaled by the same shape.
  :func:`simulate_tick_csv_bytes` renders such a stream as a ticks CSV (for throughput benchmarks).
* :func:`bridge_ticks` — intraday ticks synthesised inside real DAILY bars so that the day's open, high,
  low, close and volume are reproduced exactly (used to replay daily data sets as a tick stream).

Every synthetic price path here is a model, not data: the output of :func:`bridge_ticks` is flagged
``synthetic=True`` so nothing downstream mistakes it for real trades.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import time
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

TRADING_DAYS_PER_YEAR = 252
_NS_PER_US = 1_000
# U-shape: activity at the open is ~3x, at the close ~3.5x the midday level (mean over the session = 1).
_PROFILE_OPEN, _PROFILE_CLOSE, _PROFILE_DECAY = 2.0, 2.5, 0.08
_PROFILE_GRID = np.linspace(0.0, 1.0, 4097)


@dataclass(frozen=True)
class Regimes:
    """Two volatility regimes switched by a symmetric Markov chain on the one-minute session grid.

    ``low`` and ``high`` multiply ``sigma``; each session minute the regime flips with probability
    ``switch_prob`` (mean regime length ``1 / switch_prob`` minutes). The first regime is drawn 50/50.
    """

    low: float = 0.7
    high: float = 1.8
    switch_prob: float = 0.01


@dataclass(frozen=True)
class Session:
    """A daily trading session in a local time zone; only Monday-Friday trade (holidays are ignored)."""

    tz: str = "America/New_York"
    open: time = time(9, 30)
    close: time = time(16, 0)


REGULAR_US_SESSION = Session()


def intraday_profile(u: npt.ArrayLike) -> FloatArray:
    """Relative activity at session fraction ``u`` in [0, 1] (0 = open, 1 = close); U-shaped, mean 1."""
    x = np.asarray(u, dtype=np.float64)
    raw = 1.0 + _PROFILE_OPEN * np.exp(-x / _PROFILE_DECAY) + _PROFILE_CLOSE * np.exp((x - 1.0) / _PROFILE_DECAY)
    return raw / _profile_integral(1.0)


def _profile_integral(u: FloatArray | float) -> FloatArray:
    """Unnormalised integral of the U-shape from 0 to ``u`` (closed form)."""
    x = np.asarray(u, dtype=np.float64)
    d = _PROFILE_DECAY
    return np.asarray(
        x
        + _PROFILE_OPEN * d * (1.0 - np.exp(-x / d))
        + _PROFILE_CLOSE * d * (np.exp((x - 1.0) / d) - np.exp(-1.0 / d)),
        dtype=np.float64,
    )


_CUM_PROFILE = _profile_integral(_PROFILE_GRID) / _profile_integral(1.0)


def _profile_cdf(u: FloatArray) -> FloatArray:
    """Share of a session's activity before fraction ``u`` (0 at the open, 1 at the close).

    Interpolated on the same grid as :func:`_profile_quantile`, so the two are exact inverses.
    """
    return np.asarray(np.interp(u, _PROFILE_GRID, _CUM_PROFILE), dtype=np.float64)


def _profile_quantile(q: FloatArray) -> FloatArray:
    """Inverse of :func:`_profile_cdf` (monotone interpolation on a fine grid)."""
    return np.asarray(np.interp(q, _CUM_PROFILE, _PROFILE_GRID), dtype=np.float64)


def _session_bounds_ns(dates: npt.NDArray[np.datetime64], session: Session) -> tuple[IntArray, IntArray]:
    """UTC nanoseconds of each date's session open and close (DST-correct via zoneinfo)."""
    day = pd.DatetimeIndex(dates.astype("datetime64[ns]"))
    tz = ZoneInfo(session.tz)

    def at(t: time) -> IntArray:
        local = day + pd.Timedelta(hours=t.hour, minutes=t.minute, seconds=t.second)
        stamps = local.tz_localize(tz, ambiguous="raise", nonexistent="raise").tz_convert("UTC")
        return np.asarray(stamps.as_unit("ns").asi8, dtype=np.int64)

    return at(session.open), at(session.close)


@dataclass(frozen=True)
class _TickArrays:
    ts_ns: IntArray
    code: IntArray
    price: FloatArray
    size: FloatArray


def _simulate_arrays(
    n_symbols: int,
    start: pd.Timestamp,
    n_ticks: int,
    *,
    seed: int,
    s0: float,
    mu: float,
    sigma: float,
    jump_intensity: float,
    jump_sigma: float,
    regimes: Regimes,
    session: Session,
    ticks_per_day: float,
) -> _TickArrays:
    if start.tzinfo is None:
        raise ValueError(f"start {start!r} is naive: pass a timezone-aware timestamp")
    if n_ticks < 0 or n_symbols < 1 or ticks_per_day <= 0 or s0 <= 0:
        raise ValueError("need n_ticks >= 0, at least one symbol, ticks_per_day > 0 and s0 > 0")
    if sigma < 0 or jump_intensity < 0 or jump_sigma < 0 or min(regimes.low, regimes.high) < 0:
        raise ValueError("volatilities, regime multipliers and the jump intensity must be >= 0")
    if not 0.0 <= regimes.switch_prob <= 1.0:
        raise ValueError(f"regimes.switch_prob={regimes.switch_prob} is not a probability")
    rng = np.random.default_rng(seed)

    # First session at or after `start`, and how far into it (as a session fraction) we begin.
    local = start.tz_convert(ZoneInfo(session.tz))
    day0: np.datetime64 = np.datetime64(local.date(), "D")
    o_ns, c_ns = _session_bounds_ns(np.array([day0]), session)
    start_ns = int(start.as_unit("ns").value)
    u0 = 0.0
    if not np.is_busday(day0):
        day0 = np.busday_offset(day0, 0, roll="forward")
    elif start_ns >= c_ns[0]:
        day0 = np.busday_offset(day0, 1)
    else:
        u0 = max(0.0, (start_ns - int(o_ns[0])) / float(c_ns[0] - o_ns[0]))

    # Business (activity) time in days: a homogeneous Poisson process there is U-shaped in clock time.
    biz0 = float(_profile_cdf(np.array([u0]))[0])
    biz = biz0 + np.cumsum(rng.exponential(1.0 / ticks_per_day, n_ticks))
    day_idx = np.floor(biz).astype(np.int64)
    u = _profile_quantile(biz - day_idx)
    n_days = int(day_idx[-1]) + 1 if n_ticks else 1
    dates = np.busday_offset(day0, np.arange(n_days), roll="forward")
    open_ns, close_ns = _session_bounds_ns(dates, session)
    span = (close_ns - open_ns)[day_idx].astype(np.float64)
    ts_ns = open_ns[day_idx] + (u * span).astype(np.int64)
    ts_ns = ts_ns // _NS_PER_US * _NS_PER_US  # microsecond resolution, still non-decreasing
    if u0 > 0.0:  # never before `start` (its microsecond, rounded up)
        ts_ns = np.maximum(ts_ns, -(-start_ns // _NS_PER_US) * _NS_PER_US)

    code = rng.integers(0, n_symbols, n_ticks).astype(np.int64)
    price = np.empty(n_ticks, dtype=np.float64)
    minutes_per_day = max(1, round(float(c_ns[0] - o_ns[0]) / 60e9))
    clock = day_idx + u  # session clock in days, drives the regime chain
    jump_rate = jump_intensity * TRADING_DAYS_PER_YEAR
    kappa = np.expm1(0.5 * jump_sigma**2)
    for k in range(n_symbols):
        idx = np.flatnonzero(code == k)
        if idx.size == 0:
            continue
        # Variance accrues in business time: a day carries sigma^2/252, intraday vol is U-shaped too.
        dt = np.diff(biz[idx], prepend=biz0) / TRADING_DAYS_PER_YEAR
        minute = np.floor(clock[idx] * minutes_per_day).astype(np.int64)
        flips = rng.random(int(minute[-1]) + 1) < regimes.switch_prob
        state = (int(rng.integers(0, 2)) + np.cumsum(flips)) % 2
        vol = sigma * np.where(state[minute] == 1, regimes.high, regimes.low)
        n_jumps = rng.poisson(jump_rate * dt)
        jumps = jump_sigma * np.sqrt(n_jumps) * rng.standard_normal(idx.size)
        step = (mu - jump_rate * kappa - 0.5 * vol**2) * dt + vol * np.sqrt(dt) * rng.standard_normal(idx.size)
        price[idx] = s0 * np.exp(np.cumsum(step + jumps))
    price = np.maximum(np.round(price, 2), 0.01)
    size = np.maximum(1.0, np.rint(100.0 * np.exp(0.8 * rng.standard_normal(n_ticks)) * intraday_profile(u)))
    return _TickArrays(ts_ns=ts_ns, code=code, price=price, size=size)


def simulate_ticks(
    symbols: Sequence[str],
    start: pd.Timestamp,
    n_ticks: int,
    *,
    seed: int,
    s0: float = 100.0,
    mu: float = 0.05,
    sigma: float = 0.2,
    jump_intensity: float = 0.1,
    jump_sigma: float = 0.01,
    regimes: Regimes = Regimes(),
    session: Session = REGULAR_US_SESSION,
    ticks_per_day: float = 23_400.0,
) -> pd.DataFrame:
    """Simulate ``n_ticks`` trades in total over ``symbols`` from ``start`` on, inside weekday sessions.

    Model: each symbol follows GBM with Merton jumps in log space — drift ``mu`` and volatility ``sigma``
    (annualised, 252 trading days), jumps arriving at ``jump_intensity`` per trading day with log-size
    N(0, ``jump_sigma``²) and compensated drift, so E[S_t] = s0·exp(mu·t). ``sigma`` is multiplied by the
    current :class:`Regimes` state. Arrivals of all symbols form one Poisson process of mean
    ``ticks_per_day`` per session whose intensity follows :func:`intraday_profile` (more at the open and
    the close); each arrival picks a symbol uniformly. Variance accrues in that same activity time.

    Guaranteed: columns ``timestamp`` (datetime64[ns, UTC], microsecond resolution, non-decreasing, each
    inside ``[open, close)`` of a Monday-Friday session; the first at or after ``start``), ``symbol``
    (pandas ``string``), ``price`` (float64 rounded to cents, >= 0.01), ``size`` (float64, integer-valued,
    >= 1: log-normal with median 100 shares times the intraday profile). Identical output for identical
    arguments (``seed`` included). Raises ``ValueError`` for a naive ``start``, no or duplicate symbols,
    or out-of-range parameters.
    """
    names = list(symbols)
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate symbols in {names!r}")
    arrays = _simulate_arrays(
        len(names), start, n_ticks, seed=seed, s0=s0, mu=mu, sigma=sigma, jump_intensity=jump_intensity,
        jump_sigma=jump_sigma, regimes=regimes, session=session, ticks_per_day=ticks_per_day,
    )  # fmt: skip
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(arrays.ts_ns, utc=True).as_unit("ns"),
            "symbol": pd.array(np.asarray(names, dtype=object)[arrays.code], dtype="string"),
            "price": arrays.price,
            "size": arrays.size,
        }
    )


_ISO_WIDTH = 27  # YYYY-MM-DDTHH:MM:SS.ffffffZ


def _iso_utc_us(ts_ns: IntArray) -> pa.LargeStringArray:
    """ISO-8601 UTC strings with microseconds and ``Z``, built as one fixed-width byte matrix (vectorised)."""
    us = ts_ns // _NS_PER_US
    day, tod = np.divmod(us, 86_400_000_000)
    uniq, inverse = np.unique(day, return_inverse=True)
    day_text = np.datetime_as_string(uniq.astype("datetime64[D]"), unit="D")
    if any(len(t) != 10 for t in day_text):
        raise ValueError("timestamps outside years 0000-9999 cannot be written as ISO-8601 here")
    out = np.empty((us.size, _ISO_WIDTH), dtype=np.uint8)
    day_bytes = np.frombuffer("".join(day_text).encode("ascii"), dtype=np.uint8).reshape(-1, 10)
    out[:, :10] = day_bytes[inverse.ravel()]
    fields = ((11, 2, 3_600_000_000), (14, 2, 60_000_000), (17, 2, 1_000_000), (20, 6, 1))
    for col, sep in ((10, "T"), (13, ":"), (16, ":"), (19, "."), (26, "Z")):
        out[:, col] = ord(sep)
    rest = tod
    for col, width, unit in fields:
        value, rest = np.divmod(rest, unit)
        for k in range(width - 1, -1, -1):
            value, digit = np.divmod(value, 10)
            out[:, col + k] = digit + ord("0")
    offsets = np.arange(0, (us.size + 1) * _ISO_WIDTH, _ISO_WIDTH, dtype=np.int64)
    return pa.Array.from_buffers(pa.large_string(), us.size, [None, pa.py_buffer(offsets), pa.py_buffer(out)])


def simulate_tick_csv_bytes(
    n_ticks: int,
    symbols: Sequence[str],
    seed: int,
    *,
    start: pd.Timestamp | None = None,
) -> bytes:
    """A ticks CSV (``timestamp,symbol,price,size``) of :func:`simulate_ticks` with default parameters.

    Timestamps are ISO-8601 UTC with microseconds and a ``Z`` suffix (``2024-01-02T14:30:00.123456Z``),
    prices have at most two decimals, sizes are integers; a header line comes first, lines end with
    ``\\n``. ``start`` defaults to 2024-01-02 09:30 America/New_York. Built column-wise with numpy and
    Arrow (no per-row Python), so millions of rows take about a second.
    """
    names = list(symbols)
    first = start if start is not None else pd.Timestamp("2024-01-02 09:30", tz="America/New_York")
    arrays = _simulate_arrays(
        len(names), first, n_ticks, seed=seed, s0=100.0, mu=0.05, sigma=0.2, jump_intensity=0.1,
        jump_sigma=0.01, regimes=Regimes(), session=REGULAR_US_SESSION, ticks_per_day=23_400.0,
    )  # fmt: skip
    table = pa.table(
        {
            "timestamp": _iso_utc_us(arrays.ts_ns),
            "symbol": pa.array(names, type=pa.string()).take(pa.array(arrays.code)),
            "price": pa.array(arrays.price, type=pa.float64()),
            "size": pa.array(arrays.size.astype(np.int64), type=pa.int64()),
        }
    )
    sink = pa.BufferOutputStream()
    sink.write(b"timestamp,symbol,price,size\n")
    options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
    pa_csv.write_csv(table, sink, write_options=options)
    return bytes(sink.getvalue().to_pybytes())


_BAR_COLUMNS = ("timestamp", "symbol", "open", "high", "low", "close", "volume")


def _trading_dates(column: pd.Series) -> npt.NDArray[np.datetime64]:
    """The trading date of each bar: the wall-clock date of its timestamp (in its own zone if aware)."""
    stamps = pd.to_datetime(column)
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        stamps = stamps.dt.tz_localize(None)
    return np.asarray(stamps.dt.normalize().to_numpy(dtype="datetime64[ns]").astype("datetime64[D]"))


def _bridge_paths(
    o: FloatArray, h: FloatArray, lo: FloatArray, c: FloatArray, n: int, rng: np.random.Generator
) -> FloatArray:
    """One price path per day (rows) of ``n`` ticks pinned at open, high, low and close; see bridge_ticks."""
    days = o.size
    rows = np.arange(days)
    j = np.arange(n)
    width = h - lo
    flat = width <= 0
    hi_open, hi_close, lo_open, lo_close = o == h, c == h, o == lo, c == lo

    # Anchors: open at 0, close at n-1, each extreme at the open/close if it equals it, else at a random
    # interior tick (two distinct ones, order random).
    first = rng.integers(1, n - 1, days)
    second = rng.integers(1, n - 2, days)
    second = second + (second >= first)
    early, late = np.minimum(first, second), np.maximum(first, second)
    high_first = rng.random(days) < 0.5
    both = ~(hi_open | hi_close) & ~(lo_open | lo_close)
    hi_idx = np.where(hi_open, 0, np.where(hi_close, n - 1, np.where(both & ~high_first, late, early)))
    lo_idx = np.where(lo_open, 0, np.where(lo_close, n - 1, np.where(both & high_first, late, early)))
    anchor = np.zeros((days, n), dtype=bool)
    value = np.zeros((days, n), dtype=np.float64)
    anchor[:, 0] = anchor[:, -1] = True
    value[:, 0], value[:, -1] = o, c
    anchor[rows, hi_idx] = anchor[rows, lo_idx] = True
    value[rows, hi_idx], value[rows, lo_idx] = h, lo

    # Between two consecutive extreme anchors, a midpoint anchor strictly inside (low, high), so every
    # segment has exactly one extreme end.
    x, y = np.minimum(hi_idx, lo_idx), np.maximum(hi_idx, lo_idx)
    o_ext, c_ext = hi_open | lo_open, hi_close | lo_close
    mid_share = np.clip(0.5 + 0.15 * rng.standard_normal((3, days)), 0.2, 0.8)
    for k, (p, q, cond) in enumerate(
        ((np.zeros_like(x), x, o_ext), (x, y, np.ones_like(flat)), (y, np.full_like(y, n - 1), c_ext))
    ):
        need = ~flat & cond & (q - p >= 2)
        mid = (p + q) // 2
        anchor[rows[need], mid[need]] = True
        value[rows[need], mid[need]] = lo[need] + width[need] * mid_share[k, need]

    left = np.maximum.accumulate(np.where(anchor, j, 0), axis=1)
    right = np.minimum.accumulate(np.where(anchor, j, n - 1)[:, ::-1], axis=1)[:, ::-1]
    v_left = np.take_along_axis(value, left, axis=1)
    v_right = np.take_along_axis(value, right, axis=1)
    gap = np.maximum(right - left, 1)
    ext_left = (v_left == h[:, None]) | (v_left == lo[:, None])
    extreme = np.where(ext_left, v_left, v_right)
    reach = np.abs(np.where(ext_left, v_right, v_left) - extreme)
    t_from_ext = np.where(ext_left, j - left, right - j) / gap
    direction = np.where(extreme == lo[:, None], 1.0, -1.0)

    # A 3-D Brownian bridge pinned at both anchors of each segment; its norm around the straight line from
    # the extreme is a Bessel-3 bridge: Brownian motion conditioned to stay on one side of its extreme.
    walk = np.cumsum(rng.standard_normal((3, days, n)), axis=2)
    frac = (j - left) / gap
    bridge = np.stack(
        [
            w
            - np.take_along_axis(w, left, axis=1)
            - frac * (np.take_along_axis(w, right, axis=1) - np.take_along_axis(w, left, axis=1))
            for w in walk
        ]
    )
    norm = np.sqrt((bridge**2).sum(axis=0))
    interior = ~anchor & ~flat[:, None]
    room = width[:, None] - reach * t_from_ext  # X must stay below this (the far side of [low, high])
    ratio = np.divide(room, norm, out=np.full_like(room, np.inf), where=interior & (norm > 0))
    segment = np.cumsum(anchor, axis=1) - 1
    natural = 0.5 * width / np.sqrt(n - 1)
    scale = np.empty((days, int(segment.max()) + 1))
    for sid in range(scale.shape[1]):
        bound = np.where(segment == sid, ratio, np.inf).min(axis=1)
        scale[:, sid] = np.minimum(natural, 0.9 * bound)  # shrink the noise, never clip the path
    s = np.take_along_axis(scale, segment, axis=1)
    dist = np.sqrt((reach * t_from_ext + s * bridge[0]) ** 2 + (s * bridge[1]) ** 2 + (s * bridge[2]) ** 2)
    path = np.where(interior, extreme + direction * dist, value)
    # Floating-point safety net only (no-op unless low and high are a few ulps apart).
    inner_lo = np.nextafter(lo, h)[:, None]
    inner_hi = np.nextafter(h, lo)[:, None]
    path = np.where(interior, np.minimum(np.maximum(path, inner_lo), inner_hi), path)
    return np.where(flat[:, None], h[:, None], path)


def _split_volume(volume: FloatArray, n: int, rng: np.random.Generator) -> FloatArray:
    """Integer sizes per tick, U-shaped with log-normal jitter, each row summing exactly to the volume."""
    weight = intraday_profile(np.linspace(0.0, 1.0, n))[None, :] * np.exp(0.5 * rng.standard_normal((volume.size, n)))
    share = np.cumsum(weight, axis=1) / weight.sum(axis=1, keepdims=True)
    total = np.rint(volume)[:, None]
    cum = np.minimum(np.rint(total * share), total)  # cumulative rounding: remainder placed deterministically
    cum[:, -1] = total[:, 0]
    return np.diff(cum, axis=1, prepend=0.0)


def bridge_ticks(
    bars: pd.DataFrame,
    *,
    ticks_per_day: int = 390,
    seed: int,
    tz: str = "America/New_York",
    open_time: str = "09:30",
    close_time: str = "16:00",
) -> pd.DataFrame:
    """Synthesise ``ticks_per_day`` ticks inside each real daily bar, reproducing its OHLCV exactly.

    ``bars`` has columns ``timestamp`` (the trading date: naive, or tz-aware read as its wall-clock date),
    ``symbol``, ``open``, ``high``, ``low``, ``close``, ``volume`` (any row order).

    Each day's path is a concatenation of Brownian bridges open → first extreme → second extreme → close
    (the extremes at two distinct random interior ticks, high or low first at random); each segment is
    conditioned to stay on one side of its extreme (a Bessel-3 bridge) and its noise is scaled down — never
    clipped — so it stays inside [low, high]. Guaranteed exactly, per symbol and day:

    * the first tick's price is ``open`` and the last one's is ``close`` (the same float64 values);
    * every price lies in [low, high]; the maximum is ``high`` and the minimum is ``low``;
    * ``high`` and ``low`` are each attained at one tick only; where ``open`` or ``close`` equals an
      extreme that tick is the touch (so ``open == close == high`` touches the high twice), and on a flat
      day (``high == low``) every tick is that price;
    * sizes are integer-valued, >= 0, U-shaped over the day with random jitter, and sum exactly to
      ``round(volume)`` (cumulative rounding places the remainder deterministically);
    * timestamps are evenly spaced from the session open to the session close inclusive, in ``tz`` local
      time (DST-correct via zoneinfo), returned in UTC.

    Output columns ``timestamp`` (datetime64[ns, UTC]), ``symbol`` (``string``), ``price``, ``size``
    (float64), ``synthetic`` (bool, all True), sorted by time (ties keep the symbols' first-appearance
    order). One symbol's ticks depend only on ``seed``, the symbol and its own bars. Raises ``ValueError``
    for missing columns, ``ticks_per_day < 4``, NaNs, an inconsistent bar (``low > min(open, close)`` or
    ``high < max(open, close)``), a negative volume or a duplicate (symbol, date).
    """
    missing = [col for col in _BAR_COLUMNS if col not in bars.columns]
    if missing:
        raise ValueError(f"bars lack column(s) {missing}")
    if ticks_per_day < 4:
        raise ValueError(f"ticks_per_day={ticks_per_day}: need at least 4 (open, high, low, close)")
    session = Session(tz=tz, open=time.fromisoformat(open_time), close=time.fromisoformat(close_time))
    n = ticks_per_day
    dates_all = _trading_dates(bars["timestamp"])
    symbols_all = bars["symbol"].astype(str).to_numpy()
    frames: list[pd.DataFrame] = []
    for symbol in pd.unique(symbols_all):
        sel = np.flatnonzero(symbols_all == symbol)
        order = sel[np.argsort(dates_all[sel], kind="stable")]
        dates = dates_all[order]
        if np.any(dates[1:] == dates[:-1]):
            raise ValueError(f"{symbol}: duplicate trading dates in bars")
        o, h, lo, c, v = (bars[col].to_numpy(dtype=np.float64)[order] for col in _BAR_COLUMNS[2:])
        if not np.isfinite(np.stack([o, h, lo, c, v])).all():
            raise ValueError(f"{symbol}: NaN or infinite values in bars")
        bad = (lo > np.minimum(o, c)) | (h < np.maximum(o, c)) | (v < 0)
        if bad.any():
            raise ValueError(f"{symbol} {dates[np.argmax(bad)]}: inconsistent OHLC or negative volume")
        rng = np.random.default_rng([seed, zlib.crc32(str(symbol).encode())])
        price = _bridge_paths(o, h, lo, c, n, rng)
        size = _split_volume(v, n, rng)
        open_ns, close_ns = _session_bounds_ns(dates, session)
        ts = open_ns[:, None] + (np.arange(n, dtype=np.int64) * (close_ns - open_ns)[:, None]) // (n - 1)
        frames.append(pd.DataFrame({"ts": ts.ravel(), "symbol": symbol, "price": price.ravel(), "size": size.ravel()}))
    out = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame({"ts": np.array([], dtype=np.int64), "symbol": [], "price": [], "size": []})
    )
    out = out.iloc[np.argsort(out["ts"].to_numpy(), kind="stable")].reset_index(drop=True)
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(out["ts"].to_numpy(dtype=np.int64), utc=True).as_unit("ns"),
            "symbol": pd.array(out["symbol"].to_numpy(dtype=object), dtype="string"),
            "price": out["price"].to_numpy(dtype=np.float64),
            "size": out["size"].to_numpy(dtype=np.float64),
            "synthetic": np.ones(len(out), dtype=bool),
        }
    )
