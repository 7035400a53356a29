"""Timestamp parsing for sources: vectorised, tz-correct, and explicit about what failed.

Accepted forms: ISO 8601 with or without a zone offset (``2011-01-03 09:01:00``, ``2019-12-27T11:27:00-05:00``,
``...Z``), dates alone (``2012-09-04``: a daily record), US month-first dates (``11/5/2019 9:30``, never
read day-first), Twitter's ``Wed Jan 01 03:59:03 +0000 2014`` and epoch numbers (seconds, milliseconds,
microseconds or nanoseconds, told apart by magnitude). Naive values are read in the given IANA timezone;
a local time that does not exist or is ambiguous (DST change) fails rather than guess.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NAT = np.iinfo(np.int64).min
_OFFSET = re.compile(r"(?:Z|[+-]\d\d:?\d\d)$")
_NUMERIC = re.compile(r"-?\d+(\.\d+)?")
_US_DATE = r"\d{1,2}/\d{1,2}/\d{4}(?: \d{1,2}:\d{2}(?::\d{2})?)?"
_TWITTER_FORMAT = "%a %b %d %H:%M:%S %z %Y"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_to_ns(values: np.ndarray) -> np.ndarray:
    """Epoch numbers (int64, or float64 with NaN) → int64 ns; NAT where missing or beyond the int64 ns range.

    Whole numbers are scaled in integer arithmetic so that ms/us/ns epochs stay exact (a float64 holds
    ``1600000000123 * 10**6`` only to within 256 ns); a fraction is as precise as its float64.
    """
    finite = values[np.isfinite(values)].astype(np.float64)
    mag = np.abs(finite).max() if finite.size else 0
    scale = 1 if mag > 1e17 else 10**3 if mag > 1e14 else 10**6 if mag > 1e11 else 10**9
    out = np.full(values.shape, NAT, dtype=np.int64)
    limit = np.iinfo(np.int64).max // scale
    ok = (values > -limit) & (values < limit)  # False for NaN and inf
    whole = ok & (values == np.trunc(values)) if values.dtype.kind == "f" else ok
    out[whole] = values[whole].astype(np.int64) * scale
    frac = ok & ~whole  # fractional: scale the whole part exactly, round the fraction to the nanosecond
    units = np.trunc(values[frac])
    out[frac] = units.astype(np.int64) * scale + np.round((values[frac] - units) * scale).astype(np.int64)
    return out


def parse_timestamps(values: pa.Array | pa.ChunkedArray, naive_tz: str = "UTC") -> tuple[np.ndarray, bool]:
    """Parse a string column into int64 ns since the epoch (UTC), :data:`NAT` where unparsable.

    Returns ``(ns, date_only)``; ``date_only`` is True when every parsed value was a bare date (daily data).
    The fast path is one Arrow cast; mixed or broken columns fall back to a per-form pandas parse.
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_timestamp(values.type):
        try:
            arr = values if values.type.tz else _localize(values, naive_tz)
        except pa.ArrowInvalid:  # a local time in a DST gap or overlap: NAT for those only
            naive = pd.Series(values.cast(pa.timestamp("ns")).to_pandas(), dtype="datetime64[ns]")
            return _ns(naive.dt.tz_localize(naive_tz, ambiguous="NaT", nonexistent="NaT")), False
        ns = pc.cast(arr, pa.timestamp("ns", "UTC")).cast(pa.int64()).to_numpy(zero_copy_only=False)
        return np.where(np.asarray(values.is_null()), NAT, ns).astype(np.int64), False
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        numbers = values.cast(pa.int64() if pa.types.is_integer(values.type) else pa.float64())
        ns = _epoch_to_ns(numbers.fill_null(0).to_numpy(zero_copy_only=False))
        return np.where(np.asarray(values.is_null()), NAT, ns), False
    strings = pc.utf8_trim_whitespace(values.cast(pa.string()))
    valid = strings.drop_null()
    first = valid[0].as_py() if len(valid) else ""
    date_only = (
        bool(len(valid)) and not pc.any(pc.match_substring(valid, ":")).as_py() and ("-" in first[1:] or "/" in first)
    )
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
    numeric = s.str.fullmatch(_NUMERIC, na=False).to_numpy(bool)
    twitter = s.str.match(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} \d", na=False).to_numpy(bool)
    aware = has_offset & ~twitter
    if aware.any():
        parsed = pd.to_datetime(s[aware], errors="coerce", utc=True, format="ISO8601")
        out[aware] = _ns(parsed)
    if twitter.any():
        parsed = pd.to_datetime(s[twitter], errors="coerce", utc=True, format=_TWITTER_FORMAT)
        out[twitter] = _ns(parsed)
    if numeric.any():
        out[numeric] = _epoch_to_ns(np.array([_number(x) for x in s[numeric]]))
    naive = ~(aware | twitter | numeric) & s.notna().to_numpy(bool)
    if naive.any():
        us = s.str.fullmatch(_US_DATE, na=False).to_numpy(bool)
        parsed = pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]")[naive]
        iso, slash = naive & ~us, naive & us
        if iso.any():
            parsed[iso[naive]] = pd.to_datetime(s[iso], errors="coerce", format="ISO8601").to_numpy("datetime64[ns]")
        if slash.any():  # US month-first: 11/5/2019 9:30
            got = pd.Series(pd.NaT, index=s[slash].index, dtype="datetime64[ns]")
            for fmt in ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%m/%d/%Y"):  # never day-first
                try_fmt = pd.to_datetime(s[slash], errors="coerce", format=fmt)
                got = got.fillna(try_fmt.astype("datetime64[ns]"))
            parsed[slash[naive]] = got.to_numpy("datetime64[ns]")
        try:
            loc = parsed.dt.tz_localize(naive_tz, ambiguous="NaT", nonexistent="NaT")
        except TypeError:  # already aware (mixed column); treat as given
            loc = parsed
        out[naive] = _ns(loc)
    return out


def _number(text: str) -> float | int:
    """A numeric string as an int when whole and within int64 (exact), else a float."""
    if "." not in text and -(2**63) <= (whole := int(text)) < 2**63:
        return whole
    return float(text)


def _from_ns(ns: int) -> datetime | None:
    """int64 ns → aware UTC datetime, floored to the microsecond like the column path; None for NAT."""
    return None if ns == NAT else _EPOCH + timedelta(microseconds=ns // 1000)


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
        number = value if isinstance(value, float) or -(2**63) <= value < 2**63 else float(value)
        return _from_ns(int(_epoch_to_ns(np.array([number]))[0]))
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if _NUMERIC.fullmatch(text):  # an epoch number, as in the column path (not ISO basic ``20110103``)
        return parse_one(_number(text))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        try:
            parsed = datetime.strptime(text, _TWITTER_FORMAT)
        except ValueError:
            return _from_ns(int(_slow_parse(pd.Series([text]), naive_tz)[0]))
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
