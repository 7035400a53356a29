"""SQLite history store (WAL) under the data dir: the embedded default.

The tables mirror the Cassandra schema: each is partitioned by ``(symbol, day)`` and clustered by ``ts``
(``day = ts // NS_PER_DAY``, floor division, ``ts`` in int64 nanoseconds UTC), so a range read walks the
primary-key index over the days it touches. Writes are ``INSERT OR REPLACE`` on the key (idempotent upserts),
one transaction per call.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.errors import StoreError
from marketpulse.events import AnyEvent, Event, decode, encode
from marketpulse.store.base import FRAME_KINDS, NS_PER_DAY, HistoryStore, event_id
from marketpulse.store.memory import (
    VALUE_COLUMNS,
    FrameColumns,
    bounds_ns,
    build_frame,
    check_event_kind,
    check_frame_kind,
    day_bounds,
    empty_frame,
    event_symbols,
    frame_columns,
    to_ns,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS bars (
    symbol TEXT    NOT NULL,
    day    INTEGER NOT NULL,
    ts     INTEGER NOT NULL,  -- ns UTC
    open   REAL,
    high   REAL,
    low    REAL,
    close  REAL,
    volume REAL,
    PRIMARY KEY (symbol, day, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ticks (
    symbol TEXT    NOT NULL,
    day    INTEGER NOT NULL,
    ts     INTEGER NOT NULL,  -- ns UTC
    seq    INTEGER NOT NULL,
    price  REAL,
    size   REAL,
    PRIMARY KEY (symbol, day, ts, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    kind    TEXT    NOT NULL,
    symbol  TEXT    NOT NULL,
    day     INTEGER NOT NULL,
    ts      INTEGER NOT NULL,  -- ns UTC
    id      TEXT    NOT NULL,
    payload BLOB    NOT NULL,  -- events.encode(event), msgpack
    PRIMARY KEY (kind, symbol, day, ts, id)
) WITHOUT ROWID;
"""

# Per frame kind: the key columns after (symbol, day), and the ORDER BY that follows the primary key.
_KEY_TAIL = {"bars": ("ts",), "ticks": ("ts", "seq")}


def _insert_sql(kind: str) -> str:
    cols = ("symbol", "day", "ts", *VALUE_COLUMNS[kind])
    return f"INSERT OR REPLACE INTO {kind} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"


def _select_sql(kind: str) -> str:
    cols = ("ts", *VALUE_COLUMNS[kind])
    return (
        f"SELECT {', '.join(cols)} FROM {kind} "
        "WHERE symbol = ? AND day BETWEEN ? AND ? AND ts BETWEEN ? AND ? "
        f"ORDER BY day, {', '.join(_KEY_TAIL[kind])}"
    )


_INSERT = {k: _insert_sql(k) for k in FRAME_KINDS}
_SELECT = {k: _select_sql(k) for k in FRAME_KINDS}
_INSERT_EVENT = "INSERT OR REPLACE INTO events (kind, symbol, day, ts, id, payload) VALUES (?, ?, ?, ?, ?, ?)"
_SELECT_EVENTS = (
    "SELECT payload FROM events WHERE kind = ? AND symbol = ? AND day BETWEEN ? AND ? AND ts BETWEEN ? AND ? "
    "ORDER BY day, ts, id"
)
# Distinct symbols by skip-scan over the primary key: one index seek per symbol, not a scan of every row.
_SYMBOLS_FRAME = """
WITH RECURSIVE s(symbol) AS (
    SELECT MIN(symbol) FROM {kind}
    UNION ALL
    SELECT (SELECT MIN(symbol) FROM {kind} WHERE symbol > s.symbol) FROM s WHERE s.symbol IS NOT NULL
) SELECT symbol FROM s WHERE symbol IS NOT NULL
"""
_SYMBOLS_EVENTS = """
WITH RECURSIVE s(symbol) AS (
    SELECT MIN(symbol) FROM events WHERE kind = ?1
    UNION ALL
    SELECT (SELECT MIN(symbol) FROM events WHERE kind = ?1 AND symbol > s.symbol) FROM s
    WHERE s.symbol IS NOT NULL
) SELECT symbol FROM s WHERE symbol IS NOT NULL
"""


def _key_order(kind: str, cols: FrameColumns) -> np.ndarray[Any, Any] | None:
    """A stable permutation that sorts the rows by primary key, or None when they already are sorted."""
    if len(cols) < 2:
        return None
    codes, _ = pd.factorize(np.asarray(cols.symbol, dtype=object), sort=True)
    keys = [codes, cols.ts] + ([cols.values["seq"]] if kind == "ticks" else [])
    # sorted iff every adjacent pair is non-decreasing in the key tuple
    ordered = np.zeros(len(cols) - 1, dtype=bool)
    tied = np.ones(len(cols) - 1, dtype=bool)
    for k in keys:
        a, b = k[:-1], k[1:]
        ordered |= tied & (a < b)
        tied &= a == b
    if bool((ordered | tied).all()):
        return None
    return np.lexsort(keys[::-1])


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back an open transaction, keeping the error that caused it the one reported."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("SQLite rollback failed")


