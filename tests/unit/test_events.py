"""The event model and its versioned wire codec (msgpack and JSON)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketpulse.errors import CodecError
from marketpulse.events import (
    EVENT_TYPES,
    WIRE_VERSION,
    Alert,
    Article,
    Bar,
    BarBatch,
    DeadLetter,
    Event,
    FeatureBatch,
    Post,
    Prediction,
    SentimentScore,
    Signal,
    Tick,
    TickBatch,
    decode,
    encode,
    schema_header,
)

FORMATS = ("msgpack", "json")
_LOW, _HIGH = datetime(1900, 1, 1), datetime(2200, 1, 1)

# -- strategies ---------------------------------------------------------------------------------------------

utc_times = st.datetimes(min_value=_LOW, max_value=_HIGH, timezones=st.just(UTC))
fixed_offsets = st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
offset_times = st.datetimes(min_value=_LOW, max_value=_HIGH, timezones=fixed_offsets)
aware_times = st.one_of(utc_times, offset_times)

int64s = st.integers(min_value=-(2**63), max_value=2**63 - 1)
ingest = st.integers(min_value=0, max_value=2**63 - 1)
floats = st.floats(allow_nan=False, allow_infinity=False)  # JSON has no NaN/inf
text = st.text(max_size=30)
opt_text = st.none() | text
symbols = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ.", min_size=1, max_size=6)
float_maps = st.dictionaries(st.text(max_size=8), floats, max_size=4)


def _posts(cls: type[Post]) -> st.SearchStrategy[Post]:
    return st.builds(
        cls,
        ts=aware_times,
        ingest_ns=ingest,
        id=text,
        text=text,
        source=text,
        author=opt_text,
        symbols=st.lists(symbols, max_size=4).map(tuple),
        engagement=st.none() | floats,
        url=opt_text,
        title=opt_text,
    )


def _columns(n: int) -> st.SearchStrategy[list[float]]:
    # the columnar buffers are raw little-endian bytes: NaN, inf and -0.0 must survive bit for bit
    return st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n)


# nanoseconds that fit a datetime (the batch's ``ts`` is built from the newest one)
batch_ns = st.integers(min_value=-(2**62), max_value=2**62)


def _tick_batches(n: int) -> st.SearchStrategy[TickBatch]:
    return st.builds(
        TickBatch.from_arrays,
        symbol=symbols,
        ts_ns=st.lists(batch_ns, min_size=n, max_size=n),
        price=_columns(n),
        size=_columns(n),
        seq=st.none() | st.lists(st.integers(-(2**31), 2**31 - 1), min_size=n, max_size=n),
        synthetic=st.booleans(),
        ingest_ns=ingest,
    )


def _feature_batches(n: int) -> st.SearchStrategy[FeatureBatch]:
    names = st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=4, unique=True).map(tuple)
    return names.flatmap(
        lambda cols: st.builds(
            FeatureBatch.from_arrays,
            symbol=symbols,
            ts_ns=st.lists(batch_ns, min_size=n, max_size=n),
            names=st.just(cols),
            values=st.lists(_columns(len(cols)), min_size=n, max_size=n),
            schema=text,
            ingest_ns=ingest,
        )
    )


def _bar_batches(n: int) -> st.SearchStrategy[BarBatch]:
    return st.builds(
        BarBatch.from_arrays,
        symbol=symbols,
        ts_ns=st.lists(batch_ns, min_size=n, max_size=n),
        o=_columns(n),
        h=_columns(n),
        lo=_columns(n),
        c=_columns(n),
        v=_columns(n),
        interval_s=int64s,
        ingest_ns=ingest,
    )


sizes = st.integers(min_value=1, max_value=12)

STRATEGIES: dict[type[Event], st.SearchStrategy[Any]] = {
    Tick: st.builds(
        Tick, ts=aware_times, ingest_ns=ingest, symbol=symbols, price=floats, size=floats, synthetic=st.booleans()
    ),
    Bar: st.builds(
        Bar,
        ts=aware_times,
        ingest_ns=ingest,
        symbol=symbols,
        open=floats,
        high=floats,
        low=floats,
        close=floats,
        volume=floats,
        interval_s=int64s,
    ),
    Post: _posts(Post),
    Article: _posts(Article),
    SentimentScore: st.builds(
        SentimentScore,
        ts=aware_times,
        ingest_ns=ingest,
        symbol=symbols,
        source=text,
        model=text,
        polarity=floats,
        intensity=floats,
        probs=float_maps,
        ref_id=opt_text,
    ),
    Prediction: st.builds(
        Prediction, ts=aware_times, ingest_ns=ingest, symbol=symbols, model=text, horizon_s=int64s, p_up=floats
    ),
    Signal: st.builds(
        Signal,
        ts=aware_times,
        ingest_ns=ingest,
        symbol=symbols,
        score=floats,
        components=float_maps,
        weights=float_maps,
    ),
    Alert: st.builds(
        Alert,
        ts=aware_times,
        ingest_ns=ingest,
        rule=text,
        severity=st.sampled_from(["info", "warning", "critical"]),
        message=text,
        symbol=st.none() | symbols,
    ),
    DeadLetter: st.builds(
        DeadLetter,
        ts=aware_times,
        ingest_ns=ingest,
        source=text,
        position=text,
        field=text,
        reason=text,
        record=text,
        kind=text,
        detail=text,
    ),
    TickBatch: sizes.flatmap(_tick_batches),
    BarBatch: sizes.flatmap(_bar_batches),
    FeatureBatch: sizes.flatmap(lambda n: _feature_batches(n)),
}


def test_every_event_type_has_a_strategy() -> None:
    """A new event type must get a round-trip strategy here (the property tests below cover the dict)."""
    assert set(STRATEGIES) == set(EVENT_TYPES)
    assert len(EVENT_TYPES) == len(set(EVENT_TYPES))


# -- round trips --------------------------------------------------------------------------------------------


def _assert_round_trip(event: Event, fmt: str) -> None:
    back = decode(encode(event, fmt), fmt)  # type: ignore[arg-type]
    assert type(back) is type(event)
    assert back == event
    assert back.ts == event.ts
    assert back.ts.utcoffset() == timedelta(0)
    assert back.ingest_ns == event.ingest_ns


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda cls: cls.__name__)
@given(data=st.data())
def test_round_trip_every_event_type(cls: type[Event], fmt: str, data: st.DataObject) -> None:
    event = data.draw(STRATEGIES[cls])
    assert type(event) is cls
    _assert_round_trip(event, fmt)


@given(ts=offset_times)
def test_construction_normalises_any_offset_to_utc(ts: datetime) -> None:
    tick = Tick(ts=ts, symbol="AAPL", price=1.0)
    assert tick.ts == ts  # the same instant...
    assert tick.ts.utcoffset() == timedelta(0)  # ...expressed in UTC
    assert tick.ts.replace(tzinfo=None) == (ts - ts.utcoffset()).replace(tzinfo=None)  # type: ignore[operator]


@pytest.mark.parametrize("fmt", FORMATS)
def test_named_zone_is_normalised_and_survives_the_wire(fmt: str) -> None:
    local = datetime(2021, 7, 1, 9, 30, tzinfo=ZoneInfo("America/New_York"))  # EDT, UTC-4
    tick = Tick(ts=local, symbol="AAPL", price=1.0)
    assert tick.ts == datetime(2021, 7, 1, 13, 30, tzinfo=UTC)
    assert tick.ts.tzinfo == UTC
    back = decode(encode(tick, fmt), fmt)  # type: ignore[arg-type]
    assert back.ts == datetime(2021, 7, 1, 13, 30, tzinfo=UTC)
    assert back.ts.utcoffset() == timedelta(0)


def test_default_format_is_msgpack() -> None:
    tick = Tick(ts=datetime(2020, 1, 2, tzinfo=UTC), symbol="A", price=2.5)
    assert encode(tick) == encode(tick, "msgpack")
    assert encode(tick) != encode(tick, "json")
    assert decode(encode(tick)) == tick


def test_json_is_a_readable_versioned_envelope() -> None:
    tick = Tick(ts=datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC), symbol="A", price=2.5, size=10.0)
    version, body = msgspec.json.decode(encode(tick, "json"))
    assert version == WIRE_VERSION
    assert body["type"] == "Tick"
    assert body["symbol"] == "A"
    assert body["ts"] == "2020-01-02T03:04:05Z"


# -- naive times are refused --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [Tick, Alert, DeadLetter], ids=lambda cls: cls.__name__)
def test_naive_datetime_is_refused_on_construction(cls: type[Event]) -> None:
    """A naive time is ambiguous: it must not be read silently in the machine's local zone."""
    fields: dict[type[Event], dict[str, Any]] = {
        Tick: {"symbol": "A", "price": 1.0},
        Alert: {"rule": "r", "severity": "info", "message": "m"},
        DeadLetter: {"source": "s", "position": "p", "field": "f", "reason": "r", "record": "{}"},
    }
    with pytest.raises(ValueError, match="naive"):
        cls(ts=datetime(2020, 1, 1, 12, 0), **fields[cls])


