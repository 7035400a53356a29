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


def _bus_values(n: int) -> list[tuple[str | None, bytes]]:
    """``n`` encoded ticks (about 100 bytes each) over 8 symbols, as (key, value) records."""
    from datetime import UTC, datetime

    from marketpulse.events import Tick, encode

    base = datetime(2024, 1, 2, 14, 30, tzinfo=UTC).timestamp()
    out: list[tuple[str | None, bytes]] = []
    for i in range(n):
        sym = SYMBOLS[i % len(SYMBOLS)]
        tick = Tick(
            symbol=sym,
            ts=datetime.fromtimestamp(base + i * 1e-3, UTC),
            price=100.0 + (i % 997) / 100,
            size=100.0,
            ingest_ns=1_700_000_000_000_000_000 + i,
        )
        out.append((sym, encode(tick)))
    return out


def _adapter_round(bus: Any, records: list[tuple[str | None, bytes]], topic: str, chunk: int) -> tuple[float, float]:
    start = time.perf_counter()
    for i in range(0, len(records), chunk):
        bus.publish_batch(topic, records[i : i + chunk])
    bus.flush()
    produced = time.perf_counter()
    seen = 0
    with bus.consumer(f"bench-{topic}", [topic]) as consumer:
        deadline = time.monotonic() + 300
        while seen < len(records) and time.monotonic() < deadline:
            batch = consumer.poll(chunk, timeout=1.0)
            seen += len(batch)
            if batch:
                consumer.commit(batch)
    if seen != len(records):
        raise RuntimeError(f"consumed {seen} of {len(records)} records")
    return produced - start, time.perf_counter() - produced


def _raw_kafka_round(
    bootstrap: str, records: list[tuple[str | None, bytes]], topic: str, chunk: int
) -> tuple[float, float]:
    """The same traffic through bare confluent-kafka (same producer settings, manual commits per batch)."""
    import confluent_kafka as ck

    from marketpulse.bus.base import partition_for
    from marketpulse.bus.kafka import KafkaBusConfig

    cfg = KafkaBusConfig(bootstrap_servers=bootstrap)
    producer = ck.Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": cfg.linger_ms,
            "batch.size": cfg.batch_size,
            "compression.type": cfg.compression,
            "queue.buffering.max.messages": cfg.queue_max_messages,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    keyed = [(k.encode() if k else None, v, partition_for(k, 4)) for k, v in records]
    start = time.perf_counter()
    for i, (k, v, p) in enumerate(keyed):
        try:
            producer.produce(topic, v, k, p)
        except BufferError:
            producer.poll(0.05)
            producer.produce(topic, v, k, p)
        if i % 10_000 == 0:
            producer.poll(0)
    producer.flush(60)
    produced = time.perf_counter()
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-raw-{topic}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
        }
    )
    consumer.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + 300
    while seen < len(records) and time.monotonic() < deadline:
        batch = consumer.consume(num_messages=chunk, timeout=1.0)
        good = [m for m in batch if m.error() is None]
        seen += len(good)
        if good:
            consumer.commit(asynchronous=False)
    consumer.close()
    if seen != len(records):
        raise RuntimeError(f"raw consumer saw {seen} of {len(records)} records")
    return produced - start, time.perf_counter() - produced


def _raw_memory_round(records: list[tuple[str | None, bytes]], chunk: int) -> tuple[float, float]:
    """The floor for an in-process bus: a bare deque, appended and drained in the same chunks."""
    from collections import deque

    q: deque[tuple[str | None, bytes]] = deque()
    start = time.perf_counter()
    for i in range(0, len(records), chunk):
        q.extend(records[i : i + chunk])
    produced = time.perf_counter()
    seen = 0
    while q:
        batch = [q.popleft() for _ in range(min(chunk, len(q)))]
        seen += len(batch)
    return produced - start, time.perf_counter() - produced


def bench_bus(bus_type: str, n: int = 1_000_000, bootstrap: str | None = None, repeat: int = 2) -> dict[str, Any]:
    """Messages/s produce + consume through the adapter, beside the raw client (Kafka) or a bare deque (memory)."""
    from uuid import uuid4

    from marketpulse.bus.kafka import KafkaBus, KafkaBusConfig

    records = _bus_values(n)
    chunk = 10_000
    ours: list[float] = []
    ref: list[float] = []
    parts: dict[str, float] = {}
    for _ in range(repeat):
        topic = f"bench.{uuid4().hex[:8]}"
        if bus_type == "kafka":
            server = bootstrap or KafkaBusConfig().bootstrap_servers
            kafka = KafkaBus(KafkaBusConfig(bootstrap_servers=server, partitions=4))
            kafka.create_topic(topic, 4)
            p, c = _adapter_round(kafka, records, topic, chunk)
            kafka.create_topic(topic + ".raw", 4)
            kafka.close()
            rp, rc = _raw_kafka_round(server, records, topic + ".raw", chunk)
        else:
            memory = MemoryBus(MemoryBusConfig(capacity=n + 1, partitions=4))
            memory.create_topic(topic, 4)
            p, c = _adapter_round(memory, records, topic, chunk)
            memory.close()
            rp, rc = _raw_memory_round(records, chunk)
        if not ours or p + c < min(ours):
            parts = {"produce_s": p, "consume_s": c, "ref_produce_s": rp, "ref_consume_s": rc}
        ours.append(p + c)
        ref.append(rp + rc)
    best, best_ref = min(ours), min(ref)
    return {
        "benchmark": "bus",
        "type": bus_type,
        "messages": n,
        "avg_message_bytes": round(sum(len(v) for _, v in records) / n, 1),
        "adapter_msgs_per_s": round(n / best),
        "adapter_produce_msgs_per_s": round(n / parts["produce_s"]),
        "adapter_consume_msgs_per_s": round(n / parts["consume_s"]),
        "reference": "raw confluent-kafka producer/consumer" if bus_type == "kafka" else "bare collections.deque",
        "reference_msgs_per_s": round(n / best_ref),
        "ratio_vs_reference": round(best_ref / best, 3),
        "repeat": repeat,
        "note": "produce (flushed) then consume with a commit per poll; msgs/s over the sum of both phases",
    }
