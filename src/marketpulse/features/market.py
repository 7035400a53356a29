"""The model feature vector per symbol and bar, defined once and versioned by a schema hash.

:data:`FEATURES` lists every feature: the indicator it comes from (:mod:`marketpulse.features.indicators`, TA-Lib
exact), its parameters, which output, and how it is normalised so that one model can read many symbols (prices
divided out, oscillators centred and scaled to about [-1, 1]). :func:`schema_hash` hashes that definition (and
:data:`SCHEMA_VERSION`): a model stores it and refuses vectors of another schema.

:func:`compute_features` is a pure stage function: bars of many symbols (time order per symbol) and a
:class:`FeatureState` in, one row per input bar out (NaN while an indicator warms up), state carried. Every
feature at time ``t`` uses bars with ``ts <= t`` only (causal indicators; tested by perturbing the future), and
any split of a stream into micro-batches gives identical vectors.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from marketpulse.features.indicator_base import Indicator
from marketpulse.features.indicators import create

SCHEMA_VERSION = 1
LAGS = (1, 5, 15)
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


@dataclass
class _SymbolState:
    indicators: dict[tuple[str, tuple[tuple[str, Any], ...]], Indicator]
    volume_z: Indicator
    closes: deque[float] = field(default_factory=lambda: deque(maxlen=max(LAGS)))
    last_ts: int = -(2**63)


@dataclass
class FeatureState:
    """Per-symbol indicator state (picklable: engines checkpoint it)."""

    symbols: dict[str, _SymbolState] = field(default_factory=dict)
    schema: str = field(default_factory=schema_hash)

    def of(self, symbol: str) -> _SymbolState:
        s = self.symbols.get(symbol)
        if s is None:
            inds = {_indicator_key(f): create(f.indicator, **dict(f.params)) for f in FEATURES}
            s = self.symbols[symbol] = _SymbolState(inds, create("zscore", period=20))
        return s


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
    for symbol, rows in bars.groupby("symbol", sort=False, observed=True).indices.items():
        s = state.of(str(symbol))
        idx = np.asarray(rows, dtype=np.int64)
        ts = ts_all[idx]
        fresh = ts > np.maximum.accumulate(np.concatenate(([s.last_ts], ts)))[:-1]
        if not fresh.all():
            idx, ts = idx[fresh], ts[fresh]
        if idx.size == 0:
            continue
        keep[idx] = True
        matrix[idx, :-2] = _symbol_features({c: a[idx] for c, a in arrays.items()}, s)
        matrix[idx, -2:] = tod[idx]
        s.last_ts = int(ts[-1])
    matrix[~np.isfinite(matrix)] = np.nan
    out = pd.DataFrame(matrix[keep], columns=list(NAMES))
    out.insert(0, "ts", bars["ts"].to_numpy()[keep])
    out.insert(0, "symbol", bars["symbol"].to_numpy()[keep])
    return out, state


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
