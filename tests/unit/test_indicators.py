"""Incremental indicators agree with TA-Lib (or an independent numpy/pandas reference) after warm-up.

Every indicator is checked three ways — ``update`` point by point, ``update_many`` over random micro-batches, and
``batch`` — against the reference on the real SPY 1-minute bars and on hypothesis-generated bars (random walks,
tick-quantised or not, with flat stretches where high == low == close and bars without volume), to
``rtol=1e-9`` and ``atol=1e-9·scale`` (``scale`` = the magnitude the indicator's rounding errors scale with: the
price level for price-valued outputs, 100 for oscillators, total volume for OBV, ...). Warm-up outputs must be NaN
and the first one after it must not. A checkpoint taken mid-series (``state``/``from_state`` and pickle) must
continue bit-for-bit like the original.
"""

from __future__ import annotations

import itertools
import math
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from marketpulse.errors import ConfigError
from marketpulse.features.indicator_base import EmaState
from marketpulse.features.indicators import EMA, INDICATORS, VWAP, Indicator, batch, create, default_params

SPY = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "spy_1min_2011" / "SPY_1min_2011-01.csv"

Bars = dict[str, np.ndarray]
Ref = Callable[..., Any]

# ---------------------------------------------------------------------------------------------- references


def _windows(x: np.ndarray, p: int) -> np.ndarray:
    return sliding_window_view(x, p)


def ref_log_return(b: Bars) -> np.ndarray:
    c = b["close"]
    return np.concatenate(([np.nan], np.log(c[1:] / c[:-1])))


def ref_realized_vol(b: Bars, period: int, horizon: float | None = None) -> np.ndarray:
    r = ref_log_return(b)[1:]
    out = np.full(len(b["close"]), np.nan)
    if len(r) >= period:
        w = _windows(r, period)
        sd = np.where(w.max(axis=1) == w.min(axis=1), 0.0, w.std(axis=1, ddof=1))
        out[period:] = sd * math.sqrt(period if horizon is None else horizon)
    return out


def ref_zscore(b: Bars, period: int) -> np.ndarray:
    x = b["close"]
    out = np.full(len(x), np.nan)
    if len(x) >= period:
        w = _windows(x, period)
        d = w - w[:, -1:]  # deviations from the current close: exact (Sterbenz), so no rounding at price scale
        flat = w.max(axis=1) == w.min(axis=1)
        sd = np.where(flat, 1.0, d.std(axis=1))
        out[period - 1 :] = np.where(flat, 0.0, -d.mean(axis=1) / sd)
    return out


def ref_vwap(b: Bars, period: int | None) -> np.ndarray:
    tp = (b["high"] + b["low"] + b["close"]) / 3.0
    pv, v = tp * b["volume"], b["volume"]
    if period is None:  # session VWAP: pandas cumulative sums per session key
        frame = pd.DataFrame({"pv": pv, "v": v, "s": b.get("session", np.zeros(len(v)))})
        sums = frame.groupby("s", sort=False)[["pv", "v"]].cumsum()
        num, den = sums["pv"].to_numpy(), sums["v"].to_numpy()
    else:
        num, den = np.full(len(v), np.nan), np.full(len(v), np.nan)
        if len(v) >= period:
            num[period - 1 :] = _windows(pv, period).sum(axis=1)
            den[period - 1 :] = _windows(v, period).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _price(b: Bars) -> float:
    return float(np.max(np.abs(b["close"])))


def _ret(b: Bars) -> float:
    return float(np.nanmax(np.abs(ref_log_return(b)), initial=1e-12))


