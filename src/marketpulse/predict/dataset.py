"""Engine-agnostic dataset building: labels, windows of per-bar feature vectors, time-ordered splits.

* :func:`label_moves` — direction of the future log return over ``horizon`` steps, with thresholds;
* :func:`feature_windows` — :class:`~marketpulse.predict.base.Samples` from a frame of per-bar feature vectors (as
  :func:`marketpulse.features.market.compute_features` makes them): windows of the ``window`` most recent rows of
  one symbol ending at the sample's bar (never across symbols, never with a NaN row), labelled by the move after;
* :func:`walk_forward` — expanding-window folds, purged and embargoed so that no training label overlaps a test fold;
* :func:`temporal_split` — named ``[start, end)`` date ranges, disjoint.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from marketpulse.errors import ConfigError
from marketpulse.predict.base import Samples

I64 = npt.NDArray[np.int64]


def label_moves(close: npt.ArrayLike, horizon: int, up: float = 0.0, down: float = 0.0, flat: bool = False) -> I64:
    """Label of the log return ``log(close[t + horizon] / close[t])`` of each step ``t``.

    ``> up`` → 1, ``< -down`` → 0, otherwise 2 when ``flat`` else -1 (drop). The last ``horizon`` steps and
    non-finite returns (a missing or non-positive price) are -1. ``up``, ``down`` are log-return magnitudes >= 0.
    """
    if horizon < 1:
        raise ConfigError(f"horizon must be >= 1 step, got {horizon}")
    if up < 0 or down < 0:
        raise ConfigError(f"thresholds must be >= 0 (up={up}, down={down})")
    c = np.asarray(close, dtype=np.float64)
    out = np.full(len(c), -1, dtype=np.int64)
    if len(c) <= horizon:
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.log(c[horizon:] / c[:-horizon])
    lab = np.where(r > up, 1, np.where(r < -down, 0, 2 if flat else -1))
    out[:-horizon] = np.where(np.isfinite(r), lab, -1)
    return out


def feature_windows(
    features: pd.DataFrame,
    closes: pd.Series | npt.ArrayLike,
    window: int,
    horizon: int,
    up: float = 0.0,
    down: float = 0.0,
    flat: bool = False,
    *,
    schema: str | None = None,
    max_span_ns: int | None = None,
) -> Samples:
    """Samples of windows of per-bar feature vectors.

    ``features`` has columns ``symbol, ts`` (datetime or int64 ns) and the feature columns (their order is
    ``feature_names``); ``closes`` holds each row's close, aligned by position. Per symbol (rows sorted by ``ts``;
    a duplicate ``(symbol, ts)`` is a :class:`ConfigError`), the sample of row ``i`` is the ``window`` rows ending
    at ``i`` (oldest first), ``y`` = :func:`label_moves` of the ``horizon`` rows after ``i``, ``prev`` = the label
    of the move over the ``horizon`` rows ending at ``i`` (-1 unknown). Windows holding a NaN row (indicator
    warm-up) and unlabelled rows are skipped. With ``max_span_ns``, a move whose rows span more than that (a
    session boundary, missing bars) is unlabelled, for ``y`` and ``prev``. ``schema`` defaults to the engine's
    :func:`marketpulse.features.market.schema_hash`. ``info["horizon_ns"]`` is ``max_span_ns`` or ``horizon``
    times the median bar step; ``info["typical_move"]`` the mean absolute log return of the labelled moves.
    """
    if window < 1:
        raise ConfigError(f"window must be >= 1 row, got {window}")
    missing = {"symbol", "ts"} - set(features.columns)
    if missing:
        raise ConfigError(f"feature frame lacks column(s) {', '.join(sorted(missing))}")
    names = tuple(str(c) for c in features.columns if c not in ("symbol", "ts"))
    close = np.asarray(closes, dtype=np.float64)
    if len(close) != len(features):
        raise ConfigError(f"{len(close)} closes for {len(features)} feature rows")
    if schema is None:
        from marketpulse.features.market import schema_hash

        schema = schema_hash()
    ts_all = _ns(features["ts"])
    sym_all = features["symbol"].astype(str).to_numpy()
    F = features[list(names)].to_numpy(np.float64)
    order = np.lexsort((ts_all, sym_all))
    ts_s, sym_s, F, close = ts_all[order], sym_all[order], F[order], close[order]
    same = (sym_s[1:] == sym_s[:-1]) & (ts_s[1:] == ts_s[:-1])
    if same.any():
        k = int(np.flatnonzero(same)[0])
        raise ConfigError(f"duplicate feature row for {sym_s[k]} at ts {ts_s[k]}")
    starts = np.flatnonzero(np.r_[True, sym_s[1:] != sym_s[:-1]])
    ends = np.r_[starts[1:], len(sym_s)]
    rows: list[I64] = []
    ys: list[I64] = []
    prevs: list[I64] = []
    moves: list[npt.NDArray[np.float64]] = []
    steps: list[I64] = []
    bad = np.r_[0, np.cumsum(~np.isfinite(F).all(axis=1))]
    for a, b in zip(starts, ends, strict=True):
        ts, c = ts_s[a:b], close[a:b]
        lab = label_moves(c, horizon, up, down, flat)
        if max_span_ns is not None and len(ts) > horizon:
            lab[:-horizon][ts[horizon:] - ts[:-horizon] > max_span_ns] = -1
        prev = np.r_[np.full(min(horizon, len(lab)), -1, np.int64), lab[:-horizon]]
        i = np.arange(window - 1, b - a)
        clean = bad[a + i + 1] - bad[a + i + 1 - window] == 0
        i = i[clean & (lab[i] >= 0)]
        rows.append(a + i)
        ys.append(lab[i])
        prevs.append(prev[i])
        with np.errstate(divide="ignore", invalid="ignore"):
            moves.append(np.abs(np.log(c[i + horizon] / c[i])))
        steps.append(np.diff(ts))
    idx = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    y = np.concatenate(ys) if ys else np.zeros(0, np.int64)
    prev_all = np.concatenate(prevs) if prevs else np.zeros(0, np.int64)
    X = F[idx[:, None] + np.arange(1 - window, 1)[None, :]].astype(np.float32).reshape(len(idx), window, len(names))
    ts_out, sym_out = ts_s[idx], sym_s[idx].astype(np.str_)
    final = np.lexsort((sym_out, ts_out))
    step = np.concatenate(steps) if steps else np.zeros(0, np.int64)
    horizon_ns = max_span_ns if max_span_ns is not None else int(horizon * np.median(step)) if len(step) else 0
    move = np.concatenate(moves) if moves else np.zeros(0)
    info: dict[str, Any] = {
        "window": window,
        "horizon": horizon,
        "horizon_ns": int(horizon_ns),
        "up": up,
        "down": down,
        "flat": flat,
        "n": len(y),
        "symbols": len(set(sym_out.tolist())),
        "typical_move": float(move.mean()) if len(move) else 0.0,
    }
    if len(y):
        info["from"], info["to"] = (str(np.datetime64(int(v), "ns")) for v in (ts_out.min(), ts_out.max()))
    return Samples(
        X[final], y[final], ts_out[final], sym_out[final], prev_all[final], names, schema, 3 if flat else 2, info
    )


def walk_forward(
    ts: npt.ArrayLike, folds: int, horizon_ns: int, embargo_ns: int = 0, min_train: float = 0.2
) -> list[tuple[I64, I64]]:
    """Expanding-window folds ``(train index, test index)`` over samples at times ``ts`` (int64 ns, any order).

    The first ``min_train`` share of the samples (in time) only trains; the rest is cut into ``folds`` consecutive
    test blocks of about equal size, each starting at a new time (samples sharing a time stay in one block). The
    training set of a block starting at ``t0`` is every sample before ``t0`` minus the **purged** ones, whose label
    period ``(ts, ts + horizon_ns]`` reaches ``t0`` (``ts + horizon_ns >= t0``), minus the **embargoed** ones,
    ``ts >= t0 - embargo_ns``. So for every training sample ``i`` and test sample ``j`` of a fold,
    ``ts_i + horizon_ns < ts_j``: no training label period overlaps the test fold. Indices are in time order; a
    fold left without training samples is skipped.
    """
    t = np.asarray(ts, dtype=np.int64)
    if folds < 1:
        raise ConfigError(f"folds must be >= 1, got {folds}")
    if not 0.0 < min_train < 1.0:
        raise ConfigError(f"min_train must be in (0, 1), got {min_train}")
    if horizon_ns < 0 or embargo_ns < 0:
        raise ConfigError(f"horizon_ns and embargo_ns must be >= 0 (got {horizon_ns}, {embargo_ns})")
    n = len(t)
    if n < folds + 1:
        raise ConfigError(f"{n} samples are too few for {folds} walk-forward folds")
    order = np.argsort(t, kind="stable").astype(np.int64)
    s = t[order]
    first = int(np.ceil(n * min_train))
    cuts = [first + (n - first) * k // folds for k in range(folds)]
    cuts = [*sorted({int(np.searchsorted(s, s[c], side="left")) for c in cuts if c < n}), n]
    out: list[tuple[I64, I64]] = []
    for lo, hi in itertools.pairwise(cuts):
        t0 = s[lo]
        keep = (s[:lo] + horizon_ns < t0) & (s[:lo] < t0 - embargo_ns)
        if keep.any() and hi > lo:
            out.append((order[:lo][keep], order[lo:hi]))
    if not out:
        raise ConfigError("no walk-forward fold has training samples (too few distinct times, or horizon too long)")
    return out


def temporal_split(samples: Samples, bounds: dict[str, tuple[str, str]]) -> dict[str, Samples]:
    """``{name: samples with start <= ts < end}`` for each ``name: (start, end)`` (dates or datetimes, naive = UTC).

    Ranges must be non-empty and pairwise disjoint (a sample in two splits would leak); each result's ``info``
    gets ``split`` and ``bounds``.
    """
    ranges: dict[str, tuple[int, int]] = {}
    for name, (a, b) in bounds.items():
        try:
            lo, hi = _utc_ns(a), _utc_ns(b)
        except (ValueError, TypeError):
            raise ConfigError(f"split {name!r}: bounds {a!r}, {b!r} are not dates") from None
        if lo >= hi:
            raise ConfigError(f"split {name!r}: start {a} is not before end {b}")
        ranges[name] = (lo, hi)
    spans = sorted((lo, hi, name) for name, (lo, hi) in ranges.items())
    for (_, hi1, n1), (lo2, _, n2) in itertools.pairwise(spans):
        if lo2 < hi1:
            raise ConfigError(f"splits {n1!r} and {n2!r} overlap")
    out: dict[str, Samples] = {}
    for name, (lo, hi) in ranges.items():
        part = samples.take((samples.ts >= lo) & (samples.ts < hi))
        part.info.update(split=name, bounds=list(bounds[name]))
        out[name] = part
    return out


def _utc_ns(value: str) -> int:
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value)


def _ns(column: pd.Series) -> I64:
    """Int64 ns of a datetime (naive = UTC, or tz-aware) or integer ``ts`` column."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        column = column.dt.tz_convert("UTC").dt.tz_localize(None)
    if pd.api.types.is_datetime64_any_dtype(column.dtype):
        return column.to_numpy("datetime64[ns]").view(np.int64)
    return column.to_numpy(np.int64)


__all__ = ["feature_windows", "label_moves", "temporal_split", "walk_forward"]
