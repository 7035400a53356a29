"""Benchmarks behind ``marketpulse bench``: figures, never assertions (see docs/performance.md).

``ingest``: ticks/s through parse → validate → bus on batches (CSV text in memory, so disk speed does not
count), next to a reference measured in the same run — pyarrow's CSV reader alone on the same bytes, the floor
under any CSV parser in Python — reported as a ratio; and rows/s of bars into the history store next to a
bare ``executemany`` into an equivalent SQLite table.
"""

from __future__ import annotations

import io
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.csv as pacsv

from marketpulse.bus.memory import MemoryBus, MemoryBusConfig
from marketpulse.config import ValidationConfig
from marketpulse.ingest.market import CsvMarketSource
from marketpulse.ingest.simulate import simulate_tick_csv_bytes
from marketpulse.ingest.validate import MarketValidator
from marketpulse.pipeline import publish_market
from marketpulse.store.sqlite import SqliteHistoryStore, SqliteHistoryStoreConfig

SYMBOLS = ("AAPL", "AMZN", "MSFT", "GOOG", "META", "NVDA", "TSLA", "SPY")


def _ingest_once(path: Path, bus: MemoryBus) -> tuple[int, float]:
    """parse → validate → bus for one CSV file, timed; the stores are not part of this figure."""
    validator = MarketValidator(ValidationConfig(), "ticks")
    rows = 0
    start = time.perf_counter()
    for batch in CsvMarketSource(path, "ticks", block_bytes=16 << 20).batches():
        result = validator.validate(batch)
        rows += result.n_accepted
        publish_market(bus, result.accepted, "ticks")
    return rows, time.perf_counter() - start


def bench_ingest(n_ticks: int = 2_000_000, n_bars: int = 500_000, repeat: int = 3) -> dict[str, Any]:
    """Best of ``repeat`` runs for each figure (the machine is shared; the best run is the least disturbed)."""
    data = simulate_tick_csv_bytes(n_ticks, list(SYMBOLS), seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ticks.csv"
        path.write_bytes(data)
        pipeline_s, ref_s, rows = [], [], 0
        for _ in range(repeat):
            bus = MemoryBus(MemoryBusConfig(capacity=10_000_000))
            rows, secs = _ingest_once(path, bus)
            pipeline_s.append(secs)
            start = time.perf_counter()
            pacsv.read_csv(io.BytesIO(data), read_options=pacsv.ReadOptions(use_threads=False, block_size=16 << 20))
            ref_s.append(time.perf_counter() - start)
        store = _bench_store(Path(tmp), n_bars, repeat)
    best, ref = min(pipeline_s), min(ref_s)
    return {
        "benchmark": "ingest",
        "ticks": n_ticks,
        "accepted": rows,
        "csv_mb": round(len(data) / 1e6, 1),
        "parse_validate_bus_ticks_per_s": round(n_ticks / best),
        "reference_pyarrow_csv_only_ticks_per_s": round(n_ticks / ref),
        "ratio_vs_pyarrow_csv_only": round(ref / best, 3),
        **store,
        "repeat": repeat,
        "note": "single process, one core for the pipeline (Arrow CSV reader with use_threads=False)",
    }


def _bench_store(tmp: Path, n: int, repeat: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    ts = pd.date_range("2024-01-02 14:30", periods=n // 4, freq="1min", tz="UTC")
    frames = []
    for sym in ("AAA", "BBB", "CCC", "DDD"):
        close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, len(ts))))
        frames.append(
            pd.DataFrame(
                {
                    "symbol": sym,
                    "ts": ts,
                    "open": close,
                    "high": close * 1.001,
                    "low": close * 0.999,
                    "close": close,
                    "volume": 100.0,
                }
            )
        )
    frame = pd.concat(frames, ignore_index=True)
    ours, ref = [], []
    for i in range(repeat):
        store = SqliteHistoryStore(SqliteHistoryStoreConfig(path=tmp / f"h{i}.sqlite"))
        start = time.perf_counter()
        store.write_frame("bars", frame)
        ours.append(time.perf_counter() - start)
        store.close()
        ref.append(_raw_sqlite(tmp / f"raw{i}.sqlite", frame))
    return {
        "bars": len(frame),
        "history_sqlite_rows_per_s": round(len(frame) / min(ours)),
        "reference_raw_executemany_rows_per_s": round(len(frame) / min(ref)),
        "ratio_vs_raw_executemany": round(min(ref) / min(ours), 3),
    }


def _raw_sqlite(path: Path, frame: pd.DataFrame) -> float:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(
        "CREATE TABLE bars(symbol TEXT, day INTEGER, ts INTEGER, open REAL, high REAL, low REAL, close REAL,"
        " volume REAL, PRIMARY KEY(symbol, day, ts)) WITHOUT ROWID"
    )
    start = time.perf_counter()
    ts = frame["ts"].to_numpy("datetime64[ns]").view(np.int64)
    rows = zip(
        frame["symbol"].tolist(),
        (ts // 86_400_000_000_000).tolist(),
        ts.tolist(),
        frame["open"].tolist(),
        frame["high"].tolist(),
        frame["low"].tolist(),
        frame["close"].tolist(),
        frame["volume"].tolist(),
        strict=True,
    )
    with con:
        con.executemany("INSERT OR REPLACE INTO bars VALUES (?,?,?,?,?,?,?,?)", rows)
    elapsed = time.perf_counter() - start
    con.close()
    return elapsed