class SqliteHistoryStoreConfig(BaseModel):
    """``history_store.type: sqlite`` — one file, WAL journal, idempotent upserts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["sqlite"] = "sqlite"
    path: Path | None = Field(None, description="database file (default: <data_dir>/history.sqlite)")


class SqliteHistoryStore(HistoryStore):
    """History in one SQLite file (WAL journal, ``synchronous=NORMAL``), safe to share between threads.

    One connection serialised by a lock; other processes may read the same file concurrently (WAL).
    """

    def __init__(self, config: SqliteHistoryStoreConfig | None = None, *, data_dir: Path = Path("data")) -> None:
        self.config = config or SqliteHistoryStoreConfig()
        path = self.config.path.expanduser() if self.config.path is not None else Path(data_dir) / "history.sqlite"
        self.path = path
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        in_memory = str(path) == ":memory:"
        try:
            if not in_memory:
                path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30.0)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot open the SQLite history store {path}: {e}") from e
        try:
            self._setup(conn, in_memory)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _setup(self, conn: sqlite3.Connection, in_memory: bool) -> None:
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal" and not in_memory:
                log.warning("SQLite history store %s: journal mode is %s, not WAL", self.path, mode)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA cache_size=-65536")  # in KiB: 64 MiB of page cache for large writes
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(_META)
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if row is not None and row[0] != str(SCHEMA_VERSION):
                    raise StoreError(
                        f"SQLite history store {self.path} has schema version {row[0]}; "
                        f"this build reads version {SCHEMA_VERSION}"
                    )
                if row is None:
                    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the SQLite history store {self.path}: {e}") from e

    # ----------------------------------------------------------------------------------------------------

    @contextmanager
    def _locked(self, what: str) -> Iterator[sqlite3.Connection]:
        """The connection under the lock; SQLite errors become :class:`StoreError` naming the operation."""
        with self._lock:
            conn = self._conn
            if conn is None:
                raise StoreError(f"SQLite history store {self.path} is closed ({what})")
            try:
                yield conn
            except sqlite3.Error as e:
                raise StoreError(f"SQLite history store {self.path}: {what} failed: {e}") from e

    @contextmanager
    def _transaction(self, what: str) -> Iterator[sqlite3.Connection]:
        """One transaction under the lock: committed when the body returns, rolled back when it raises."""
        with self._locked(what) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    @property
    def schema_version(self) -> int:
        with self._locked("read schema version") as conn:
            return int(conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])

    # ----------------------------------------------------------------------------------------------------

    def write_frame(self, kind: str, frame: pd.DataFrame) -> int:
        cols = frame_columns(kind, frame)
        if len(cols) == 0:
            return 0
        symbols: list[str] = cols.symbol
        ts, day, values = cols.ts, cols.day, [cols.values[c] for c in VALUE_COLUMNS[kind]]
        order = _key_order(kind, cols)
        if order is not None:  # key-order B-tree inserts: ~2x faster than random
            symbols = np.asarray(symbols, dtype=object)[order].tolist()
            ts, day, values = ts[order], day[order], [v[order] for v in values]
        rows = zip(symbols, day.tolist(), ts.tolist(), *(v.tolist() for v in values), strict=True)
        with self._transaction(f"write {len(cols)} {kind}") as conn:
            conn.executemany(_INSERT[kind], rows)
        return len(frame)

    def read_frame(
        self, kind: str, symbol: str, start: datetime | None = None, end: datetime | None = None
    ) -> pd.DataFrame:
        check_frame_kind(kind)
        lo, hi = bounds_ns(start, end)
        if lo > hi:
            return empty_frame(kind)
        dlo, dhi = day_bounds(lo, hi)
        with self._locked(f"read {kind} of {symbol!r}") as conn:
            rows = conn.execute(_SELECT[kind], (symbol, dlo, dhi, lo, hi)).fetchall()
        if not rows:
            return empty_frame(kind)
        columns: list[Any] = list(zip(*rows, strict=True))
        return build_frame(
            kind,
            symbol,
            np.array(columns[0], dtype="int64"),
            dict(zip(VALUE_COLUMNS[kind], columns[1:], strict=True)),
        )

    def write_events(self, kind: str, events: Sequence[Event]) -> int:
        check_event_kind(kind)
        rows: list[tuple[str, str, int, int, str, bytes]] = []
        for ev in events:
            ts = to_ns(ev.ts, "event ts")
            day, eid, payload = ts // NS_PER_DAY, event_id(ev), encode(ev)
            rows.extend((kind, symbol, day, ts, eid, payload) for symbol in event_symbols(ev))
        if rows:
            with self._transaction(f"write {len(events)} {kind} events") as conn:
                conn.executemany(_INSERT_EVENT, rows)
        return len(events)

    def read_events(
        self, kind: str, symbol: str, start: datetime | None = None, end: datetime | None = None
    ) -> list[AnyEvent]:
        check_event_kind(kind)
        lo, hi = bounds_ns(start, end)
        if lo > hi:
            return []
        dlo, dhi = day_bounds(lo, hi)
        with self._locked(f"read {kind} events of {symbol!r}") as conn:
            rows = conn.execute(_SELECT_EVENTS, (kind, symbol, dlo, dhi, lo, hi)).fetchall()
        return [decode(payload) for (payload,) in rows]

    def count(self, kind: str, symbol: str | None = None) -> int:
        if kind in FRAME_KINDS:
            sql = f"SELECT COUNT(*) FROM {kind}"
            params: tuple[str, ...] = ()
            if symbol is not None:
                sql, params = sql + " WHERE symbol = ?", (symbol,)
        else:
            sql, params = "SELECT COUNT(*) FROM events WHERE kind = ?", (kind,)
            if symbol is not None:
                sql, params = sql + " AND symbol = ?", (kind, symbol)
        with self._locked(f"count {kind}") as conn:
            return int(conn.execute(sql, params).fetchone()[0])

    def symbols(self, kind: str) -> list[str]:
        with self._locked(f"list {kind} symbols") as conn:
            if kind in FRAME_KINDS:
                rows = conn.execute(_SYMBOLS_FRAME.format(kind=kind)).fetchall()
            else:
                rows = conn.execute(_SYMBOLS_EVENTS, (kind,)).fetchall()
        return sorted(symbol for (symbol,) in rows)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
