"""Contract tests of the store seams (:mod:`marketpulse.store.base`), run against every backend.

A backend joins by appending ``(name, factory)`` to :data:`ONLINE_FACTORIES` or :data:`HISTORY_FACTORIES`
(a factory takes the test's ``tmp_path`` and returns a fresh, empty store). A history backend that keeps its
data across ``close()`` also goes in :data:`PERSISTENT_HISTORY`: its factory called again on the same
``tmp_path`` must reopen the same data.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from marketpulse.errors import StoreError
from marketpulse.events import DeadLetter, Post, SentimentScore, TickBatch
from marketpulse.store.base import BAR_COLUMNS, NS_PER_DAY, TICK_COLUMNS, HistoryStore, OnlineStore
from marketpulse.store.memory import MemoryHistoryStore, MemoryOnlineStore, MemoryOnlineStoreConfig
from marketpulse.store.redis import RedisOnlineStore, RedisOnlineStoreConfig
from marketpulse.store.sqlite import SqliteHistoryStore
from realservices import require_redis

OnlineFactory = Callable[[Path], OnlineStore]
HistoryFactory = Callable[[Path], HistoryStore]

#: key prefixes of the Redis stores the running test made; their keys are deleted after it
_REDIS_PREFIXES: list[tuple[str, str]] = []


def redis_online_store(tmp_path: Path) -> OnlineStore:
    """A store on the real Redis (skipped with the reason when it is not up), under a prefix of its own."""
    url = require_redis()
    prefix = f"test-{uuid.uuid4().hex}"
    _REDIS_PREFIXES.append((url, prefix))
    return RedisOnlineStore(RedisOnlineStoreConfig(url=url, key_prefix=prefix))


ONLINE_FACTORIES: list[tuple[str, OnlineFactory]] = [
    ("memory", lambda tmp_path: MemoryOnlineStore()),
    ("redis", redis_online_store),
]
HISTORY_FACTORIES: list[tuple[str, HistoryFactory]] = [
    ("memory", lambda tmp_path: MemoryHistoryStore()),
    ("sqlite", lambda tmp_path: SqliteHistoryStore(data_dir=tmp_path / "data")),
]
#: history backends whose data survives close() and a new factory call on the same tmp_path
PERSISTENT_HISTORY = {"sqlite"}


def _params(factories: list[tuple[str, Any]]) -> Any:
    return pytest.mark.parametrize("factory", [f for _, f in factories], ids=[n for n, _ in factories])


@pytest.fixture(params=[f for _, f in ONLINE_FACTORIES], ids=[n for n, _ in ONLINE_FACTORIES])
def online(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    store = request.param(tmp_path)
    yield store
    store.close()


@pytest.fixture(autouse=True)
def _delete_redis_keys() -> Iterator[None]:
    """After each test, delete the keys of the Redis stores :func:`redis_online_store` made for it."""
    yield
    while _REDIS_PREFIXES:
        url, prefix = _REDIS_PREFIXES.pop()
        import redis

        with redis.Redis.from_url(url) as client:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            if keys:
                client.delete(*keys)


@pytest.fixture(params=[f for _, f in HISTORY_FACTORIES], ids=[n for n, _ in HISTORY_FACTORIES])
def history(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    store = request.param(tmp_path)
    yield store
    store.close()


# --------------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------------

T0 = pd.Timestamp("2024-03-04 14:30", tz="UTC")
MIN = pd.Timedelta(minutes=1)


def ts_index(values: list[Any]) -> pd.DatetimeIndex:
    """Timestamps (Timestamps or int ns) as datetime64[ns, UTC]."""
    stamps = [pd.Timestamp(v, tz="UTC") if isinstance(v, int) else v for v in values]
    return pd.DatetimeIndex(stamps, tz="UTC").as_unit("ns")


def bars_frame(symbols: list[str], ts: list[Any], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(ts)
    close = rng.uniform(10, 500, n)
    return pd.DataFrame(
        {
            "symbol": pd.Series(symbols, dtype="str"),
            "ts": ts_index(ts),
            "open": close + rng.normal(0, 1, n),
            "high": close + 2.0,
            "low": close - 2.0,
            "close": close,
            "volume": rng.integers(0, 10**7, n).astype("float64"),
        }
    )


def ticks_frame(symbols: list[str], ts: list[Any], seq: list[int], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = len(ts)
    return pd.DataFrame(
        {
            "symbol": pd.Series(symbols, dtype="str"),
            "ts": ts_index(ts),
            "seq": np.asarray(seq, dtype="int64"),
            "price": rng.uniform(10, 500, n),
            "size": rng.integers(1, 1000, n).astype("float64"),
        }
    )


def expected(frame: pd.DataFrame, kind: str, symbol: str) -> pd.DataFrame:
    """What a full read of ``symbol`` must return: its rows sorted by key, canonical columns, fresh index."""
    columns = list(BAR_COLUMNS if kind == "bars" else TICK_COLUMNS)
    keys = ["ts"] if kind == "bars" else ["ts", "seq"]
    rows = frame[frame["symbol"] == symbol].sort_values(keys, kind="stable")
    return rows[columns].reset_index(drop=True)


def assert_canonical(frame: pd.DataFrame, kind: str) -> None:
    columns = BAR_COLUMNS if kind == "bars" else TICK_COLUMNS
    assert tuple(frame.columns) == columns
    assert pd.api.types.is_string_dtype(frame["symbol"].dtype)
    assert frame["ts"].dtype == "datetime64[ns, UTC]"
    for c in columns[2:]:
        assert frame[c].dtype == ("int64" if c == "seq" else "float64"), c
    assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0


def assert_same(got: pd.DataFrame, want: pd.DataFrame, kind: str) -> None:
    assert_canonical(got, kind)
    pd.testing.assert_frame_equal(got, want, check_exact=True)


def post(pid: str, ts: datetime, symbols: tuple[str, ...] = ("AAPL",), text: str = "to the moon") -> Post:
    return Post(id=pid, ts=ts, text=text, source="reddit", author="u/x", symbols=symbols, ingest_ns=42)


UTC_T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


# --------------------------------------------------------------------------------------------------------
# OnlineStore
# --------------------------------------------------------------------------------------------------------

VALUE = {"price": 187.25, "n": 3, "ok": True, "none": None, "tags": ["a", "b"], "nested": {"x": [1, 2.5]}}


def test_online_put_get(online: OnlineStore) -> None:
    assert online.get("quote", "AAPL") is None
    online.put("quote", "AAPL", VALUE)
    assert online.get("quote", "AAPL") == VALUE
    online.put("quote", "AAPL", {"price": 188.0})
    assert online.get("quote", "AAPL") == {"price": 188.0}


def test_online_kinds_are_separate(online: OnlineStore) -> None:
    online.put("quote", "AAPL", {"v": 1})
    online.put("signal", "AAPL", {"v": 2})
    assert online.get("quote", "AAPL") == {"v": 1}
    assert online.get("signal", "AAPL") == {"v": 2}
    assert online.get("quote", "MSFT") is None


def test_online_get_many_and_put_many(online: OnlineStore) -> None:
    online.put_many("quote", {"AAPL": {"p": 1.0}, "MSFT": {"p": 2.0}})
    assert online.get_many("quote", ["MSFT", "NOPE", "AAPL"]) == {
        "MSFT": {"p": 2.0},
        "NOPE": None,
        "AAPL": {"p": 1.0},
    }
    assert online.get_many("quote", []) == {}


def test_online_symbols_sorted_per_kind(online: OnlineStore) -> None:
    assert online.symbols("quote") == []
    for s in ("MSFT", "AAPL", "TSLA"):
        online.put("quote", s, {"s": s})
    online.put("signal", "NVDA", {})
    assert online.symbols("quote") == ["AAPL", "MSFT", "TSLA"]
    assert online.symbols("signal") == ["NVDA"]


def test_online_delete(online: OnlineStore) -> None:
    online.put("quote", "AAPL", {"p": 1})
    online.put("quote", "MSFT", {"p": 2})
    online.delete("quote", "AAPL")
    online.delete("quote", "AAPL")  # absent: no error
    online.delete("nokind", "X")
    assert online.get("quote", "AAPL") is None
    assert online.symbols("quote") == ["MSFT"]


def test_online_values_isolated_from_caller(online: OnlineStore) -> None:
    value = {"p": 1.0, "tags": ["a"], "nested": {"x": 1}}
    online.put("quote", "AAPL", value)
    value["p"] = 2.0
    value["tags"].append("b")
    value["nested"]["x"] = 99
    got = online.get("quote", "AAPL")
    assert got == {"p": 1.0, "tags": ["a"], "nested": {"x": 1}}
    assert got is not None
    got["p"] = 3.0
    got["tags"].append("c")
    many = online.get_many("quote", ["AAPL"])["AAPL"]
    assert many == {"p": 1.0, "tags": ["a"], "nested": {"x": 1}}
    assert many is not None
    many["nested"]["x"] = 7
    assert online.get("quote", "AAPL") == {"p": 1.0, "tags": ["a"], "nested": {"x": 1}}


@pytest.mark.timeout(15)
def test_online_ttl_expires_real_clock(online: OnlineStore) -> None:
    """A tiny real TTL: present until it elapses (checked only while provably not elapsed), then gone."""
    ttl = 0.2
    t0 = time.monotonic()
    online.put("quote", "AAPL", {"p": 1}, ttl_s=ttl)
    online.put("quote", "MSFT", {"p": 2}, ttl_s=3600)
    got = online.get("quote", "AAPL")
    if time.monotonic() - t0 < ttl:
        assert got == {"p": 1}
    deadline = time.monotonic() + 10
    while online.get("quote", "AAPL") is not None:
        assert time.monotonic() < deadline, "entry did not expire"
        time.sleep(0.02)
    assert "AAPL" not in online.symbols("quote")
    assert online.get_many("quote", ["AAPL", "MSFT"]) == {"AAPL": None, "MSFT": {"p": 2}}


def test_online_close_idempotent(online: OnlineStore) -> None:
    with online as store:
        store.put("quote", "AAPL", {"p": 1})
    online.close()
    online.close()


def test_online_threads(online: OnlineStore) -> None:
    def work(i: int) -> None:
        for j in range(200):
            online.put("quote", f"S{i}-{j % 20:02d}", {"i": i, "j": j})
            online.get("quote", f"S{(i + 1) % 4}-00")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(online.symbols("quote")) == 80
    assert online.get("quote", "S3-19") == {"i": 3, "j": 199}


# ---- memory specifics: TTL with an injected clock ------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_ttl_with_injected_clock() -> None:
    clock = FakeClock()
    store = MemoryOnlineStore(MemoryOnlineStoreConfig(ttl_s=60), clock=clock)
    store.put("quote", "AAPL", {"p": 1}, ttl_s=10)
    store.put("quote", "MSFT", {"p": 2})  # default TTL: 60
    store.put("quote", "TSLA", {"p": 3}, ttl_s=0)  # never expires
    store.put("quote", "NVDA", {"p": 4}, ttl_s=-1)  # never expires
    clock.now += 9.999
    assert store.get("quote", "AAPL") == {"p": 1}
    clock.now += 0.001
    assert store.get("quote", "AAPL") is None  # expired at exactly ttl
    assert store.symbols("quote") == ["MSFT", "NVDA", "TSLA"]
    clock.now += 50
    assert store.get_many("quote", ["MSFT", "TSLA"]) == {"MSFT": None, "TSLA": {"p": 3}}
    clock.now += 10 * 365 * 86_400
    assert store.symbols("quote") == ["NVDA", "TSLA"]


def test_memory_ttl_refreshed_by_put_and_config_without_expiry() -> None:
    clock = FakeClock()
    store = MemoryOnlineStore(MemoryOnlineStoreConfig(ttl_s=0), clock=clock)
    store.put("q", "A", {"v": 1})
    store.put("q", "B", {"v": 1}, ttl_s=5)
    clock.now += 4
    store.put("q", "B", {"v": 2}, ttl_s=5)
    clock.now += 4
    assert store.get("q", "B") == {"v": 2}
    store.put_many("q", {"C": {}, "D": {}}, ttl_s=1)
    clock.now += 10**9
    assert store.symbols("q") == ["A"]


def test_memory_default_ttl_is_a_day() -> None:
    clock = FakeClock()
    store = MemoryOnlineStore(clock=clock)
    store.put("q", "A", {})
    clock.now += 86_399
    assert store.get("q", "A") == {}
    clock.now += 1
    assert store.get("q", "A") is None


def test_memory_expired_entries_are_swept_without_reads() -> None:
    clock = FakeClock()
    store = MemoryOnlineStore(clock=clock)
    store.put_many("q", {f"S{i}": {} for i in range(100)}, ttl_s=1)
    clock.now += 2
    for i in range(5000):
        store.put("other", f"T{i % 10}", {})
    assert "q" not in store._data  # swept, though never read


def test_memory_rejects_values_that_are_not_json_like() -> None:
    store = MemoryOnlineStore()
    with pytest.raises(StoreError, match="quote/AAPL"):
        store.put("quote", "AAPL", {"x": object()})
    with pytest.raises(StoreError, match="must be a dict"):
        store.put("quote", "AAPL", [1, 2])  # type: ignore[arg-type]
    assert store.get("quote", "AAPL") is None


# --------------------------------------------------------------------------------------------------------
# HistoryStore: frames
# --------------------------------------------------------------------------------------------------------


def test_bars_round_trip_exact(history: HistoryStore) -> None:
    ts = [T0 + i * MIN for i in range(5)]
    frame = bars_frame(["AAPL"] * 5 + ["MSFT"] * 5, ts + ts, seed=1)
    frame.loc[3, "volume"] = np.nan
    frame.loc[4, "open"] = 1e300
    frame.loc[5, "low"] = -0.0
    frame.loc[6, "high"] = 0.1 + 0.2
    assert history.write_frame("bars", frame) == 10
    for s in ("AAPL", "MSFT"):
        assert_same(history.read_frame("bars", s), expected(frame, "bars", s), "bars")
    assert history.count("bars") == 10
    assert history.count("bars", "AAPL") == 5
    assert history.symbols("bars") == ["AAPL", "MSFT"]


def test_ticks_round_trip_exact_and_shared_ts_kept(history: HistoryStore) -> None:
    ts = [T0, T0, T0, T0 + pd.Timedelta(1, "ns"), T0 - pd.Timedelta(1, "us")]
    frame = ticks_frame(["AAPL"] * 5, ts, seq=[0, 1, 2, 0, 7], seed=2)
    assert history.write_frame("ticks", frame) == 5
    got = history.read_frame("ticks", "AAPL")
    assert_same(got, expected(frame, "ticks", "AAPL"), "ticks")
    assert got["seq"].tolist() == [7, 0, 1, 2, 0]
    assert history.count("ticks") == 5


def test_tick_batch_frames_are_accepted(history: HistoryStore) -> None:
    """A TickBatch frame (different column order, int32 seq) reads back canonical."""
    ts_ns = [T0.value, T0.value, T0.value + 5]
    batch = TickBatch.from_arrays("AAPL", ts_ns, [1.5, 1.25, 2.0], [100, 200, 300], seq=[0, 1, 0])
    frame = batch.to_frame()
    history.write_frame("ticks", frame)
    got = history.read_frame("ticks", "AAPL")
    assert_canonical(got, "ticks")
    assert got["ts"].tolist() == [pd.Timestamp(v, tz="UTC") for v in ts_ns]
    assert got["seq"].tolist() == [0, 1, 0]
    assert got["price"].tolist() == [1.5, 1.25, 2.0]
    assert got["size"].tolist() == [100.0, 200.0, 300.0]


def test_frames_in_another_timezone_are_stored_as_utc(history: HistoryStore) -> None:
    frame = bars_frame(["AAPL"] * 2, [T0, T0 + MIN])
    local = frame.assign(ts=frame["ts"].dt.tz_convert("America/New_York"))
    history.write_frame("bars", local)
    assert_same(history.read_frame("bars", "AAPL"), expected(frame, "bars", "AAPL"), "bars")


def test_extra_columns_are_ignored(history: HistoryStore) -> None:
    frame = bars_frame(["AAPL"], [T0])
    history.write_frame("bars", frame.assign(interval_s=60))
    assert_same(history.read_frame("bars", "AAPL"), expected(frame, "bars", "AAPL"), "bars")


def test_reads_are_sorted(history: HistoryStore) -> None:
    ts = [T0 + i * pd.Timedelta(hours=7) for i in range(40)]  # several days
    order = list(range(40))
    random.Random(3).shuffle(order)
    frame = bars_frame(["AAPL"] * 40, [ts[i] for i in order])
    # written in two shuffled calls
    history.write_frame("bars", frame.iloc[:25])
    history.write_frame("bars", frame.iloc[25:])
    got = history.read_frame("bars", "AAPL")
    assert got["ts"].tolist() == ts
    assert_same(got, expected(frame, "bars", "AAPL"), "bars")


def test_range_start_inclusive_end_exclusive(history: HistoryStore) -> None:
    one = pd.Timedelta(1, "ns")
    ts = [T0 - one, T0, T0 + one, T0 + MIN - one, T0 + MIN, T0 + MIN + one]
    frame = bars_frame(["AAPL"] * len(ts), ts)
    history.write_frame("bars", frame)

    def read(start: Any, end: Any) -> list[pd.Timestamp]:
        return list(history.read_frame("bars", "AAPL", start, end)["ts"])

    assert read(T0, T0 + MIN) == [T0, T0 + one, T0 + MIN - one]
    assert read(T0 + one, T0 + MIN + one) == [T0 + one, T0 + MIN - one, T0 + MIN]
    assert read(T0, None) == ts[1:]
    assert read(None, T0) == [T0 - one]
    assert read(None, None) == ts
    assert read(T0, T0) == []
    assert read(T0 + MIN, T0) == []
    # plain datetimes (microsecond precision) and another time zone work as bounds
    ny = UTC_T0.astimezone(ZoneInfo("America/New_York"))
    assert read(ny, UTC_T0 + timedelta(minutes=1)) == [T0, T0 + one, T0 + MIN - one]
    assert_same(
        history.read_frame("bars", "AAPL", T0, T0 + MIN),
        expected(frame.iloc[1:4], "bars", "AAPL"),
        "bars",
    )


def test_range_across_day_boundaries(history: HistoryStore) -> None:
    midnight = pd.Timestamp("2024-03-05", tz="UTC")
    one = pd.Timedelta(1, "ns")
    ts = [midnight - MIN, midnight - one, midnight, midnight + one, midnight + MIN]
    history.write_frame("bars", bars_frame(["AAPL"] * 5, ts))

    def read(start: Any, end: Any) -> list[pd.Timestamp]:
        return list(history.read_frame("bars", "AAPL", start, end)["ts"])

    assert read(midnight - MIN, midnight) == ts[:2]
    assert read(midnight, midnight + MIN) == ts[2:4]
    assert read(midnight - one, midnight + one) == [midnight - one, midnight]
    assert read(midnight - pd.Timedelta(days=3), midnight + pd.Timedelta(days=3)) == ts


def test_range_over_several_days_and_before_1970(history: HistoryStore) -> None:
    epoch = pd.Timestamp(0, tz="UTC")
    hours = [pd.Timedelta(hours=h) for h in range(-72, 73, 6)]  # 1969-12-29 .. 1970-01-04
    one = pd.Timedelta(1, "ns")
    ts = sorted([epoch + h for h in hours] + [epoch - one, epoch - NS_PER_DAY * one - one])
    history.write_frame("bars", bars_frame(["OLD"] * len(ts), ts))

    def read(start: Any, end: Any) -> list[pd.Timestamp]:
        return list(history.read_frame("bars", "OLD", start, end)["ts"])

    # the last nanosecond before the epoch lives in day -1, not day 0
    assert read(epoch - pd.Timedelta(hours=12), epoch) == [
        epoch - pd.Timedelta(hours=12),
        epoch - pd.Timedelta(hours=6),
        epoch - one,
    ]
    assert read(epoch - one, epoch + one) == [epoch - one, epoch]
    day_minus_2_end = epoch - pd.Timedelta(days=1)
    assert read(day_minus_2_end - pd.Timedelta(hours=1), day_minus_2_end) == [day_minus_2_end - one]
    start, end = epoch - pd.Timedelta(days=2, hours=1), epoch + pd.Timedelta(days=2, hours=1)
    assert read(start, end) == [t for t in ts if start <= t < end]
    assert len(read(start, end)) == 19


def test_ticks_range_and_other_symbols(history: HistoryStore) -> None:
    ts = [T0, T0, T0 + MIN, T0 + MIN]
    history.write_frame("ticks", ticks_frame(["AAPL", "AAPL", "AAPL", "MSFT"], ts, [0, 1, 0, 0]))
    got = history.read_frame("ticks", "AAPL", T0, T0 + MIN)
    assert got["seq"].tolist() == [0, 1]
    assert history.read_frame("ticks", "MSFT", T0, T0 + MIN).empty
    assert history.count("ticks", "AAPL") == 3
    assert history.symbols("ticks") == ["AAPL", "MSFT"]
    assert history.symbols("bars") == []


def test_write_same_frame_twice_is_idempotent(history: HistoryStore) -> None:
    bars = bars_frame(["AAPL"] * 3 + ["MSFT"] * 3, [T0, T0 + MIN, T0 + 2 * MIN] * 2)
    ticks = ticks_frame(["AAPL"] * 3, [T0, T0, T0 + MIN], [0, 1, 0])
    history.write_frame("bars", bars)
    history.write_frame("ticks", ticks)
    first_b, first_t = history.read_frame("bars", "AAPL"), history.read_frame("ticks", "AAPL")
    assert history.write_frame("bars", bars) == 6
    history.write_frame("ticks", ticks)
    assert history.count("bars") == 6
    assert history.count("ticks") == 3
    pd.testing.assert_frame_equal(history.read_frame("bars", "AAPL"), first_b, check_exact=True)
    pd.testing.assert_frame_equal(history.read_frame("ticks", "AAPL"), first_t, check_exact=True)


def test_updated_value_replaces_existing_key(history: HistoryStore) -> None:
    bars = bars_frame(["AAPL"] * 3, [T0, T0 + MIN, T0 + 2 * MIN])
    history.write_frame("bars", bars)
    fixed = bars.iloc[[1]].assign(close=123.5, volume=7.0)
    history.write_frame("bars", fixed)
    assert history.count("bars") == 3
    got = history.read_frame("bars", "AAPL")
    assert got["close"].tolist() == [bars["close"][0], 123.5, bars["close"][2]]
    assert got["volume"].tolist()[1] == 7.0

    ticks = ticks_frame(["AAPL"] * 2, [T0, T0], [0, 1])
    history.write_frame("ticks", ticks)
    history.write_frame("ticks", ticks.iloc[[1]].assign(price=9.75))
    assert history.count("ticks") == 2
    assert history.read_frame("ticks", "AAPL")["price"].tolist() == [ticks["price"][0], 9.75]


def test_empty_frame_and_unknown_symbol(history: HistoryStore) -> None:
    assert history.write_frame("bars", bars_frame([], [])) == 0
    assert history.count("bars") == 0
    for kind in ("bars", "ticks"):
        got = history.read_frame(kind, "NOPE")
        assert got.empty
        assert_canonical(got, kind)
    history.write_frame("bars", bars_frame(["AAPL"], [T0]))
    got = history.read_frame("bars", "NOPE", T0, T0 + MIN)
    assert got.empty
    assert_canonical(got, "bars")
    assert history.read_events("posts", "NOPE") == []
    assert history.count("posts") == 0
    assert history.count("posts", "NOPE") == 0
    assert history.symbols("posts") == []


def test_bad_frames_raise_store_error(history: HistoryStore) -> None:
    frame = bars_frame(["AAPL"], [T0])
    with pytest.raises(StoreError, match="quotes"):
        history.write_frame("quotes", frame)
    with pytest.raises(StoreError, match="quotes"):
        history.read_frame("quotes", "AAPL")
    with pytest.raises(StoreError, match=r"\['close', 'volume'\]"):
        history.write_frame("bars", frame.drop(columns=["volume", "close"]))
    with pytest.raises(StoreError, match="seq"):
        history.write_frame("ticks", ticks_frame(["AAPL"], [T0], [0]).drop(columns=["seq"]))
    assert history.count("bars") == 0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["AAPL", "BRK.B", "ÆØÅ", ""]),
            st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1)
            | st.integers(min_value=-3 * NS_PER_DAY, max_value=3 * NS_PER_DAY),
            st.lists(st.floats(width=64), min_size=5, max_size=5),
        ),
        max_size=40,
        unique_by=lambda r: (r[0], r[1]),
    ),
    cut=st.tuples(st.integers(0, 39), st.integers(0, 39)),
)
@_params(HISTORY_FACTORIES)
def test_property_random_bars_round_trip(
    factory: HistoryFactory,
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[str, int, list[float]]],
    cut: tuple[int, int],
) -> None:
    frame = pd.DataFrame(
        {
            "symbol": pd.Series([r[0] for r in rows], dtype="str"),
            "ts": ts_index([r[1] for r in rows]),
            **{c: pd.Series([r[2][i] for r in rows], dtype="float64") for i, c in enumerate(BAR_COLUMNS[2:])},
        }
    )
    store = factory(tmp_path_factory.mktemp("prop"))
    try:
        assert store.write_frame("bars", frame) == len(rows)
        assert store.count("bars") == len(rows)
        assert store.symbols("bars") == sorted({r[0] for r in rows})
        for s in {r[0] for r in rows}:
            want = expected(frame, "bars", s)
            assert_same(store.read_frame("bars", s), want, "bars")
            if len(want):
                start, end = want["ts"].iloc[cut[0] % len(want)], want["ts"].iloc[cut[1] % len(want)]
                part = want[(want["ts"] >= start) & (want["ts"] < end)].reset_index(drop=True)
                assert_same(store.read_frame("bars", s, start, end), part, "bars")
    finally:
        store.close()


# --------------------------------------------------------------------------------------------------------
# HistoryStore: events
# --------------------------------------------------------------------------------------------------------


def test_post_fans_out_to_each_symbol(history: HistoryStore) -> None:
    p = post("p1", UTC_T0, symbols=("AAPL", "MSFT"))
    lone = post("p2", UTC_T0, symbols=())
    assert history.write_events("posts", [p, lone]) == 2
    assert history.read_events("posts", "AAPL") == [p]
    assert history.read_events("posts", "MSFT") == [p]
    assert history.read_events("posts", "") == [lone]
    assert history.count("posts") == 3
    assert history.count("posts", "AAPL") == 1
    assert history.symbols("posts") == ["", "AAPL", "MSFT"]
    got = history.read_events("posts", "AAPL")[0]
    assert isinstance(got, Post) and got.symbols == ("AAPL", "MSFT") and got.ingest_ns == 42


def test_sentiment_and_deadletter_round_trip(history: HistoryStore) -> None:
    score = SentimentScore(
        ts=UTC_T0,
        symbol="AAPL",
        source="news",
        model="finbert",
        polarity=-0.25,
        intensity=0.8,
        probs={"neg": 0.6, "neu": 0.3, "pos": 0.1},
        ref_id="a-17",
    )
    agg = SentimentScore(ts=UTC_T0, symbol="AAPL", source="all", model="mean", polarity=0.1, intensity=0.2)
    dead = DeadLetter(
        ts=UTC_T0,
        source="prices.csv",
        position="prices.csv:17",
        field="close",
        reason="not a number",
        record="x",
    )
    history.write_events("sentiment", [score, agg])
    history.write_events("deadletter", [dead])
    assert history.read_events("sentiment", "AAPL") == [
        agg,
        score,
    ]  # same ts: by id "SentimentScore" < "a-17"
    assert history.read_events("deadletter", "") == [dead]
    assert history.symbols("deadletter") == [""]
    assert history.read_events("sentiment", "") == []
    assert history.read_events("posts", "AAPL") == []  # kinds are separate


def test_events_sorted_by_ts_then_id_with_range(history: HistoryStore) -> None:
    t = [UTC_T0 + timedelta(hours=9 * i) for i in range(6)]  # spans three days
    posts = [post(f"id{j}", t[i]) for i in range(6) for j in (2, 0, 1)]
    random.Random(5).shuffle(posts)
    history.write_events("posts", posts)
    got = history.read_events("posts", "AAPL")
    assert [(p.ts, p.id) for p in got] == [(t[i], f"id{j}") for i in range(6) for j in range(3)]
    window = history.read_events("posts", "AAPL", t[1], t[4])
    assert [p.ts for p in window] == [t[1]] * 3 + [t[2]] * 3 + [t[3]] * 3
    one_us = timedelta(microseconds=1)
    assert [p.ts for p in history.read_events("posts", "AAPL", t[5], t[5] + one_us)] == [t[5]] * 3
    assert history.read_events("posts", "AAPL", t[5] - one_us, t[5]) == []


def test_events_idempotent_and_replaced(history: HistoryStore) -> None:
    p = post("p1", UTC_T0, symbols=("AAPL", "MSFT"))
    history.write_events("posts", [p])
    history.write_events("posts", [p])
    assert history.count("posts") == 2
    edited = post("p1", UTC_T0, symbols=("AAPL", "MSFT"), text="edited")
    history.write_events("posts", [edited])
    assert history.count("posts") == 2
    assert history.read_events("posts", "AAPL") == [edited]
    assert history.read_events("posts", "MSFT") == [edited]
    assert history.write_events("posts", []) == 0


# --------------------------------------------------------------------------------------------------------
# HistoryStore: lifecycle
# --------------------------------------------------------------------------------------------------------


def test_history_threads(history: HistoryStore) -> None:
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(10):
                ts = [T0 + (j * 10 + k) * MIN for k in range(10)]
                history.write_frame("bars", bars_frame([f"S{i}"] * 10, ts, seed=j))
                history.read_frame("bars", f"S{(i + 1) % 4}")
                history.write_events("posts", [post(f"{i}-{j}", UTC_T0, symbols=(f"S{i}",))])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert history.count("bars") == 400
    assert history.count("posts") == 40
    assert history.symbols("bars") == ["S0", "S1", "S2", "S3"]


def test_history_close_idempotent(history: HistoryStore) -> None:
    with history as store:
        store.write_frame("bars", bars_frame(["AAPL"], [T0]))
    history.close()
    history.close()


@_params([(n, f) for n, f in HISTORY_FACTORIES if n in PERSISTENT_HISTORY])
def test_history_persists_across_close_and_reopen(factory: HistoryFactory, tmp_path: Path) -> None:
    bars = bars_frame(["AAPL"] * 3, [T0, T0 + MIN, T0 + 2 * MIN])
    ticks = ticks_frame(["AAPL"] * 2, [T0, T0], [0, 1])
    p = post("p1", UTC_T0, symbols=("AAPL", "MSFT"))
    with factory(tmp_path) as store:
        store.write_frame("bars", bars)
        store.write_frame("ticks", ticks)
        store.write_events("posts", [p])
    with factory(tmp_path) as store:
        assert_same(store.read_frame("bars", "AAPL"), expected(bars, "bars", "AAPL"), "bars")
        assert_same(store.read_frame("ticks", "AAPL"), expected(ticks, "ticks", "AAPL"), "ticks")
        assert store.read_events("posts", "MSFT") == [p]
        assert store.count("posts") == 2
        store.write_frame("bars", bars)  # still idempotent after reopening
        assert store.count("bars") == 3
