"""Timestamp parsing: the column path (:func:`parse_timestamps`) and the one-value path (:func:`parse_one`).

Both paths run over the same table of cases, so they cannot disagree on a form.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from marketpulse.ingest.timeparse import NAT, parse_one, parse_timestamps, to_datetime_index

NY = "America/New_York"


class Case(NamedTuple):
    value: str
    tz: str
    expected: str | None  # the instant in UTC (ISO 8601, up to ns); None: unparsable


CASES: dict[str, Case] = {
    # ISO 8601 without an offset: read in the given zone
    "naive-utc": Case("2011-01-03 09:01:00", "UTC", "2011-01-03T09:01:00Z"),
    "naive-ny-winter": Case("2011-01-03 09:01:00", NY, "2011-01-03T14:01:00Z"),
    "naive-ny-T": Case("2011-01-03T09:01:00", NY, "2011-01-03T14:01:00Z"),
    "naive-ny-summer": Case("2019-07-01 09:30:00", NY, "2019-07-01T13:30:00Z"),
    "naive-no-seconds": Case("2011-01-03 09:01", "UTC", "2011-01-03T09:01:00Z"),
    "naive-fraction": Case("2011-01-03 09:01:00.250", NY, "2011-01-03T14:01:00.250Z"),
    "padded": Case("  2011-01-03 09:01:00  ", "UTC", "2011-01-03T09:01:00Z"),
    # with an offset: the zone given for naive values does not matter
    "offset-minus": Case("2019-12-27T11:27:00-05:00", NY, "2019-12-27T16:27:00Z"),
    "offset-plus-half-hour": Case("2019-12-27T11:27:00+05:30", "UTC", "2019-12-27T05:57:00Z"),
    "offset-no-colon": Case("2019-12-27T11:27:00+0530", NY, "2019-12-27T05:57:00Z"),
    "zulu": Case("2019-12-27T16:27:00Z", NY, "2019-12-27T16:27:00Z"),
    "zulu-micros": Case("2019-12-27T16:27:00.123456Z", NY, "2019-12-27T16:27:00.123456Z"),
    # a bare date: midnight in the zone
    "date-utc": Case("2012-09-04", "UTC", "2012-09-04T00:00:00Z"),
    "date-ny": Case("2012-09-04", NY, "2012-09-04T04:00:00Z"),
    # DST in New York (2021: clocks jump 02:00→03:00 on Mar 14, fall back 02:00→01:00 on Nov 7)
    "dst-gap": Case("2021-03-14 02:30:00", NY, None),
    "dst-gap-utc-is-fine": Case("2021-03-14 02:30:00", "UTC", "2021-03-14T02:30:00Z"),
    "after-gap": Case("2021-03-14 03:30:00", NY, "2021-03-14T07:30:00Z"),
    "dst-overlap": Case("2021-11-07 01:30:00", NY, None),
    "before-overlap": Case("2021-11-07 00:30:00", NY, "2021-11-07T04:30:00Z"),
    "after-overlap": Case("2021-11-07 02:30:00", NY, "2021-11-07T07:30:00Z"),
    # Twitter
    "twitter": Case("Wed Jan 01 03:59:03 +0000 2014", NY, "2014-01-01T03:59:03Z"),
    "twitter-offset": Case("Tue Jul 01 12:00:00 -0400 2014", "UTC", "2014-07-01T16:00:00Z"),
    # epoch numbers as text, unit told by magnitude; always absolute (no zone applies)
    "epoch-s": Case("1600000000", "UTC", "2020-09-13T12:26:40Z"),
    "epoch-s-ny": Case("1600000000", NY, "2020-09-13T12:26:40Z"),
    "epoch-s-fraction": Case("1600000000.5", "UTC", "2020-09-13T12:26:40.5Z"),
    "epoch-s-quarter": Case("1600000000.25", "UTC", "2020-09-13T12:26:40.25Z"),  # exact in binary: exact here
    "epoch-s-negative-fraction": Case("-1.5", "UTC", "1969-12-31T23:59:58.5Z"),
    "epoch-ms": Case("1600000000123", "UTC", "2020-09-13T12:26:40.123Z"),
    "epoch-us": Case("1600000000123456", "UTC", "2020-09-13T12:26:40.123456Z"),
    "epoch-ns": Case("1600000000123456789", "UTC", "2020-09-13T12:26:40.123456789Z"),
    "epoch-negative": Case("-86400", "UTC", "1969-12-31T00:00:00Z"),
    "digits-are-epoch-not-compact-date": Case("20110103", "UTC", "1970-08-21T18:08:23Z"),
    # garbage
    "words": Case("not a date", "UTC", None),
    "month-13": Case("2021-13-01", "UTC", None),
    "feb-30": Case("2011-02-30 10:00:00", NY, None),
    "hour-25": Case("2011-01-03 25:00:00", "UTC", None),
    "empty": Case("", "UTC", None),
    "blank": Case("   ", NY, None),
}


def expected_ns(case: Case) -> int:
    return NAT if case.expected is None else pd.Timestamp(case.expected).as_unit("ns").value


def expected_dt(case: Case) -> datetime | None:
    """A datetime holds microseconds: the expected instant floored to the microsecond."""
    if case.expected is None:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=expected_ns(case) // 1000)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_column_path(case: Case) -> None:
    ns, _ = parse_timestamps(pa.array([case.value]), case.tz)
    assert ns.dtype == np.int64
    assert ns.tolist() == [expected_ns(case)]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_one_value_path(case: Case) -> None:
    got = parse_one(case.value, case.tz)
    assert got == expected_dt(case)
    if got is not None:
        assert got.utcoffset() == timedelta(0)


@pytest.mark.parametrize("tz", ["UTC", NY])
def test_a_mixed_column_parses_each_row_like_alone(tz: str) -> None:
    """A column mixing forms (and broken rows, and nulls) takes the per-form path: same answers row by row.

    Epoch numbers are left out: a column's unit is told from its largest magnitude (by design).
    """
    cases = [c for c in CASES.values() if c.tz == tz and not c.value.strip().lstrip("-").replace(".", "").isdigit()]
    assert len(cases) > 8
    values: list[str | None] = []
    want: list[int] = []
    for case in cases:
        values += [case.value, None]
        want += [expected_ns(case), NAT]
    ns, date_only = parse_timestamps(pa.array(values, pa.string()), tz)
    assert ns.tolist() == want
    assert date_only is False


# -- the column path: flags, nulls, typed columns ---------------------------------------------------------


def test_date_only_flag() -> None:
    assert parse_timestamps(pa.array(["2012-09-04", None, "2012-09-05"]), "UTC")[1] is True
    assert parse_timestamps(pa.array(["2012-09-04", "2012-09-05 10:00:00"]), "UTC")[1] is False
    assert parse_timestamps(pa.array(["2012-09-04T10:00:00Z"]), "UTC")[1] is False
    assert parse_timestamps(pa.array(["1600000000"]), "UTC")[1] is False
    assert parse_timestamps(pa.array([None, None], pa.string()), "UTC")[1] is False


def test_nulls_are_nat() -> None:
    ns, _ = parse_timestamps(pa.array([None, "2011-01-03 09:01:00", None]), "UTC")
    assert ns.tolist() == [NAT, pd.Timestamp("2011-01-03T09:01:00Z").value, NAT]
    ns, _ = parse_timestamps(pa.array([None, None], pa.string()), "UTC")
    assert ns.tolist() == [NAT, NAT]
    ns, _ = parse_timestamps(pa.array([], pa.string()), "UTC")
    assert ns.tolist() == []


def test_chunked_column() -> None:
    col = pa.chunked_array([["2011-01-03 09:01:00"], ["2011-01-04 09:01:00", None]])
    ns, _ = parse_timestamps(col, NY)
    assert ns.tolist() == [pd.Timestamp("2011-01-03T14:01Z").value, pd.Timestamp("2011-01-04T14:01Z").value, NAT]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1_600_000_000, None, 1_600_000_001], [1_600_000_000_000_000_000, NAT, 1_600_000_001_000_000_000]),
        ([1_600_000_000_123], [1_600_000_000_123_000_000]),  # exact: not through a float
        ([1_600_000_000_123_456], [1_600_000_000_123_456_000]),
        ([1_600_000_000_123_456_789], [1_600_000_000_123_456_789]),
        ([1_600_000_000.5, float("nan"), None], [1_600_000_000_500_000_000, NAT, NAT]),
        ([1_600_000_000_123.0], [1_600_000_000_123_000_000]),
    ],
)
def test_numeric_columns_are_epochs(values: list[float | None], expected: list[int]) -> None:
    ns, date_only = parse_timestamps(pa.array(values), NY)
    assert ns.tolist() == expected
    assert date_only is False


def test_naive_timestamp_column_is_read_in_the_zone_and_dst_problems_are_nat() -> None:
    col = pa.array(
        [datetime(2021, 1, 4, 9, 30), datetime(2021, 3, 14, 2, 30), None, datetime(2021, 11, 7, 1, 30)],
        pa.timestamp("us"),
    )
    ns, date_only = parse_timestamps(col, NY)
    assert ns.tolist() == [pd.Timestamp("2021-01-04T14:30Z").value, NAT, NAT, NAT]
    assert date_only is False
    ns, _ = parse_timestamps(col, "UTC")
    assert ns.tolist()[:2] == [pd.Timestamp("2021-01-04T09:30Z").value, pd.Timestamp("2021-03-14T02:30Z").value]


def test_aware_timestamp_column_keeps_its_instant() -> None:
    col = pa.array([datetime(2021, 1, 4, 14, 30, tzinfo=UTC), None], pa.timestamp("ms", "America/Chicago"))
    ns, _ = parse_timestamps(col, NY)
    assert ns.tolist() == [pd.Timestamp("2021-01-04T14:30Z").value, NAT]


def test_to_datetime_index_keeps_nat() -> None:
    idx = to_datetime_index(np.array([0, NAT, 1_600_000_000_000_000_000], dtype=np.int64))
    assert str(idx.tz) == "UTC"
    assert idx[0] == pd.Timestamp("1970-01-01T00:00Z")
    assert idx[1] is pd.NaT
    assert idx[2] == pd.Timestamp("2020-09-13T12:26:40Z")


# -- the one-value path: non-string inputs ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "tz", "expected"),
    [
        (datetime(2021, 1, 4, 9, 30), NY, datetime(2021, 1, 4, 14, 30, tzinfo=UTC)),
        (datetime(2021, 7, 1, 9, 30), NY, datetime(2021, 7, 1, 13, 30, tzinfo=UTC)),
        (datetime(2021, 1, 4, 9, 30), "UTC", datetime(2021, 1, 4, 9, 30, tzinfo=UTC)),
        (datetime(2021, 3, 14, 2, 30), NY, None),  # does not exist
        (datetime(2021, 11, 7, 1, 30), NY, None),  # ambiguous
        (
            datetime(2021, 1, 4, 9, 30, tzinfo=timezone(timedelta(hours=-5))),
            "UTC",
            datetime(2021, 1, 4, 14, 30, tzinfo=UTC),
        ),
        (datetime(2021, 11, 7, 1, 30, tzinfo=ZoneInfo(NY)), "UTC", datetime(2021, 11, 7, 5, 30, tzinfo=UTC)),  # aware
        (1_600_000_000, "UTC", datetime(2020, 9, 13, 12, 26, 40, tzinfo=UTC)),
        (1_600_000_000_123, NY, datetime(2020, 9, 13, 12, 26, 40, 123000, tzinfo=UTC)),
        (1_600_000_000_123_456_789, "UTC", datetime(2020, 9, 13, 12, 26, 40, 123456, tzinfo=UTC)),
        (1_600_000_000.25, "UTC", datetime(2020, 9, 13, 12, 26, 40, 250000, tzinfo=UTC)),
        (float("nan"), "UTC", None),
        (float("inf"), "UTC", None),
        (True, "UTC", None),
        (None, "UTC", None),
        (["2011-01-03"], "UTC", None),
    ],
)
def test_parse_one_non_strings(value: object, tz: str, expected: datetime | None) -> None:
    got = parse_one(value, tz)
    assert got == expected
    if got is not None:
        assert got.utcoffset() == timedelta(0)


def test_us_month_first_dates_column_and_one_value_agree() -> None:
    values = ["11/5/2019 9:30", "11/5/2019 16:00", "1/2/2020 9:31:15", "13/5/2019 9:30"]
    ns, date_only = parse_timestamps(pa.array(values), "America/New_York")
    assert not date_only
    expected = (
        pd.to_datetime(["2019-11-05 14:30:00", "2019-11-05 21:00:00", "2020-01-02 14:31:15"], utc=True)
        .as_unit("ns")
        .asi8.tolist()
    )
    assert ns[:3].tolist() == expected
    assert ns[3] == NAT  # there is no month 13: refused, not read day-first
    for value, want in zip(values[:3], expected, strict=True):
        got = parse_one(value, "America/New_York")
        assert got is not None and int(pd.Timestamp(got).value) == want
    assert parse_one(values[3], "America/New_York") is None


def test_us_dates_alone_are_daily() -> None:
    ns, date_only = parse_timestamps(pa.array(["11/1/2019", "11/4/2019"]), "UTC")
    assert date_only
    assert ns.tolist() == pd.to_datetime(["2019-11-01", "2019-11-04"], utc=True).as_unit("ns").asi8.tolist()