# name → (reference(bars, **params), scale(bars), hypothesis strategy for the parameters)
P = st.integers(2, 30)
SPECS: dict[str, tuple[Ref, Callable[[Bars], float], st.SearchStrategy[dict[str, Any]]]] = {
    "sma": (lambda b, period: talib.SMA(b["close"], period), _price, st.fixed_dictionaries({"period": P})),
    "ema": (lambda b, period: talib.EMA(b["close"], period), _price, st.fixed_dictionaries({"period": P})),
    "wma": (lambda b, period: talib.WMA(b["close"], period), _price, st.fixed_dictionaries({"period": P})),
    "dema": (lambda b, period: talib.DEMA(b["close"], period), _price, st.fixed_dictionaries({"period": P})),
    "rsi": (lambda b, period: talib.RSI(b["close"], period), lambda b: 100.0, st.fixed_dictionaries({"period": P})),
    "macd": (
        lambda b, fast, slow, signal: talib.MACD(b["close"], fast, slow, signal),
        _price,
        st.fixed_dictionaries({"fast": st.integers(2, 15), "slow": st.integers(2, 30), "signal": st.integers(2, 12)}),
    ),
    "bbands": (
        lambda b, period, nbdevup, nbdevdn: talib.BBANDS(b["close"], period, nbdevup, nbdevdn, talib.MA_Type.SMA),
        _price,
        st.fixed_dictionaries(
            {"period": P, "nbdevup": st.sampled_from([1.0, 2.0, 2.5]), "nbdevdn": st.sampled_from([1.0, 2.0])}
        ),
    ),
    "mom": (lambda b, period: talib.MOM(b["close"], period), _price, st.fixed_dictionaries({"period": P})),
    "roc": (lambda b, period: talib.ROC(b["close"], period), lambda b: 100.0, st.fixed_dictionaries({"period": P})),
    "atr": (
        lambda b, period: talib.ATR(b["high"], b["low"], b["close"], period),
        _price,
        st.fixed_dictionaries({"period": P}),
    ),
    "adx": (
        lambda b, period: talib.ADX(b["high"], b["low"], b["close"], period),
        lambda b: 100.0,
        st.fixed_dictionaries({"period": st.integers(2, 20)}),
    ),
    "stoch": (
        lambda b, fastk_period, slowk_period, slowd_period: talib.STOCH(
            b["high"], b["low"], b["close"], fastk_period, slowk_period, 0, slowd_period, 0
        ),
        lambda b: 100.0,
        st.fixed_dictionaries(
            {"fastk_period": st.integers(1, 14), "slowk_period": st.integers(1, 5), "slowd_period": st.integers(1, 5)}
        ),
    ),
    "willr": (
        lambda b, period: talib.WILLR(b["high"], b["low"], b["close"], period),
        lambda b: 100.0,
        st.fixed_dictionaries({"period": P}),
    ),
    "cci": (
        lambda b, period: talib.CCI(b["high"], b["low"], b["close"], period),
        lambda b: 100.0,
        st.fixed_dictionaries({"period": P}),
    ),
    "obv": (lambda b: talib.OBV(b["close"], b["volume"]), lambda b: float(b["volume"].sum()) + 1.0, st.just({})),
    "mfi": (
        lambda b, period: talib.MFI(b["high"], b["low"], b["close"], b["volume"], period),
        lambda b: 100.0,
        st.fixed_dictionaries({"period": P}),
    ),
    "log_return": (ref_log_return, _ret, st.just({})),
    "realized_vol": (
        ref_realized_vol,
        _ret,
        st.fixed_dictionaries({"period": P, "horizon": st.sampled_from([None, 1.0, 98280.0])}),
    ),
    "zscore": (ref_zscore, lambda b: 1.0, st.fixed_dictionaries({"period": P})),
    "vwap": (ref_vwap, _price, st.fixed_dictionaries({"period": st.sampled_from([None, 2, 5, 20])})),
}


def test_every_registered_indicator_has_a_reference() -> None:
    assert set(SPECS) == set(INDICATORS)


# ---------------------------------------------------------------------------------------------- helpers


