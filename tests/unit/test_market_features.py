"""The feature vector: causal (no look-ahead), split-invariant, versioned by its schema hash."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from marketpulse.features.market import FEATURES, NAMES, FeatureState, compute_features, schema_hash


def _bars(n: int, symbols: tuple[str, ...] = ("AAA", "BBB"), seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for k, sym in enumerate(symbols):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
        spread = np.abs(rng.normal(0, 5e-4, n)) * close
        frames.append(
            pd.DataFrame(
                {
                    "symbol": sym,
                    "ts": pd.date_range("2024-01-02 14:31", periods=n, freq="1min", tz="UTC"),
                    "open": close * (1 + rng.normal(0, 2e-4, n)),
                    "high": close + spread + 0.01,
                    "low": close - spread - 0.01,
                    "close": close,
                    "volume": rng.integers(100, 10_000, n).astype(float) * (k + 1),
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    frame["high"] = frame[["open", "high", "close"]].max(axis=1)
    frame["low"] = frame[["open", "low", "close"]].min(axis=1)
    return frame.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)


def _values(frame: pd.DataFrame) -> np.ndarray:
    return frame.sort_values(["symbol", "ts"], kind="stable")[list(NAMES)].to_numpy(float)


def test_one_row_per_bar_with_every_feature_and_valid_values_after_warm_up() -> None:
    bars = _bars(200)
    out, _ = compute_features(bars, FeatureState())
    assert list(out.columns) == ["symbol", "ts", *NAMES]
    assert len(out) == len(bars)
    tail = out.groupby("symbol").tail(100)[list(NAMES)]
    assert not tail.isna().any().any(), "every feature is defined once the longest warm-up has passed"
    assert np.all(np.abs(tail[["rsi_14", "stoch_k", "stoch_d", "mfi_14", "willr_14"]].to_numpy()) <= 0.5)


def test_no_look_ahead_perturbing_the_future_changes_nothing_before() -> None:
    bars = _bars(300)
    cut = bars["ts"].iloc[len(bars) // 2]
    changed = bars.copy()
    future = changed["ts"] > cut
    rng = np.random.default_rng(9)
    factor = np.exp(rng.normal(0, 0.05, future.sum()))
    for c in ("open", "high", "low", "close"):
        changed.loc[future, c] *= factor
    changed.loc[future, "volume"] *= 7
    a, _ = compute_features(bars, FeatureState())
    b, _ = compute_features(changed, FeatureState())
    past = a["ts"] <= cut
    np.testing.assert_array_equal(_values(a[past]), _values(b[past]))
    assert not np.allclose(_values(a[~past]), _values(b[~past]), equal_nan=True), "the perturbation must matter"


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, 399), max_size=6))
def test_any_split_into_micro_batches_gives_identical_vectors(cuts: list[int]) -> None:
    bars = _bars(200)
    whole, _ = compute_features(bars, FeatureState())
    state = FeatureState()
    bounds = [0, *sorted(set(cuts)), len(bars)]
    parts = [compute_features(bars.iloc[lo:hi], state)[0] for lo, hi in itertools.pairwise(bounds)]
    split = pd.concat([p for p in parts if not p.empty], ignore_index=True)
    np.testing.assert_allclose(_values(split), _values(whole), rtol=1e-9, atol=1e-12, equal_nan=True)


def test_state_pickles_mid_stream_and_continues_identically() -> None:
    bars = _bars(120)
    state = FeatureState()
    compute_features(bars.iloc[:100], state)
    clone = pickle.loads(pickle.dumps(state))
    a, _ = compute_features(bars.iloc[100:], state)
    b, _ = compute_features(bars.iloc[100:], clone)
    np.testing.assert_array_equal(_values(a), _values(b))


def test_a_replayed_bar_does_not_advance_the_indicators_twice() -> None:
    bars = _bars(80)
    state = FeatureState()
    compute_features(bars, state)
    again, _ = compute_features(bars.iloc[-10:], state)
    assert again.empty
    after, _ = compute_features(_bars(81).iloc[-2:], state)
    assert len(after) == 2


def test_schema_hash_is_stable_and_changes_with_the_definition(monkeypatch: pytest.MonkeyPatch) -> None:
    import marketpulse.features.market as market

    h = schema_hash()
    assert h == schema_hash() and len(h) == 16
    assert FeatureState().schema == h
    monkeypatch.setattr(market, "FEATURES", FEATURES[:-1])
    assert market.schema_hash() != h


def test_bar_by_bar_scalar_path_equals_the_batch_path() -> None:
    bars = _bars(150)
    whole, _ = compute_features(bars, FeatureState())
    state = FeatureState()
    rows = [compute_features(bars.iloc[i : i + 1], state)[0] for i in range(len(bars))]
    one_by_one = pd.concat(rows, ignore_index=True)
    np.testing.assert_allclose(_values(one_by_one), _values(whole), rtol=1e-9, atol=1e-12, equal_nan=True)