def test_naive_datetime_is_refused_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only")
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        with pytest.raises(ValueError):
            Tick(ts=datetime(2020, 1, 1, 12, 0), symbol="A", price=1.0)
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.parametrize("fmt", FORMATS)
def test_decoding_a_naive_time_fails(fmt: str) -> None:
    body = {"type": "Tick", "ts": "2020-01-01T12:00:00", "symbol": "A", "price": 1.0}
    data = (msgspec.json.encode if fmt == "json" else msgspec.msgpack.encode)([WIRE_VERSION, body])
    with pytest.raises(CodecError, match="timezone"):
        decode(data, fmt)  # type: ignore[arg-type]


# -- versions and garbage -----------------------------------------------------------------------------------


def _reenveloped(event: Event, fmt: str, version: int, **changes: Any) -> bytes:
    codec = msgspec.json if fmt == "json" else msgspec.msgpack
    _, body = codec.decode(encode(event, fmt))  # type: ignore[arg-type]
    return codec.encode([version, {**body, **changes}])


TICK = Tick(ts=datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC), symbol="AAPL", price=100.0)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("version", [0, WIRE_VERSION + 1, 99])
def test_wrong_version_with_a_valid_body_is_refused(fmt: str, version: int) -> None:
    assert decode(_reenveloped(TICK, fmt, WIRE_VERSION), fmt) == TICK  # type: ignore[arg-type]
    with pytest.raises(CodecError, match=rf"version {version}\b"):
        decode(_reenveloped(TICK, fmt, version), fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
def test_wrong_version_with_another_body_shape_names_the_version(fmt: str) -> None:
    data = _reenveloped(TICK, fmt, WIRE_VERSION + 1, price="one hundred", venue="X")
    with pytest.raises(CodecError, match=rf"version {WIRE_VERSION + 1}\b"):
        decode(data, fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_bad_body_of_the_right_version_is_an_invalid_event(fmt: str) -> None:
    with pytest.raises(CodecError, match="invalid event"):
        decode(_reenveloped(TICK, fmt, WIRE_VERSION, price="one hundred"), fmt)  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="invalid event"):
        decode(_reenveloped(TICK, fmt, WIRE_VERSION, type="Quote"), fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "data",
    [b"", b"\xc1", b"\x00\x01garbage", b"{", b"null", b"[1]", b'[1, {"type": "Tick"}]', b"\x92\x01\xc0"],
)
def test_garbage_raises_codec_error(fmt: str, data: bytes) -> None:
    with pytest.raises(CodecError):
        decode(data, fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", FORMATS)
@given(data=st.binary(max_size=64))
def test_arbitrary_bytes_never_escape_as_another_error(fmt: str, data: bytes) -> None:
    try:
        event = decode(data, fmt)  # type: ignore[arg-type]
    except CodecError:
        return
    assert isinstance(event, Event)  # astronomically unlikely, but then it must be a real event


# -- columnar batches ---------------------------------------------------------------------------------------


def test_tick_batch_round_trips_arrays_exactly() -> None:
    ts = np.array([1_700_000_000_123_456_789, 1_600_000_000_000_000_001, 1_700_000_000_000_000_000], dtype=np.int64)
    price = np.array([101.25, np.nan, -0.0])
    size = np.array([1e-300, np.inf, 3.0])
    seq = np.array([7, -1, 2**31 - 1], dtype=np.int32)
    batch = TickBatch.from_arrays("MSFT", ts, price, size, seq=seq, synthetic=True, ingest_ns=42)
    assert len(batch) == 3
    assert batch.key == "MSFT"
    # the newest time of the batch, floored to the microsecond (never later than a tick in it)
    assert batch.ts == datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=UTC)

    for fmt in FORMATS:
        back = decode(encode(batch, fmt), fmt)  # type: ignore[arg-type]
        assert isinstance(back, TickBatch)
        assert back == batch
        frame = back.to_frame()
        assert list(frame.columns) == ["symbol", "ts", "price", "size", "seq"]
        assert (frame["symbol"] == "MSFT").all()
        np.testing.assert_array_equal(pd.DatetimeIndex(frame["ts"]).as_unit("ns").asi8, ts)
        assert str(frame["ts"].dt.tz) == "UTC"
        # bit-exact: NaN, inf and the sign of zero survive
        assert frame["price"].to_numpy().tobytes() == price.astype("<f8").tobytes()
        assert frame["size"].to_numpy().tobytes() == size.astype("<f8").tobytes()
        np.testing.assert_array_equal(frame["seq"].to_numpy(), seq)
        assert frame["seq"].dtype == np.int32
        assert back.synthetic is True
        assert back.ingest_ns == 42


def test_tick_batch_accepts_lists_and_big_endian_arrays() -> None:
    ts = [3_000_000_000, 1_000_000_000, 2_000_000_000]
    big = np.array(ts, dtype=">i8")
    from_list = TickBatch.from_arrays("A", ts, [1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    from_big = TickBatch.from_arrays("A", big, np.array([1.0, 2.0, 3.0], dtype=">f8"), [0, 0, 0])
    assert from_list == from_big
    frame = from_big.to_frame()
    assert frame["ts"].tolist() == [pd.Timestamp(t, unit="ns", tz="UTC") for t in ts]  # order kept, not sorted
    assert frame["price"].tolist() == [1.0, 2.0, 3.0]
    assert frame["seq"].tolist() == [0, 0, 0]  # no seq given: zeros
    assert from_big.ts == datetime(1970, 1, 1, 0, 0, 3, tzinfo=UTC)


def test_batch_ts_is_never_later_than_its_newest_tick() -> None:
    ns = 1_699_999_999_999_999_999  # a float would round this up to the next second
    batch = TickBatch.from_arrays("A", [ns], [1.0], [1.0])
    assert batch.ts == datetime(2023, 11, 14, 22, 13, 19, 999999, tzinfo=UTC)
    bars = BarBatch.from_arrays("A", [ns], [1.0], [1.0], [1.0], [1.0], [1.0])
    assert bars.ts == batch.ts


def test_empty_batches_are_refused() -> None:
    with pytest.raises(ValueError):
        TickBatch.from_arrays("A", [], [], [])
    with pytest.raises(ValueError):
        BarBatch.from_arrays("A", [], [], [], [], [], [])


def test_bar_batch_round_trips_arrays_exactly() -> None:
    ts = np.array([60_000_000_000, 120_000_000_000], dtype=np.int64)
    cols = {
        "open": np.array([10.0, 11.0]),
        "high": np.array([12.5, np.inf]),
        "low": np.array([9.75, -0.0]),
        "close": np.array([11.0, np.nan]),
        "volume": np.array([1000.0, 0.0]),
    }
    batch = BarBatch.from_arrays(
        "SPY", ts, cols["open"], cols["high"], cols["low"], cols["close"], cols["volume"], interval_s=60, ingest_ns=7
    )
    assert len(batch) == 2
    assert batch.key == "SPY"
    assert batch.ts == datetime(1970, 1, 1, 0, 2, tzinfo=UTC)
    for fmt in FORMATS:
        back = decode(encode(batch, fmt), fmt)  # type: ignore[arg-type]
        assert isinstance(back, BarBatch)
        assert back == batch
        frame = back.to_frame()
        assert list(frame.columns) == ["symbol", "ts", "open", "high", "low", "close", "volume"]
        np.testing.assert_array_equal(pd.DatetimeIndex(frame["ts"]).as_unit("ns").asi8, ts)
        for name, values in cols.items():
            assert frame[name].to_numpy().tobytes() == values.tobytes(), name
        assert back.interval_s == 60
        assert back.ingest_ns == 7


# -- headers and keys ---------------------------------------------------------------------------------------


def test_schema_header() -> None:
    ts = datetime(2020, 1, 1, tzinfo=UTC)
    assert schema_header(TICK) == f"marketpulse.Tick/v{WIRE_VERSION}"
    assert schema_header(Article(ts=ts, id="1", text="t", source="news")) == f"marketpulse.Article/v{WIRE_VERSION}"
    batch = BarBatch.from_arrays("A", [1], [1.0], [1.0], [1.0], [1.0], [1.0])
    assert schema_header(batch) == f"marketpulse.BarBatch/v{WIRE_VERSION}"


def test_event_key() -> None:
    ts = datetime(2020, 1, 1, tzinfo=UTC)
    assert Tick(ts=ts, symbol="AAPL", price=1.0).key == "AAPL"
    assert Bar(ts=ts, symbol="MSFT", open=1, high=1, low=1, close=1, volume=1).key == "MSFT"
    assert Signal(ts=ts, symbol="TSLA", score=0.1).key == "TSLA"
    assert Post(ts=ts, id="1", text="t", source="x", symbols=("NVDA", "AMD")).key == "NVDA"
    assert Post(ts=ts, id="1", text="t", source="x").key is None
    assert Article(ts=ts, id="1", text="t", source="news", symbols=("IBM",)).key == "IBM"
    assert Alert(ts=ts, rule="r", severity="info", message="m").key is None
    assert Alert(ts=ts, rule="r", severity="critical", message="m", symbol="GME").key == "GME"
    assert DeadLetter(ts=ts, source="s", position="f.csv:3", field="price", reason="r", record="{}").key is None
    assert TickBatch.from_arrays("QQQ", [1], [1.0], [1.0]).key == "QQQ"


@pytest.mark.parametrize("fmt", FORMATS)
def test_key_survives_the_wire(fmt: str) -> None:
    post = Post(ts=datetime(2020, 1, 1, tzinfo=UTC), id="9", text="$AAPL up", source="x", symbols=("AAPL", "MSFT"))
    back = decode(encode(post, fmt), fmt)  # type: ignore[arg-type]
    assert isinstance(back, Post)
    assert back.symbols == ("AAPL", "MSFT")
    assert back.key == "AAPL"