def _matrix(out: Any, n_out: int) -> np.ndarray:
    """Outputs (array, dict of arrays, tuple of arrays, or list of per-point values) as an (n, n_out) matrix."""
    if isinstance(out, dict):
        out = tuple(out.values())
    if isinstance(out, tuple):
        return np.column_stack(out) if len(out[0]) else np.empty((0, n_out))
    return np.asarray(out, dtype=np.float64).reshape(-1, n_out)


def _inputs(ind: Indicator, b: Bars) -> dict[str, np.ndarray]:
    names = (*ind.inputs, *(k for k in ind.optional_inputs if k in b))
    return {k: b[k] for k in names}


def run_incremental(ind: Indicator, b: Bars) -> np.ndarray:
    a = _inputs(ind, b)
    rows = [ind.update(**dict(zip(a, row, strict=True))) for row in zip(*(a[k].tolist() for k in a), strict=True)]
    return _matrix(rows, len(ind.outputs))


def run_many(ind: Indicator, b: Bars, sizes: list[int], vectorised: bool = True) -> np.ndarray:
    """``update_many`` over consecutive micro-batches of the given sizes (cycled); ``vectorised`` forces the
    vectorised path even for the small ones (by default those below ``scalar_below`` points loop ``update``)."""
    if vectorised:
        ind.scalar_below = 0  # type: ignore[misc]
    a = _inputs(ind, b)
    n, i, k, parts, start = len(b["close"]), 0, 0, [], ind.count
    while i < n:
        m = sizes[k % len(sizes)]
        parts.append(_matrix(ind.update_many(**{key: v[i : i + m] for key, v in a.items()}), len(ind.outputs)))
        i, k = i + m, k + 1
        assert ind.count == start + min(i, n), f"{ind.name}: count {ind.count} after {min(i, n)} points"
    return np.vstack(parts) if parts else np.empty((0, len(ind.outputs)))


def assert_parity(name: str, got: np.ndarray, ref: np.ndarray, warmup: int, scale: float, what: str) -> None:
    n = len(ref)
    assert got.shape == ref.shape, f"{name} {what}: shape {got.shape} != {ref.shape}"
    assert np.isnan(got[: min(warmup, n)]).all(), f"{name} {what}: a value before the end of warm-up ({warmup})"
    if n > warmup:
        assert not np.isnan(got[warmup]).all() or np.isnan(ref[warmup]).all(), f"{name} {what}: NaN after warm-up"
    np.testing.assert_allclose(
        got[warmup:], ref[warmup:], rtol=1e-9, atol=1e-9 * scale, err_msg=f"{name} {what} vs reference"
    )


def check_indicator(name: str, params: dict[str, Any], b: Bars, sizes: list[int]) -> None:
    ref_fn, scale_fn, _ = SPECS[name]
    ind = create(name, **params)
    ref = _matrix(ref_fn(b, **ind.params()), len(ind.outputs))
    scale = scale_fn(b)
    assert_parity(name, run_incremental(ind, b), ref, ind.warmup, scale, "update")
    assert_parity(name, run_many(create(name, **params), b, sizes), ref, ind.warmup, scale, "update_many")
    mixed = run_many(create(name, **params), b, [*sizes, 100], vectorised=False)
    assert_parity(name, mixed, ref, ind.warmup, scale, "update_many (small batches by update)")
    assert_parity(name, _matrix(ind.batch(**_inputs(ind, b)), len(ind.outputs)), ref, ind.warmup, scale, "batch")


def check_checkpoint(name: str, params: dict[str, Any], b: Bars, cut: int, sizes: list[int]) -> None:
    """Mixed ``update``/``update_many`` up to ``cut``; the snapshot, its pickle and the original then continue
    identically (bit for bit) over the rest."""
    ind = create(name, **params)
    a = _inputs(ind, b)
    half = cut // 2
    run_incremental(ind, {k: v[:half] for k, v in a.items()})
    ind.scalar_below = 0  # type: ignore[misc]
    ind.update_many(**{k: v[half:cut] for k, v in a.items()})
    restored = type(ind).from_state(pickle.loads(pickle.dumps(ind.state())))
    unpickled = pickle.loads(pickle.dumps(ind))
    rest = {k: v[cut:] for k, v in a.items()}
    expected = run_many(ind, rest, sizes)
    for other in (restored, unpickled):
        np.testing.assert_array_equal(run_many(other, rest, sizes), expected, err_msg=f"{name} after restore")
        assert other.count == ind.count


