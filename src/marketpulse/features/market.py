"""The model feature vector per symbol and bar, defined once and versioned by a schema hash.

:data:`FEATURES` lists every feature: the indicator it comes from (:mod:`marketpulse.features.indicators`, TA-Lib
exact), its parameters, which output, and how it is normalised so that one model can read many symbols (prices
divided out, oscillators centred and scaled to about [-1, 1]). :func:`schema_hash` hashes that definition (and
:data:`SCHEMA_VERSION`): a model stores it and refuses vectors of another schema.

:func:`compute_features` is a pure stage function: bars of many symbols (time order per symbol) and a
:class:`FeatureState` in, one row per input bar out (NaN while an indicator warms up), state carried. Every
feature at time ``t`` uses bars with ``ts <= t`` only (causal indicators; tested by perturbing the future), and
any split of a stream into micro-batches gives identical vectors (to rounding).

Two paths compute the same numbers. A symbol starts on the **per-symbol** path (its own indicator objects, with
TA-Lib's warm-up and seeding rules); once every indicator is warm it moves to the **panel**
(:mod:`marketpulse.features.panel`), where all warm symbols of a micro-batch are computed together as 2-D arrays —
the per-symbol Python overhead otherwise bounds the engine at many symbols.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from marketpulse.features.indicator_base import Indicator
from marketpulse.features.indicators import create
from marketpulse.features.panel import INPUTS, Kernel, Panel, RecursiveKernel, WindowKernel, kernel_for, zscore_window

SCHEMA_VERSION = 1
LAGS = (1, 5, 15)
VOLUME_Z = 20
"""Window of the z-score of log volume."""
EXCHANGE_TZ = "America/New_York"


@dataclass(frozen=True)
class FeatureSpec:
    """``name`` = ``transform(output of indicator(**params)`` on the bar inputs, close, volume)``."""

    name: str
    indicator: str
    params: tuple[tuple[str, Any], ...] = ()
    output: str = "value"
    transform: str = "identity"  # see _TRANSFORMS


_TRANSFORMS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {  # (indicator values, close)
    "identity": lambda v, c: v,
    "per_close": lambda v, c: v / c,
    "pct_centred": lambda v, c: v / 100.0 - 0.5,  # 0..100 oscillators → -0.5..0.5
    "pct": lambda v, c: v / 100.0,
    "willr": lambda v, c: v / 100.0 + 0.5,  # -100..0 → -0.5..0.5
    "cci": lambda v, c: np.clip(v / 200.0, -2.0, 2.0),
    "close_over_minus_1": lambda v, c: c / v - 1.0,
}

FEATURES: tuple[FeatureSpec, ...] = (
    FeatureSpec("rsi_14", "rsi", (("period", 14),), transform="pct_centred"),
    FeatureSpec("macd_hist", "macd", (), "hist", "per_close"),
    FeatureSpec("macd_line", "macd", (), "macd", "per_close"),
    FeatureSpec("bb_upper", "bbands", (("period", 20),), "upper", "close_over_minus_1"),
    FeatureSpec("bb_lower", "bbands", (("period", 20),), "lower", "close_over_minus_1"),
    FeatureSpec("sma_30_gap", "sma", (("period", 30),), transform="close_over_minus_1"),
    FeatureSpec("ema_12_gap", "ema", (("period", 12),), transform="close_over_minus_1"),
    FeatureSpec("atr_14", "atr", (("period", 14),), transform="per_close"),
    FeatureSpec("adx_14", "adx", (("period", 14),), transform="pct"),
    FeatureSpec("stoch_k", "stoch", (), "slowk", "pct_centred"),
    FeatureSpec("stoch_d", "stoch", (), "slowd", "pct_centred"),
    FeatureSpec("willr_14", "willr", (("period", 14),), transform="willr"),
    FeatureSpec("cci_14", "cci", (("period", 14),), transform="cci"),
    FeatureSpec("mfi_14", "mfi", (("period", 14),), transform="pct_centred"),
    FeatureSpec("roc_10", "roc", (("period", 10),), transform="pct"),
    FeatureSpec("rvol_20", "realized_vol", (("period", 20),)),
    FeatureSpec("zscore_20", "zscore", (("period", 20),)),
)
EXTRA = (*(f"ret_{k}" for k in LAGS), "volume_z_20", "tod_sin", "tod_cos")
NAMES: tuple[str, ...] = (*(f.name for f in FEATURES), *EXTRA)


def schema_hash() -> str:
    """Hash of the feature definition (names, indicators, parameters, transforms, lags, version)."""
    spec = {
        "version": SCHEMA_VERSION,
        "features": [[f.name, f.indicator, list(map(list, f.params)), f.output, f.transform] for f in FEATURES],
        "extra": list(EXTRA),
        "lags": list(LAGS),
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _indicator_key(f: FeatureSpec) -> tuple[str, tuple[tuple[str, Any], ...]]:
    return f.indicator, f.params


IndicatorKey = tuple[str, tuple[tuple[str, Any], ...]]


def _new_indicators() -> dict[IndicatorKey, Indicator]:
    return {_indicator_key(f): create(f.indicator, **dict(f.params)) for f in FEATURES}


@cache
def _panel_plan(features: tuple[FeatureSpec, ...]) -> tuple[dict[IndicatorKey, Kernel], int, int] | None:
    """(kernels, tail, warm count) for the panel, or None when an indicator of ``features`` has no panel kernel.
    A symbol moves to the panel after ``warm count`` bars: every indicator warm and ``tail`` bars remembered."""
    inds = _new_indicators()
    kernels = {key: kernel_for(ind) for key, ind in inds.items()}
    if any(k is None for k in kernels.values()):
        return None
    plan = {key: k for key, k in kernels.items() if k is not None}
    needs = [k.need for k in plan.values() if isinstance(k, WindowKernel)]
    tail = max(*needs, max(LAGS), VOLUME_Z - 1)
    return plan, tail, max(tail, 1 + max(ind.warmup for ind in inds.values()))


@dataclass
class _SymbolState:
    indicators: dict[IndicatorKey, Indicator]
    volume_z: Indicator
    closes: deque[float] = field(default_factory=lambda: deque(maxlen=max(LAGS)))
    last_ts: int = -(2**63)
    count: int = 0
    raw: dict[str, np.ndarray] = field(default_factory=lambda: {k: np.empty(0) for k in INPUTS})


@dataclass
class FeatureState:
    """Indicator state: per symbol while it warms up, then in the cross-symbol :class:`Panel` (picklable:
    engines checkpoint it)."""

    symbols: dict[str, _SymbolState] = field(default_factory=dict)
    schema: str = field(default_factory=schema_hash)
    panel: Panel | None = field(default_factory=lambda: Panel(p[1]) if (p := _panel_plan(FEATURES)) else None)

    def of(self, symbol: str) -> _SymbolState:
        s = self.symbols.get(symbol)
        if s is None:
            s = self.symbols[symbol] = _SymbolState(_new_indicators(), create("zscore", period=VOLUME_Z))
        return s

    def _maybe_to_panel(self, symbol: str, s: _SymbolState) -> None:
        plan = _panel_plan(FEATURES)
        if self.panel is None or plan is None or s.count < plan[2]:
            return
        if not all(ind.ready for ind in s.indicators.values()):
            return
        state = {key: k.extract(s.indicators[key]) for key, k in plan[0].items() if isinstance(k, RecursiveKernel)}
        self.panel.add(symbol, s.raw, state, s.last_ts, s.count)
        del self.symbols[symbol]


def compute_features(bars: pd.DataFrame, state: FeatureState) -> tuple[pd.DataFrame, FeatureState]:
    """Feature rows for ``bars`` (columns symbol, ts, open, high, low, close, volume; time order per symbol).

    Returns a frame ``symbol, ts, *NAMES`` with one row per bar, in input order. A bar not newer than the
    symbol's last one is skipped (a replayed or duplicate bar must not advance the indicators twice).
    """
    if bars.empty:
        return pd.DataFrame(columns=["symbol", "ts", *NAMES]), state
    ts_all = bars["ts"].to_numpy("datetime64[ns]").view(np.int64)
    arrays = {c: bars[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")}
    matrix = np.full((len(bars), len(NAMES)), np.nan)
    keep = np.zeros(len(bars), dtype=bool)
    minutes = _minute_of_day(ts_all)
    tod = np.column_stack((np.sin(2 * math.pi * minutes / 1440.0), np.cos(2 * math.pi * minutes / 1440.0)))
    panel = state.panel
    in_panel: list[tuple[int, np.ndarray]] = []
    for symbol, rows in bars.groupby("symbol", sort=False, observed=True).indices.items():
        name = str(symbol)
        idx = np.asarray(rows, dtype=np.int64)
        if panel is not None and name in panel.rows:
            in_panel.append((panel.rows[name], idx))
            continue
        s = state.of(name)
        idx = idx[_fresh(ts_all[idx], s.last_ts)]
        if idx.size == 0:
            continue
        keep[idx] = True
        new = {c: a[idx] for c, a in arrays.items()}
        matrix[idx, :-2] = _symbol_features(new, s)
        s.last_ts = int(ts_all[idx[-1]])
        s.count += idx.size
        if panel is not None:
            s.raw = {k: np.concatenate((s.raw[k], new[k]))[-panel.tail :] for k in INPUTS}
            state._maybe_to_panel(name, s)
    if in_panel and panel is not None:
        _panel_features(panel, in_panel, ts_all, arrays, matrix, keep)
    matrix[keep, -2:] = tod[keep]
    matrix[~np.isfinite(matrix)] = np.nan
    out = pd.DataFrame(matrix[keep], columns=list(NAMES))
    out.insert(0, "ts", bars["ts"].to_numpy()[keep])
    out.insert(0, "symbol", bars["symbol"].to_numpy()[keep])
    return out, state


def _fresh(ts: np.ndarray, last_ts: int) -> np.ndarray:
    """Mask of the bars newer than every earlier one of the symbol (a replayed or duplicate bar is skipped)."""
    return ts > np.maximum.accumulate(np.concatenate(([last_ts], ts)))[:-1]


def _panel_features(
    panel: Panel,
    groups: list[tuple[int, np.ndarray]],
    ts_all: np.ndarray,
    arrays: dict[str, np.ndarray],
    matrix: np.ndarray,
    keep: np.ndarray,
) -> None:
    """Feature columns of the bars of panel symbols (``groups``: panel row, bar indices), written into ``matrix``."""
    plan = _panel_plan(FEATURES)
    assert plan is not None
    kernels, t = plan[0], panel.tail
    first = np.array([idx[0] for _, idx in groups])
    rows = np.array([r for r, _ in groups], dtype=np.int64)
    if not (ts_all[first] > panel.last_ts[rows]).all() or any((np.diff(ts_all[i]) <= 0).any() for _, i in groups):
        groups = [(r, i[_fresh(ts_all[i], int(panel.last_ts[r]))]) for r, i in groups]
        groups = [(r, i) for r, i in groups if i.size]
        if not groups:
            return
    groups.sort(key=lambda g: -g[1].size)
    rows = np.array([r for r, _ in groups], dtype=np.int64)
    counts = np.array([i.size for _, i in groups], dtype=np.int64)
    idx = np.concatenate([i for _, i in groups])
    local = np.repeat(np.arange(len(groups)), counts)
    pos = np.arange(idx.size) - np.repeat(np.cumsum(counts) - counts, counts)
    k = int(counts[0])
    new = {}
    for name in INPUTS:
        m = np.ones((len(groups), k))
        m[local, pos] = arrays[name][idx]
        new[name] = m
    cat, outputs = panel.advance(rows, counts, new, kernels)
    close = new["close"]
    cols: list[np.ndarray] = []
    with np.errstate(all="ignore"):
        for f in FEATURES:
            cols.append(_TRANSFORMS[f.transform](outputs[_indicator_key(f)][f.output], close))
        for lag in LAGS:
            cols.append(np.log(close / cat["close"][:, t - lag : t - lag + k]))
        cols.append(zscore_window(np.log1p(np.maximum(cat["volume"], 0.0)), VOLUME_Z, t, k))
    matrix[idx, :-2] = np.stack(cols, axis=2)[local, pos]
    keep[idx] = True
    panel.last_ts[rows] = ts_all[idx[np.cumsum(counts) - 1]]


def _symbol_features(arrays: dict[str, np.ndarray], s: _SymbolState) -> np.ndarray:
    """The feature columns (all but the time-of-day pair) of one symbol's new bars, carrying its state."""
    close = arrays["close"]
    if len(close) == 1:  # live mode: one new bar per symbol — plain floats, no array calls
        return np.array([_one_bar({k: float(v[0]) for k, v in arrays.items()}, s)])
    outputs = {key: ind.update_many(**{k: arrays[k] for k in ind.inputs}) for key, ind in s.indicators.items()}
    cols: list[np.ndarray] = []
    with np.errstate(divide="ignore", invalid="ignore"):
        for f in FEATURES:
            raw = outputs[_indicator_key(f)]
            values = raw[f.output] if isinstance(raw, dict) else raw
            cols.append(_TRANSFORMS[f.transform](np.asarray(values, float), close))
        history = np.concatenate((np.array(s.closes, dtype=float), close))
        idx = np.arange(len(close)) + len(s.closes)
        for k in LAGS:
            prev = np.where(idx - k >= 0, history[np.maximum(idx - k, 0)], np.nan)
            cols.append(np.log(close / prev))
    s.closes.extend(close.tolist())
    cols.append(np.asarray(s.volume_z.update_many(close=np.log1p(np.maximum(arrays["volume"], 0.0))), float))
    return np.column_stack(cols)


