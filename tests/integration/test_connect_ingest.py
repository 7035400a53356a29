"""The Kafka Connect path on real services: a FileStreamSource connector moves a CSV of ticks into a raw topic,
``ingest-topic`` validates the lines into ``market.ticks`` and the history store.

Raw lines land on their own topic (``market.ticks.raw...``), not on ``market.ticks``: topics after ingestion
carry validated events only, so every consumer of ``market.ticks`` can trust its records.
"""

from __future__ import annotations

import time
from pathlib import Path
from uuid import uuid4

import pytest

from marketpulse.bus.kafka import KafkaBus, KafkaBusConfig
from marketpulse.config import load_settings
from marketpulse.pipeline import Pipeline
from marketpulse.services.kafka import add_connector, delete_connector
from marketpulse.store.memory import MemoryOnlineStore
from marketpulse.store.sqlite import SqliteHistoryStore
from marketpulse.streams import ingest_topic
from realservices import require_connect, require_kafka

GOOD = 300
BAD = {
    "bad_number": "2024-01-02T14:40:00Z,AAA,abc,10",
    "non_positive_price": "2024-01-02T14:40:01Z,BBB,-5,10",
    "bad_row": "2024-01-02T14:40:02Z,CCC,10",
}


def _write_csv(path: Path) -> list[str]:
    lines = ["timestamp,symbol,price,size"]
    for i in range(GOOD):
        sym = ("AAA", "BBB", "CCC")[i % 3]
        lines.append(f"2024-01-02T14:{30 + i // 60:02d}:{i % 60:02d}Z,{sym},{100 + (i % 7) / 10:.2f},{10 + i}")
    lines.extend(BAD.values())
    path.write_text("\n".join(lines) + "\n")
    return lines


@pytest.mark.integration
def test_connect_file_source_to_validated_ticks_in_the_store(tmp_path: Path) -> None:
    bootstrap, connect_url = require_kafka(), require_connect()
    raw_topic = f"market.ticks.raw.{uuid4().hex[:8]}"
    csv_path = tmp_path / "ticks.csv"
    lines = _write_csv(csv_path)
    bus = KafkaBus(KafkaBusConfig(bootstrap_servers=bootstrap, partitions=1))
    bus.create_topic(raw_topic, 1)
    name = f"ticks-file-{uuid4().hex[:8]}"
    add_connector(
        name,
        {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
            "tasks.max": "1",
            "file": str(csv_path),
            "topic": raw_topic,
            "key.converter": "org.apache.kafka.connect.storage.StringConverter",
            "value.converter": "org.apache.kafka.connect.storage.StringConverter",
        },
        url=connect_url,
    )
    try:
        deadline = time.monotonic() + 60
        while sum(bus.end_offsets(raw_topic).values()) < len(lines) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sum(bus.end_offsets(raw_topic).values()) == len(lines), "the connector must move every line"
        settings = load_settings(data_dir=tmp_path)
        history = SqliteHistoryStore(data_dir=tmp_path)
        pipeline = Pipeline(settings, bus, MemoryOnlineStore(), history)
        streamed = ingest_topic(pipeline, raw_topic, "ticks", idle_s=3.0)
        counters = pipeline.counters
        assert streamed.consumed == len(lines)
        assert streamed.undecodable == 1  # the header line
        assert counters.read == len(lines) - 1 == counters.accepted + counters.deadlettered
        assert counters.accepted == GOOD
        assert dict(counters.reasons) == dict.fromkeys(BAD, 1)
        assert history.count("ticks") == GOOD
        letters = history.read_events("deadletter", "")
        assert sorted(d.reason for d in letters) == sorted(BAD)
        for d in letters:
            assert d.position.startswith(f"kafka:{raw_topic}/0:")
            assert d.record == BAD[d.reason]
        assert pipeline.online.get("ticks", "AAA") is not None
    finally:
        delete_connector(name, url=connect_url)
        bus.close()