# ---------------------------------------------------------------------------------------------- data


def make_bars(
    n: int,
    seed: int,
    level: float,
    vol: float,
    rel_tick: float | None,
    flats: list[tuple[int, int]],
    zero_volume: float,
    sessions: int,
) -> Bars:
    """A positive random walk with consistent OHLC; flat stretches have high == low == close (and keep a volume
    or not); ``rel_tick`` quantises prices to ``level·rel_tick``; session keys split the series in ``sessions``."""
    rng = np.random.default_rng(seed)
    close = level * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    spread_hi = np.abs(rng.normal(0.0, vol, n)) * close
    spread_lo = np.abs(rng.normal(0.0, vol, n)) * close
    high, low = close + spread_hi, np.maximum(close - spread_lo, close * 0.5)
    if rel_tick is not None:
        tick = level * rel_tick
        close = np.maximum(np.round(close / tick), 1.0) * tick
        high = np.maximum(np.ceil(high / tick) * tick, close)
        low = np.minimum(np.maximum(np.floor(low / tick), 1.0) * tick, close)
    for start, length in flats:
        stop = min(n, start + length)
        close[start:stop] = high[start:stop] = low[start:stop] = close[start]
    volume = rng.integers(1, 100_000, n).astype(np.float64)
    volume[rng.random(n) < zero_volume] = 0.0
    cuts = np.sort(rng.choice(np.arange(1, n), size=min(sessions, n - 1), replace=False)) if n > 1 else []
    session = np.zeros(n, dtype=np.int64)
    for c in cuts:
        session[c:] += 1
    return {"high": high, "low": low, "close": close, "volume": volume, "session": session + 20_000}


@st.composite
def bars_strategy(draw: st.DrawFn) -> Bars:
    n = draw(st.integers(40, 300))
    flats = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(2, 80)), max_size=4))
    return make_bars(
        n,
        seed=draw(st.integers(0, 2**32 - 1)),
        level=draw(st.sampled_from([0.5, 7.0, 126.0, 2500.0])),
        vol=draw(st.sampled_from([2e-4, 2e-3, 2e-2])),
        rel_tick=draw(st.sampled_from([None, 1e-5, 1e-4, 1e-3])),
        flats=flats,
        zero_volume=draw(st.sampled_from([0.0, 0.2, 0.9])),
        sessions=draw(st.integers(0, 4)),
    )


@pytest.fixture(scope="module")
def spy() -> Bars:
    if not SPY.is_file():
        pytest.skip(f"SPY 1-minute bars not found at {SPY} (../shared/data next to the checkout)")
    frame = pd.read_csv(SPY)
    b = {k: frame[k].to_numpy(np.float64) for k in ("high", "low", "close", "volume")}
    b["session"] = pd.to_datetime(frame["timestamp_utc"]).dt.strftime("%Y%m%d").astype(int).to_numpy()
    return b


# ---------------------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("name", sorted(SPECS))
def test_parity_on_spy_bars(name: str, spy: Bars) -> None:
    check_indicator(name, {}, spy, sizes=[1, 7, 390, 2, 1000, 13])
    check_checkpoint(name, {}, spy, cut=len(spy["close"]) // 3, sizes=[50, 1, 333])


@pytest.mark.parametrize("name", sorted(SPECS))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), b=bars_strategy(), sizes=st.lists(st.integers(1, 60), min_size=1, max_size=6))
def test_parity_on_random_bars(name: str, data: st.DataObject, b: Bars, sizes: list[int]) -> None:
    params = data.draw(SPECS[name][2], label="params")
    check_indicator(name, params, b, sizes)
    check_checkpoint(name, params, b, cut=data.draw(st.integers(0, len(b["close"])), label="cut"), sizes=sizes)