def _div(a: float, b: float) -> float:
    return a / b if b != 0 else math.nan


_SCALAR: dict[str, Callable[[float, float], float]] = {  # the same transforms as _TRANSFORMS, on floats
    "identity": lambda v, c: v,
    "per_close": lambda v, c: _div(v, c),
    "pct_centred": lambda v, c: v / 100.0 - 0.5,
    "pct": lambda v, c: v / 100.0,
    "willr": lambda v, c: v / 100.0 + 0.5,
    "cci": lambda v, c: min(max(v / 200.0, -2.0), 2.0) if v == v else v,
    "close_over_minus_1": lambda v, c: _div(c, v) - 1.0,
}


def _log_ratio(a: float, b: float) -> float:
    return math.log(a / b) if a > 0 and b > 0 else math.nan


def _one_bar(point: dict[str, float], s: _SymbolState) -> list[float]:
    """:func:`_symbol_features` for a single bar, with the scalar ``update`` of each indicator."""
    c = point["close"]
    results = {key: ind.update(**{k: point[k] for k in ind.inputs}) for key, ind in s.indicators.items()}
    out: list[float] = []
    for f in FEATURES:
        r = results[_indicator_key(f)]
        value = float(getattr(r, f.output)) if isinstance(r, tuple) else float(r)
        out.append(_SCALAR[f.transform](value, c))
    for k in LAGS:
        out.append(_log_ratio(c, s.closes[-k]) if len(s.closes) >= k else math.nan)
    s.closes.append(c)
    out.append(float(s.volume_z.update(close=math.log1p(max(point["volume"], 0.0)))))
    return out


def _minute_of_day(ts_ns: np.ndarray) -> np.ndarray:
    local = pd.DatetimeIndex(ts_ns.view("datetime64[ns]")).tz_localize("UTC").tz_convert(EXCHANGE_TZ)
    return np.asarray(local.hour * 60 + local.minute, dtype=float)
