"""SQLite-specific checks of :class:`SqliteHistoryStore` (the contract itself is in tests/contract)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from marketpulse.errors import StoreError
from marketpulse.events import Post, encode
from marketpulse.store.base import NS_PER_DAY
from marketpulse.store.sqlite import _SELECT, _SELECT_EVENTS, SqliteHistoryStore, SqliteHistoryStoreConfig

T0 = pd.Timestamp("2024-03-04 14:30", tz="UTC")


def bars(ts: list[pd.Timestamp], symbol: str = "AAPL") -> pd.DataFrame:
    n = len(ts)
    return pd.DataFrame(
        {
            "symbol": [symbol] * n,
            "ts": pd.DatetimeIndex(ts, tz="UTC").as_unit("ns"),
            "open": [1.0] * n,
            "high": [2.0] * n,
            "low": [0.5] * n,
            "close": [1.5] * n,
            "volume": [10.0] * n,
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteHistoryStore]:
    s = SqliteHistoryStore(data_dir=tmp_path / "data")
    yield s
    s.close()


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path)


def test_file_under_data_dir_with_parents_created(tmp_path: Path) -> None:
    data_dir = tmp_path / "a" / "b"
    with SqliteHistoryStore(data_dir=data_dir) as s:
        assert s.path == data_dir / "history.sqlite"
        assert s.path.is_file()


def test_config_path_wins_over_data_dir(tmp_path: Path) -> None:
    path = tmp_path / "x" / "y" / "h.db"
    with SqliteHistoryStore(SqliteHistoryStoreConfig(path=path), data_dir=tmp_path / "unused") as s:
        assert s.path == path
    assert path.is_file()
    assert not (tmp_path / "unused").exists()


def test_wal_and_synchronous_normal(store: SqliteHistoryStore) -> None:
    with raw(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with store._locked("test") as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL


def test_meta_schema_version(store: SqliteHistoryStore) -> None:
    assert store.schema_version == 1
    with raw(store.path) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == ("1",)


def test_other_schema_version_is_refused(tmp_path: Path) -> None:
    SqliteHistoryStore(data_dir=tmp_path).close()
    with raw(tmp_path / "history.sqlite") as conn:
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match=r"schema version 2.*reads version 1"):
        SqliteHistoryStore(data_dir=tmp_path)
    other = tmp_path / "v2"
    other.mkdir()
    with raw(other / "history.sqlite") as conn:
        conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    with pytest.raises(StoreError, match="schema version 2"):
        SqliteHistoryStore(data_dir=other)
    with raw(other / "history.sqlite") as conn:  # nothing of version 1 was added to it
        assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == [("meta",)]


def test_tables_mirror_the_cassandra_schema(store: SqliteHistoryStore) -> None:
    with raw(store.path) as conn:

        def info(table: str) -> tuple[list[str], list[str]]:
            rows = conn.execute(f"PRAGMA table_info({table})").fetchall()
            return [r[1] for r in rows], [r[1] for r in sorted(rows, key=lambda r: r[5]) if r[5]]

        assert info("bars") == (
            ["symbol", "day", "ts", "open", "high", "low", "close", "volume"],
            ["symbol", "day", "ts"],
        )
        assert info("ticks") == (
            ["symbol", "day", "ts", "seq", "price", "size"],
            ["symbol", "day", "ts", "seq"],
        )
        assert info("events") == (
            ["kind", "symbol", "day", "ts", "id", "payload"],
            ["kind", "symbol", "day", "ts", "id"],
        )
        for table in ("bars", "ticks", "events"):
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
            assert "WITHOUT ROWID" in sql


def test_day_is_floor_of_ts(store: SqliteHistoryStore) -> None:
    epoch = pd.Timestamp(0, tz="UTC")
    one = pd.Timedelta(1, "ns")
    ts = [epoch - NS_PER_DAY * one - one, epoch - one, epoch, T0]
    store.write_frame("bars", bars(ts))
    with raw(store.path) as conn:
        rows = conn.execute("SELECT ts, day FROM bars ORDER BY ts").fetchall()
    assert rows == [(t.value, t.value // NS_PER_DAY) for t in ts]
    assert [d for _, d in rows][:3] == [-2, -1, 0]


def test_event_rows_and_payload(store: SqliteHistoryStore) -> None:
    ts = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    p = Post(id="p1", ts=ts, text="hi", source="x", symbols=("MSFT", "AAPL"))
    store.write_events("posts", [p])
    with raw(store.path) as conn:
        rows = conn.execute("SELECT kind, symbol, day, ts, id, payload FROM events ORDER BY symbol").fetchall()
    t = T0.value
    assert rows == [
        ("posts", "AAPL", t // NS_PER_DAY, t, "p1", encode(p)),
        ("posts", "MSFT", t // NS_PER_DAY, t, "p1", encode(p)),
    ]


def test_range_reads_use_the_primary_key(store: SqliteHistoryStore) -> None:
    with store._locked("test") as conn:
        for sql, params in [
            (_SELECT["bars"], ("AAPL", 0, 1, 0, 1)),
            (_SELECT["ticks"], ("AAPL", 0, 1, 0, 1)),
            (_SELECT_EVENTS, ("posts", "AAPL", 0, 1, 0, 1)),
        ]:
            plan = " ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
            assert "USING PRIMARY KEY (" in plan and "symbol=? AND day>?" in plan, plan
            assert "TEMP B-TREE" not in plan, plan  # the key order is the read order: no sort


def test_readers_on_other_connections_see_committed_writes(store: SqliteHistoryStore) -> None:
    store.write_frame("bars", bars([T0, T0 + pd.Timedelta(minutes=1)]))
    with raw(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM bars").fetchone() == (2,)


def test_store_error_messages(store: SqliteHistoryStore) -> None:
    frame = bars([T0])
    with pytest.raises(StoreError, match=r"unknown frame kind 'quotes'.*\['bars', 'ticks'\]"):
        store.write_frame("quotes", frame)
    with pytest.raises(StoreError, match=r"bars frame is missing columns \['high', 'volume'\]"):
        store.write_frame("bars", frame.drop(columns=["volume", "high"]))
    with pytest.raises(StoreError, match="'ts' must be timezone-aware"):
        store.write_frame("bars", frame.assign(ts=frame["ts"].dt.tz_localize(None)))
    with pytest.raises(StoreError, match="NaT"):
        store.write_frame("bars", frame.assign(ts=pd.Series([pd.NaT], dtype="datetime64[ns, UTC]")))
    with pytest.raises(StoreError, match="without a symbol"):
        store.write_frame("bars", frame.assign(symbol=[None]))
    with pytest.raises(StoreError, match="'close' is not numeric"):
        store.write_frame("bars", frame.assign(close=["abc"]))
    with pytest.raises(StoreError, match="'bars' holds frames"):
        store.write_events("bars", [])
    with pytest.raises(StoreError, match="naive start"):
        store.read_frame("bars", "AAPL", datetime(2024, 1, 1))
    assert store.count("bars") == 0


def test_closed_store_raises_and_close_is_idempotent(tmp_path: Path) -> None:
    s = SqliteHistoryStore(data_dir=tmp_path)
    s.close()
    s.close()
    with pytest.raises(StoreError, match="is closed"):
        s.count("bars")


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "history.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"history\.sqlite"):
        SqliteHistoryStore(data_dir=tmp_path)


def test_failed_write_is_rolled_back(store: SqliteHistoryStore) -> None:
    store.write_frame("bars", bars([T0]))

    class Boom(Exception):
        pass

    def rows() -> Iterator[tuple[object, ...]]:
        yield ("AAPL", 0, 1, 1.0, 1.0, 1.0, 1.0, 1.0)
        raise Boom

    with pytest.raises(Boom), store._transaction("test") as conn:
        conn.executemany("INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows())
    assert store.count("bars") == 1
    store.write_frame("bars", bars([T0 + pd.Timedelta(minutes=1)]))  # the connection is usable again
    assert store.count("bars") == 2


def test_in_memory_database(tmp_path: Path) -> None:
    with SqliteHistoryStore(SqliteHistoryStoreConfig(path=Path(":memory:"))) as s:
        s.write_frame("bars", bars([T0]))
        assert s.count("bars") == 1


def test_unsorted_frame_with_a_repeated_key_keeps_the_last_row(store: SqliteHistoryStore) -> None:
    """Rows are sorted by key before inserting (speed); the sort is stable, so the later duplicate wins."""
    m = pd.Timedelta(minutes=1)
    frame = pd.concat([bars([T0 + 2 * m], "MSFT"), bars([T0 + m, T0]), bars([T0 + m]).assign(close=9.0)])
    store.write_frame("bars", frame.reset_index(drop=True))
    assert store.count("bars") == 3
    got = store.read_frame("bars", "AAPL")
    assert got["ts"].tolist() == [T0, T0 + m]
    assert got["close"].tolist() == [1.5, 9.0]
    assert store.read_frame("bars", "MSFT")["ts"].tolist() == [T0 + 2 * m]