@pytest.mark.parametrize("name", ["sma", "wma", "bbands", "zscore", "realized_vol", "vwap"])
def test_running_sums_do_not_drift_on_a_long_series(name: str) -> None:
    """200k points on a trending random walk far from zero: the running sums are reseeded, so still ≤ 1e-9."""
    b = make_bars(200_000, seed=7, level=900.0, vol=1e-3, rel_tick=None, flats=[], zero_volume=0.0, sessions=0)
    params = {"period": 20} if name != "bbands" else {}
    ind = create(name, **params)
    ref = _matrix(SPECS[name][0](b, **ind.params()), len(ind.outputs))
    assert_parity(name, run_incremental(ind, b), ref, ind.warmup, SPECS[name][1](b), "update (long)")


def test_flat_series_gives_talib_answers() -> None:
    """All bars identical: divisions by zero everywhere; TA-Lib's answers are 0 (and bands collapse)."""
    c = np.full(60, 101.37)
    b: Bars = {"high": c, "low": c, "close": c, "volume": np.full(60, 500.0)}
    expected = {"rsi": 0.0, "willr": 0.0, "cci": 0.0, "mfi": 0.0, "adx": 0.0, "zscore": 0.0, "realized_vol": 0.0}
    for name, value in expected.items():
        ind = create(name)
        out = run_incremental(ind, b)[ind.warmup :]
        assert (out == value).all(), name
    assert (run_incremental(create("stoch"), b)[8:] == 0.0).all()
    bands = run_incremental(create("bbands"), b)[19:]
    np.testing.assert_allclose(bands, 101.37, rtol=1e-15)
    np.testing.assert_allclose(talib.BBANDS(c, 20, 2, 2, talib.MA_Type.SMA)[0][19:], 101.37, rtol=1e-15)


def test_adx_holds_while_there_is_no_directional_movement() -> None:
    """Highs and lows fixed, closes moving: TR > 0 but +DM = −DM = 0, so DX is undefined (0/0) for the first 50
    bars; TA-Lib leaves it out (the ADX holds) instead of propagating NaN — in every form."""
    rng = np.random.default_rng(5)
    close = np.r_[np.full(50, 10.0) + rng.uniform(-0.5, 0.5, 50), 10.0 + np.cumsum(rng.normal(0, 0.1, 100))]
    b: Bars = {"high": np.maximum(np.r_[np.full(50, 10.5), close[50:] + 0.2], close), "close": close}
    b["low"] = np.minimum(np.r_[np.full(50, 9.5), close[50:] - 0.2], close)
    for sizes in ([1], [7, 60], [150]):
        check_indicator("adx", {"period": 5}, b, sizes)


def test_update_is_bit_identical_to_talib_through_a_flat_stretch_that_underflows() -> None:
    """1500 flat bars with period 2: the Wilder averages of RSI and ADX decay into subnormal numbers, where TA-Lib's
    output is rounding noise; ``update`` repeats TA-Lib's arithmetic, so it matches bit for bit even there."""
    b = make_bars(2000, seed=11, level=20.0, vol=2e-3, rel_tick=1e-4, flats=[(300, 1500)], zero_volume=0.0, sessions=0)
    for name, ref in (("rsi", talib.RSI(b["close"], 2)), ("adx", talib.ADX(b["high"], b["low"], b["close"], 2))):
        got = run_incremental(create(name, period=2), b)[:, 0]
        np.testing.assert_array_equal(got, ref, err_msg=name)


