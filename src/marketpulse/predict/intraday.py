"""Next-N-minute direction on 1-minute bars, with the engine's feature vectors (models trained here serve live).

Bars → :func:`marketpulse.features.market.compute_features` (the engine's schema, hash included) →
:func:`marketpulse.predict.dataset.feature_windows`: a sample at bar ``t`` (``ts`` = the bar's **end**, like every
bar of the system) holds the feature vectors of the ``window`` bars ending at ``t``; ``y`` is the sign of the log
return of the close ``horizon`` bars later (thresholds ``up``/``down`` default 0: pure up/down, an exact zero move is
dropped). A move whose ``horizon`` bars span more than ``horizon`` minutes (a session boundary, or a minute
without trades) is not labelled.

* :func:`spy_samples` — the SPY 1-minute CSV (``timestamp_utc,open,high,low,close,volume``, UTC bar-end labels);
  regular hours only by default (bar ends 09:31..16:00 New York).
* :func:`lobster_samples` — the LOBSTER sample's ``derived_1min_bars/<T>_<date>_1min.csv`` (``timestamp_et`` = bar
  **start**, New York time; executions only). The raw message / order-book files are not needed for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from marketpulse.errors import ConfigError
from marketpulse.predict.base import Samples
from marketpulse.predict.dataset import feature_windows

MINUTE_NS = 60 * 10**9
OHLCV = ("open", "high", "low", "close", "volume")
EXCHANGE_TZ = "America/New_York"


def bar_samples(
    bars: pd.DataFrame,
    window: int = 30,
    horizon: int = 5,
    up: float = 0.0,
    down: float = 0.0,
    flat: bool = False,
    interval_ns: int = MINUTE_NS,
) -> Samples:
    """Samples from bars ``symbol, ts`` (bar end, naive UTC), ``open, high, low, close, volume`` of any symbols
    (rows with a missing or non-positive price, and repeated ``(symbol, ts)``, are dropped); labels need the
    ``horizon`` bars to span at most ``horizon * interval_ns``."""
    from marketpulse.features.market import FeatureState, compute_features, schema_hash

    bars = bars.copy()
    bars["ts"] = pd.to_datetime(bars["ts"])
    prices = bars[list(OHLCV[:4])]
    bars = bars[prices.notna().all(axis=1) & (prices > 0).all(axis=1) & bars["volume"].notna()]
    bars = bars.drop_duplicates(["symbol", "ts"], keep="last").sort_values(["ts", "symbol"], ignore_index=True)
    if bars.empty:
        raise ConfigError("no usable bars (every row has a missing or non-positive price)")
    features, _ = compute_features(bars, FeatureState())
    if len(features) != len(bars):
        raise ConfigError(f"feature rows ({len(features)}) do not match the bars ({len(bars)})")
    return feature_windows(
        features,
        bars["close"].to_numpy(float),
        window,
        horizon,
        up,
        down,
        flat,
        schema=schema_hash(),
        max_span_ns=horizon * interval_ns,
    )


def spy_samples(
    csv_path: Path,
    window: int = 30,
    horizon: int = 5,
    up: float = 0.0,
    down: float = 0.0,
    flat: bool = False,
    rth: bool = True,
    symbol: str | None = None,
) -> Samples:
    """Samples of a 1-minute bar CSV in the SPY file's layout (symbol: ``symbol`` or the file name up to ``_``);
    ``csv_path`` may also be a folder holding exactly one such CSV."""
    path = Path(csv_path)
    if path.is_dir():
        found = sorted(path.glob("*.csv"))
        if len(found) != 1:
            raise ConfigError(f"{path} holds {len(found)} CSV files: pass the 1-minute bar CSV file itself")
        path = found[0]
    if not path.is_file():
        raise ConfigError(f"1-minute bar file {path} does not exist (expected a CSV timestamp_utc,{','.join(OHLCV)})")
    frame = _read(path, ("timestamp_utc", *OHLCV))
    ts = pd.to_datetime(frame["timestamp_utc"], errors="coerce")
    if ts.isna().any():
        raise ConfigError(f"{path}: timestamp_utc {frame['timestamp_utc'][ts.isna()].iloc[0]!r} is not a datetime")
    bars = frame[list(OHLCV)].assign(ts=ts.to_numpy("datetime64[ns]"), symbol=symbol or _symbol_of(path))
    if rth:
        local = pd.DatetimeIndex(bars["ts"]).tz_localize("UTC").tz_convert(EXCHANGE_TZ)
        minute = np.asarray(local.hour * 60 + local.minute)
        bars = bars[(minute >= 9 * 60 + 31) & (minute <= 16 * 60) & np.asarray(local.day_of_week < 5)]
    samples = bar_samples(bars, window, horizon, up, down, flat)
    samples.info.update(dataset="spy", path=str(path), rth=rth)
    return samples


def lobster_samples(
    folder: Path, window: int = 30, horizon: int = 5, up: float = 0.0, down: float = 0.0, flat: bool = False
) -> Samples:
    """Samples of the LOBSTER 1-minute bars: ``folder`` is the sample's root (holding ``derived_1min_bars/``) or
    that folder itself; every ``<T>_*.csv`` in it is one symbol ``T``."""
    root = Path(folder)
    bars_dir = root / "derived_1min_bars" if (root / "derived_1min_bars").is_dir() else root
    files = sorted(bars_dir.glob("*.csv")) if bars_dir.is_dir() else []
    if not files:
        raise ConfigError(f"{root}: no derived_1min_bars/<T>_<date>_1min.csv files (LOBSTER 1-minute bars)")
    parts = []
    for file in files:
        frame = _read(file, ("timestamp_et", *OHLCV))
        start = pd.to_datetime(frame["timestamp_et"], errors="coerce")
        if start.isna().any():
            raise ConfigError(f"{file}: timestamp_et {frame['timestamp_et'][start.isna()].iloc[0]!r} is not a datetime")
        end = start.dt.tz_localize(EXCHANGE_TZ).dt.tz_convert("UTC").dt.tz_localize(None) + pd.Timedelta(minutes=1)
        parts.append(frame[list(OHLCV)].assign(ts=end.to_numpy("datetime64[ns]"), symbol=_symbol_of(file)))
    samples = bar_samples(pd.concat(parts, ignore_index=True), window, horizon, up, down, flat)
    samples.info.update(dataset="lobster", path=str(root))
    return samples


def _symbol_of(path: Path) -> str:
    return path.name.split("_")[0].split(".")[0].upper()


def _read(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path} cannot be read as CSV: {str(e).splitlines()[0] if str(e) else e}") from None
    for col in columns:
        if col not in frame.columns:
            raise ConfigError(f"{path} has no {col!r} column (expected {','.join(columns)})")
    for col in OHLCV:
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


__all__ = ["bar_samples", "lobster_samples", "spy_samples"]
