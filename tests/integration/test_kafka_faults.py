"""Fault tests on the real broker: a consumer killed with SIGKILL, a broker restarted mid-stream.

The persist stage commits only after a batch is stored and history writes are idempotent upserts, so a
consumer killed at any moment and restarted stores every record exactly once; the idempotent producer (acks=all,
retries) keeps every record through a broker restart.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from uuid import uuid4

import numpy as np
import pytest

from marketpulse.bus.kafka import KafkaBus, KafkaBusConfig
from marketpulse.events import TickBatch, encode
from realservices import require_kafka

N_MESSAGES = 600
TICKS_PER_MESSAGE = 50
SYMBOLS = ("AAA", "BBB", "CCC", "DDD")


def _publish_ticks(bus: KafkaBus, topic: str) -> set[tuple[str, int, int]]:
    """N_MESSAGES TickBatch messages; returns the (symbol, ts, seq) keys that must end up stored."""
    keys: set[tuple[str, int, int]] = set()
    base = 1_704_205_800_000_000_000  # 2024-01-02 14:30 UTC
    for i in range(N_MESSAGES):
        sym = SYMBOLS[i % len(SYMBOLS)]
        ts = base + (i // len(SYMBOLS) * TICKS_PER_MESSAGE + np.arange(TICKS_PER_MESSAGE)) * 1_000_000
        price = 100 + np.arange(TICKS_PER_MESSAGE) / 100
        batch = TickBatch.from_arrays(sym, ts, price, np.full(TICKS_PER_MESSAGE, 10.0))
        bus.publish(topic, sym, encode(batch), (("schema", b"marketpulse.TickBatch/v1"),))
        keys.update((sym, int(t), 0) for t in ts)
    bus.flush()
    return keys


def _stored(db: Path) -> list[tuple[str, int, int]]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return [tuple(r) for r in con.execute("SELECT symbol, ts, seq FROM ticks")]
    except sqlite3.OperationalError:  # the table does not exist yet
        return []


def _persist_cmd(data_dir: Path, topic: str, group: str, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "marketpulse.cli",
        "--data-dir",
        str(data_dir),
        "persist",
        "--topics",
        topic,
        "--group",
        group,
        "--max-records",
        "20",
        *extra,
    ]


def _env(bootstrap: str) -> dict[str, str]:
    return {**os.environ, "MARKETPULSE__BUS__TYPE": "kafka", "MARKETPULSE__BUS__BOOTSTRAP_SERVERS": bootstrap}


@pytest.mark.integration
def test_consumer_killed_with_sigkill_and_restarted_stores_every_record_exactly_once(tmp_path: Path) -> None:
    bootstrap = require_kafka()
    topic, group = f"faults.{uuid4().hex[:8]}", f"faults-{uuid4().hex[:8]}"
    bus = KafkaBus(KafkaBusConfig(bootstrap_servers=bootstrap, partitions=4))
    try:
        expected = _publish_ticks(bus, topic)
    finally:
        bus.close()
    db = tmp_path / "history.sqlite"
    env = _env(bootstrap)
    proc = subprocess.Popen(_persist_cmd(tmp_path, topic, group), env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_stored(db)) < len(expected) // 5:
        time.sleep(0.05)
    stored_before = len(_stored(db))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert 0 < stored_before < len(expected), f"the kill must land mid-stream (stored {stored_before})"
    rerun = subprocess.run(
        _persist_cmd(tmp_path, topic, group, "--idle", "5", "--json"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0, rerun.stderr
    rows = _stored(db)
    assert len(rows) == len(set(rows)) == len(expected)
    assert set(rows) == expected


@pytest.mark.integration
def test_broker_restarted_mid_stream_loses_nothing(tmp_path: Path) -> None:
    bootstrap = require_kafka()
    from realservices import restart_kafka

    topic, group = f"restart.{uuid4().hex[:8]}", f"restart-{uuid4().hex[:8]}"
    bus = KafkaBus(KafkaBusConfig(bootstrap_servers=bootstrap, partitions=4, publish_timeout_s=60))
    expected: set[tuple[str, int, int]] = set()
    try:
        bus.create_topic(topic, 4)
        first = _publish_ticks(bus, topic)
        expected |= first
        restart_kafka(during=lambda: _publish_more(bus, topic, expected))
        bus.flush(timeout=120)
    finally:
        bus.close()
    rerun = subprocess.run(
        _persist_cmd(tmp_path, topic, group, "--idle", "5", "--json"),
        env=_env(bootstrap),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert rerun.returncode == 0, rerun.stderr
    rows = _stored(tmp_path / "history.sqlite")
    assert len(rows) == len(expected)
    assert set(rows) == expected


def _publish_more(bus: KafkaBus, topic: str, expected: set[tuple[str, int, int]]) -> None:
    """Publish while the broker is down: records wait in the idempotent producer and are delivered after."""
    base = 1_800_000_000_000_000_000
    for i in range(200):
        sym = SYMBOLS[i % len(SYMBOLS)]
        ts = base + (i * 10 + np.arange(10)) * 1_000_000
        batch = TickBatch.from_arrays(sym, ts, np.full(10, 50.0), np.full(10, 1.0))
        bus.publish(topic, sym, encode(batch), (("schema", b"marketpulse.TickBatch/v1"),))
        expected.update((sym, int(t), 0) for t in ts)