def test_session_vwap_restarts_on_each_session_key() -> None:
    b = make_bars(500, seed=3, level=50.0, vol=2e-3, rel_tick=1e-4, flats=[], zero_volume=0.1, sessions=3)
    ref = ref_vwap(b, None)
    ind = VWAP()
    a = {k: b[k] for k in ("high", "low", "close", "volume")}
    got = [ind.update(**{k: float(v[i]) for k, v in a.items()}, session=int(b["session"][i])) for i in range(500)]
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    np.testing.assert_allclose(VWAP().batch(**a, session=b["session"]), ref, rtol=1e-12)
    # micro-batches cut exactly where sessions change, vectorised: the change is seen across the boundary
    cuts = [0, *np.flatnonzero(np.diff(b["session"])) + 1, 500]
    ind = VWAP()
    ind.scalar_below = 0  # type: ignore[misc]
    parts = [
        ind.update_many(**{k: v[lo:hi] for k, v in a.items()}, session=b["session"][lo:hi])
        for lo, hi in itertools.pairwise(cuts)
    ]
    np.testing.assert_allclose(np.concatenate(parts), ref, rtol=1e-12)
    # without keys it is one session since reset: the cumulative VWAP
    cum = np.cumsum((a["high"] + a["low"] + a["close"]) / 3.0 * a["volume"]) / np.cumsum(a["volume"])
    np.testing.assert_allclose(VWAP().update_many(**a), cum, rtol=1e-12)


# ---------------------------------------------------------------------------------------------- API


def test_registry_defaults_are_talibs() -> None:
    assert default_params("bbands") == {"period": 20, "nbdevup": 2.0, "nbdevdn": 2.0}
    assert default_params("stoch") == {"fastk_period": 5, "slowk_period": 3, "slowd_period": 3}
    assert default_params("macd") == {"fast": 12, "slow": 26, "signal": 9}
    assert create("stoch").warmup == 8 and create("macd").warmup == 33 and create("adx").warmup == 27
    for name, cls in INDICATORS.items():
        ind = cls()
        assert ind.name == name and type(ind)(**ind.params()).params() == ind.params()
        assert math.isnan(ind.get()) if len(ind.outputs) == 1 else all(map(math.isnan, ind.get()))


def test_batch_by_name_and_errors(spy: Bars) -> None:
    got = batch("macd", close=spy["close"], fast=5, slow=20, signal=4)
    assert isinstance(got, dict) and set(got) == {"macd", "signal", "hist"}
    np.testing.assert_array_equal(got["signal"], talib.MACD(spy["close"], 5, 20, 4)[1])
    with pytest.raises(ConfigError, match="unknown indicator"):
        create("nope")
    with pytest.raises(ConfigError, match="period"):
        create("sma", period=1)
    with pytest.raises(ConfigError):
        create("rsi", window=3)
    with pytest.raises(TypeError, match="missing inputs"):
        create("atr").update_many(close=spy["close"])
    with pytest.raises(ValueError, match="length"):
        create("atr").update_many(high=spy["high"], low=spy["low"][:-1], close=spy["close"])


def test_get_returns_the_last_value_of_update_many() -> None:
    c = np.linspace(10.0, 20.0, 100)
    for name in ("ema", "macd", "bbands", "rsi"):
        ind = create(name)
        out = _matrix(ind.update_many(close=c), len(ind.outputs))
        np.testing.assert_array_equal(np.array(ind.get(), dtype=float).reshape(-1), out[-1])


class _MetastockEMA(EMA):
    """EMA seeded with the first value instead of the SMA of the first ``period`` (a common non-TA-Lib variant)."""

    def reset(self) -> None:
        super().reset()
        self._ema = EmaState(self.period, seed_len=1)


def test_the_parity_check_catches_a_wrong_convention(spy: Bars) -> None:
    """The checks can fail: an EMA with another seed is rejected."""
    ref = _matrix(talib.EMA(spy["close"], 30), 1)
    got = run_incremental(_MetastockEMA(30), spy)
    with pytest.raises(AssertionError):
        np.testing.assert_allclose(got[29:], ref[29:], rtol=1e-9, atol=1e-9 * _price(spy))
    np.testing.assert_allclose(got[2000:], ref[2000:], rtol=1e-9)  # the seed's effect has decayed by then
