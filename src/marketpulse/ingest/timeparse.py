"""Timestamp parsing for sources: vectorised, tz-correct, and explicit about what failed.

Accepted forms: ISO 8601 with or without a zone offset (``2011-01-03 09:01:00``, ``2019-12-27T11:27:00-05:00``,
``...Z``), dates alone (``2012-09-04``: a daily record), Twitter's ``Wed Jan 01 03:59:03 +0000 2014`` and epoch
numbers (seconds, milliseconds, microseconds or nanoseconds, told apart by magnitude). Naive values are read in
the given IANA timezone; a local time that does not exist or is ambiguous (DST change) fails rather than guess.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NAT = np.iinfo(np.int64).min
_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")
_TWITTER_FORMAT = "%a %b %d %H:%M:%S %z %Y"


def _epoch_to_ns(values: np.ndarray) -> np.ndarray:
    mag = np.nanmax(np.abs(values)) if values.size else 0
    scale = 1 if mag > 1e17 else 10**3 if mag > 1e14 else 10**6 if mag > 1e11 else 10**9
    out = np.full(values.shape, NAT, dtype=np.int64)
    ok = np.isfinite(values)
    out[ok] = (values[ok] * scale).astype(np.int64)
    return out


def parse_timestamps(values: pa.Array | pa.ChunkedArray, naive_tz: str = "UTC") -> tuple[np.ndarray, bool]:
    """Parse a string column into int64 ns since the epoch (UTC), :data:`NAT` where unparsable.

    Returns ``(ns, date_only)``; ``date_only`` is True when every parsed value was a bare date (daily data).
    The fast path is one Arrow cast; mixed or broken columns fall back to a per-form pandas parse.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_timestamp(values.type):
        arr = values if values.type.tz else _localize(values, naive_tz)
        ns = pc.cast(arr, pa.timestamp("ns", "UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
        return np.where(np.asarray(values.is_null()), NAT, ns).astype(np.int64), False
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return _epoch_to_ns(values.cast(pa.float64()).to_numpy(zero_copy_only=False)), False
    strings = pc.utf8_trim_whitespace(values.cast(pa.string()))
    valid = strings.drop_null()
    first = valid[0].as_py() if len(valid) else ""
    date_only = bool(len(valid)) and pc.all(pc.equal(pc.utf8_length(valid), 10)).as_py() and first[4:5] == "-"
    try:
        if _OFFSET.search(first):
            ns = pc.cast(strings, pa.timestamp("ns", "UTC")).cast(pa.int64())
        else:
            ns = _localize(pc.cast(strings, pa.timestamp("ns")), naive_tz).cast(pa.int64())
        out = ns.to_numpy(zero_copy_only=False)
        return np.where(np.asarray(ns.is_null()), NAT, out).astype(np.int64), bool(date_only)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _slow_parse(strings.to_pandas(), naive_tz), bool(date_only)


def _localize(arr: pa.Array, tz: str) -> pa.Array:
    if tz == "UTC":
        return arr.cast(pa.timestamp("ns", "UTC"))
    return pc.assume_timezone(arr, timezone=tz, ambiguous="raise", nonexistent="raise")


def _slow_parse(series: pd.Series, naive_tz: str) -> np.ndarray:
    out = np.full(len(series), NAT, dtype=np.int64)
    s = series.astype("string")
    has_offset = s.str.contains(_OFFSET, na=False).to_numpy(bool)
    numeric = s.str.fullmatch(r"-?\d+(\.\d+)?", na=False).to_numpy(bool)
    twitter = s.str.match(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} \d", na=False).to_numpy(bool)
    aware = has_offset & ~twitter
    if aware.any():
        parsed = pd.to_datetime(s[aware], errors="coerce", utc=True, format="ISO8601")
        out[aware] = _ns(parsed)
    if twitter.any():
        parsed = pd.to_datetime(s[twitter], errors="coerce", utc=True, format=_TWITTER_FORMAT)
        out[twitter] = _ns(parsed)
    if numeric.any():
        out[numeric] = _epoch_to_ns(pd.to_numeric(s[numeric], errors="coerce").to_numpy(float))
    naive = ~(aware | twitter | numeric) & s.notna().to_numpy(bool)
    if naive.any():
        parsed = pd.to_datetime(s[naive], errors="coerce", format="ISO8601")
        try:
            loc = parsed.dt.tz_localize(naive_tz, ambiguous="NaT", nonexistent="NaT")
        except TypeError:  # already aware (mixed column); treat as given
            loc = parsed
        out[naive] = _ns(loc)
    return out


def _ns(parsed: pd.Series) -> np.ndarray:
    vals = parsed.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").to_numpy("datetime64[ns]").view(np.int64)
    return np.where(parsed.isna().to_numpy(bool), NAT, vals)


def parse_one(value: object, naive_tz: str = "UTC") -> datetime | None:
    """Parse one timestamp (str, number or datetime) to an aware UTC datetime; None when unparsable.

    Pure-Python fast paths (ISO 8601 via ``fromisoformat``, Twitter's format via ``strptime``); anything else
    goes through the same pandas parser as the column path.
    """
    if isinstance(value, datetime):
        return _aware(value, naive_tz)
    if isinstance(value, int | float) and not isinstance(value, bool):
        ns = int(_epoch_to_ns(np.array([float(value)]))[0])
        return None if ns == NAT else datetime.fromtimestamp(ns / 1e9, UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.strptime(text, _TWITTER_FORMAT)
        except ValueError:
            ns = int(_slow_parse(pd.Series([text]), naive_tz)[0])
            return None if ns == NAT else datetime.fromtimestamp(ns / 1e9, UTC)
    return _aware(parsed, naive_tz)


def _aware(ts: datetime, naive_tz: str) -> datetime | None:
    if ts.tzinfo is None:
        zone = _zone(naive_tz)
        local = ts.replace(tzinfo=zone)
        # a local time that does not exist or is ambiguous does not round-trip: refuse it
        if (
            local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != ts
            or ts.replace(fold=1, tzinfo=zone).utcoffset() != local.utcoffset()
        ):
            return None
        ts = local
    return ts.astimezone(UTC)


@functools.lru_cache(maxsize=32)
def _zone(name: str) -> tzinfo:
    return UTC if name == "UTC" else ZoneInfo(name)


def to_datetime_index(ns: np.ndarray) -> pd.DatetimeIndex:
    """int64 ns (with :data:`NAT`) → ``DatetimeIndex`` tz UTC (NaT kept)."""
    return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC")
