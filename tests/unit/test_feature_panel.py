"""The cross-symbol panel: the same feature vectors as the per-symbol path (and TA-Lib), for any micro-batching."""

from __future__ import annotations

import itertools
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import marketpulse.features.market as market
from marketpulse.features.indicators import create
from marketpulse.features.market import FEATURES, LAGS, NAMES, FeatureSpec, FeatureState, compute_features
from marketpulse.features.panel import kernel_for

SPY = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "spy_1min_2011" / "SPY_1min_2011-01.csv"
RTOL, ATOL = 1e-9, 1e-12


def _frame(n: int, symbols: int, seed: int, flat: float = 0.0, zero_volume: float = 0.0) -> pd.DataFrame:
    """Random-walk bars per symbol at different price levels, with flat stretches (high = low = close, a repeated
    close) and zero-volume bars; rows ordered by time, then symbol."""
    rng = np.random.default_rng(seed)
    frames = []
    for k in range(symbols):
        steps = rng.normal(0, 1e-3, n)
        if flat:
            steps[rng.random(n) < flat] = 0.0
        close = (5.0 + 300 * k) * np.exp(np.cumsum(steps))
        spread = np.where(steps == 0.0, 0.0, np.abs(rng.normal(0, 5e-4, n)) * close)
        volume = rng.integers(100, 10_000, n).astype(float)
        volume[rng.random(n) < zero_volume] = 0.0
        frames.append(
            pd.DataFrame(
                {
                    "symbol": f"S{k:02d}",
                    "ts": pd.date_range("2024-01-02 14:31", periods=n, freq="1min", tz="UTC"),
                    "open": close,
                    "high": close + spread,
                    "low": close - spread,
                    "close": close,
                    "volume": volume,
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


def _values(frame: pd.DataFrame) -> np.ndarray:
    return frame.sort_values(["symbol", "ts"], kind="stable")[list(NAMES)].to_numpy(float)


def _per_symbol(bars: pd.DataFrame) -> pd.DataFrame:
    state = FeatureState()
    state.panel = None  # the per-symbol path only
    return compute_features(bars, state)[0]


def _in_batches(bars: pd.DataFrame, bounds: list[int], state: FeatureState | None = None) -> pd.DataFrame:
    state = state if state is not None else FeatureState()
    parts = [compute_features(bars.iloc[lo:hi], state)[0] for lo, hi in itertools.pairwise(bounds)]
    return pd.concat([p for p in parts if not p.empty], ignore_index=True)


def test_every_feature_indicator_has_a_panel_kernel() -> None:
    for f in FEATURES:
        assert kernel_for(create(f.indicator, **dict(f.params))) is not None, f.indicator


def test_warm_symbols_move_to_the_panel() -> None:
    bars = _frame(80, 5, seed=1)
    state = FeatureState()
    _in_batches(bars, [*range(0, len(bars), 37), len(bars)], state)
    assert state.panel is not None
    assert sorted(state.panel.rows) == [f"S{k:02d}" for k in range(5)] and not state.symbols


@settings(max_examples=30, deadline=None)
@given(
    symbols=st.integers(1, 9),
    seed=st.integers(0, 10_000),
    flat=st.sampled_from([0.0, 0.3, 0.9]),
    zero_volume=st.sampled_from([0.0, 0.5]),
    cuts=st.lists(st.integers(1, 1_799), max_size=25),
    drop=st.floats(0.0, 0.5),
)
def test_panel_equals_the_per_symbol_path(
    symbols: int, seed: int, flat: float, zero_volume: float, cuts: list[int], drop: float
) -> None:
    bars = _frame(200, symbols, seed, flat, zero_volume)
    bars = bars[np.random.default_rng(seed).random(len(bars)) >= drop].reset_index(drop=True)  # gaps per symbol
    bounds = [0, *sorted({c for c in cuts if c < len(bars)}), len(bars)]
    np.testing.assert_allclose(
        _values(_in_batches(bars, bounds)), _values(_per_symbol(bars)), rtol=RTOL, atol=ATOL, equal_nan=True
    )


def test_one_bar_per_symbol_per_micro_batch_equals_one_batch() -> None:
    bars = _frame(120, 6, seed=5, flat=0.2)
    bounds = [*range(0, len(bars), 6), len(bars)]
    np.testing.assert_allclose(
        _values(_in_batches(bars, bounds)), _values(_per_symbol(bars)), rtol=RTOL, atol=ATOL, equal_nan=True
    )


def test_no_look_ahead_through_the_panel() -> None:
    bars = _frame(200, 4, seed=2)
    cut = bars["ts"].iloc[len(bars) * 3 // 4]
    changed = bars.copy()
    future = changed["ts"] > cut
    factor = np.exp(np.random.default_rng(3).normal(0, 0.05, future.sum()))
    for c in ("open", "high", "low", "close"):
        changed.loc[future, c] *= factor
    changed.loc[future, "volume"] *= 7
    bounds = [*range(0, len(bars), 50), len(bars)]
    a, b = _in_batches(bars, bounds), _in_batches(changed, bounds)
    past = (a["ts"] <= cut).to_numpy()
    np.testing.assert_array_equal(_values(a[past]), _values(b[past]))
    assert not np.allclose(_values(a[~past]), _values(b[~past]), equal_nan=True), "the perturbation must matter"


def test_panel_state_pickles_mid_stream_and_continues_identically() -> None:
    bars = _frame(150, 3, seed=4)
    state = FeatureState()
    compute_features(bars.iloc[:300], state)
    assert state.panel is not None and state.panel.rows
    clone = pickle.loads(pickle.dumps(state))
    a, _ = compute_features(bars.iloc[300:], state)
    b, _ = compute_features(bars.iloc[300:], clone)
    np.testing.assert_array_equal(_values(a), _values(b))


def test_replayed_and_out_of_order_bars_are_skipped_in_the_panel() -> None:
    bars = _frame(100, 2, seed=6)
    state = FeatureState()
    compute_features(bars.iloc[:160], state)
    assert state.panel is not None and len(state.panel.rows) == 2
    assert compute_features(bars.iloc[100:160], state)[0].empty, "replayed bars do not advance the panel"
    rest = bars.iloc[160:]
    shuffled = pd.concat([rest.iloc[:4], rest.iloc[:2], rest.iloc[4:]], ignore_index=True)  # two stale bars inside
    out, _ = compute_features(shuffled, state)
    np.testing.assert_allclose(
        _values(out), _values(_per_symbol(bars).iloc[160:]), rtol=RTOL, atol=ATOL, equal_nan=True
    )


def test_a_feature_without_a_panel_kernel_keeps_symbols_on_the_per_symbol_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(market, "FEATURES", (*FEATURES, FeatureSpec("wma_10_gap", "wma", (("period", 10),))))
    monkeypatch.setattr(market, "NAMES", (*NAMES[:-6], "wma_10_gap", *NAMES[-6:]))
    bars = _frame(80, 2, seed=7)
    state = FeatureState()
    out = _in_batches(bars, [0, 70, 100, len(bars)], state)
    assert state.panel is None and len(state.symbols) == 2
    assert out["wma_10_gap"].notna().sum() > 0


@pytest.fixture(scope="module")
def spy_bars() -> pd.DataFrame:
    if not SPY.is_file():
        pytest.skip(f"SPY 1-minute bars not found at {SPY} (../shared/data next to the checkout)")
    frame = pd.read_csv(SPY, nrows=6_000)
    ts = pd.to_datetime(frame["timestamp_utc"]).dt.tz_localize("UTC")
    one = frame.assign(ts=ts, symbol="SPY")[["symbol", "ts", "open", "high", "low", "close", "volume"]]
    scaled = one.assign(symbol="XYZ", **{c: one[c] * 41.7 for c in ("open", "high", "low", "close")})
    return pd.concat([one, scaled]).sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


def test_panel_features_agree_with_talib_on_spy_bars(spy_bars: pd.DataFrame) -> None:
    """Each indicator feature computed through the panel (micro-batches of varied sizes) equals TA-Lib's batch
    function on the whole series, transformed the same way; lagged returns equal numpy's."""
    rng = np.random.default_rng(0)
    bounds = sorted({0, len(spy_bars), *rng.integers(1, len(spy_bars), 300).tolist()})
    out = _in_batches(spy_bars, bounds)
    warm = 1 + max(create(f.indicator, **dict(f.params)).warmup for f in FEATURES)
    for symbol, g in spy_bars.groupby("symbol"):
        got = out[out["symbol"] == symbol].sort_values("ts")
        a = {k: g[k].to_numpy(float) for k in ("high", "low", "close", "volume")}
        for f in FEATURES:
            ind = create(f.indicator, **dict(f.params))
            raw = ind.batch(**{k: a[k] for k in ind.inputs})
            values = raw[f.output] if isinstance(raw, dict) else raw
            with np.errstate(divide="ignore", invalid="ignore"):
                want = market._TRANSFORMS[f.transform](np.asarray(values, float), a["close"])
            np.testing.assert_allclose(got[f.name].to_numpy()[warm:], want[warm:], rtol=RTOL, atol=ATOL, err_msg=f.name)
        for lag in LAGS:
            want = np.log(a["close"][lag:] / a["close"][:-lag])
            np.testing.assert_allclose(got[f"ret_{lag}"].to_numpy()[lag:], want, rtol=RTOL, atol=ATOL)
