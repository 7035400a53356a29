"""A real start/stop cycle of Redis, Kafka (KRaft) and Kafka Connect, on ports of their own (39092/39093 Kafka,
38083 Connect, 36379 Redis) with the run dir in tmp_path; the jars come from the shared cache
(~/.cache/marketpulse, fetched by Maven on first use).

Under CI=true these tests must run: a missing java/mvn/redis-server, Python client or busy port fails them.
Elsewhere they skip with the reason.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from marketpulse.config import Settings
from marketpulse.services import ConnectService, KafkaService, RedisService, Service
from marketpulse.services.base import pid_alive, port_in_use

pytestmark = pytest.mark.slow

CI = os.environ.get("CI", "").lower() == "true"
PORTS = {"kafka": 39092, "controller": 39093, "connect": 38083, "redis": 36379}


def _unavailable(reason: str) -> None:
    if CI:
        pytest.fail(f"CI=true requires the live services test to run: {reason}")
    pytest.skip(reason)


def _require(*tools: str, modules: tuple[str, ...] = (), ports: tuple[int, ...] = ()) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        _unavailable(f"{', '.join(missing)} not installed (run scripts/services/install-deps.sh)")
    for module in modules:
        try:
            __import__(module)
        except ImportError:
            _unavailable(f"Python package {module} not installed (pip install -e '.[kafka,redis]')")
    busy = [p for p in ports if port_in_use(p)]
    if busy:
        _unavailable(f"ports {busy} are in use by another process")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name in list(os.environ):
        if name.upper().startswith("MARKETPULSE__"):
            monkeypatch.delenv(name)
    return Settings(
        data_dir=tmp_path / "data",
        services={
            "run_dir": tmp_path / "run",
            "kafka": {"port": PORTS["kafka"], "controller_port": PORTS["controller"]},
            "connect": {"port": PORTS["connect"]},
            "redis": {"port": PORTS["redis"]},
        },
    )


@pytest.fixture
def stop_after() -> Iterator[list[Service]]:
    """Services appended here are stopped at the end of the test, whatever happened (Connect before Kafka)."""
    started: list[Service] = []
    yield started
    for svc in reversed(started):
        svc.down()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_redis_up_ping_down(settings: Settings, stop_after: list[Service]) -> None:
    _require("redis-server", modules=("redis",), ports=(PORTS["redis"],))
    import redis

    svc = RedisService(settings)
    stop_after.append(svc)
    result = svc.up()
    assert result.action == "started", result
    pid = result.status.pid
    assert pid is not None and svc.read_pid() == pid

    client = redis.Redis.from_url(svc.url)
    client.set("mp:live", "ok")
    assert client.get("mp:live") == b"ok"
    client.close()

    assert svc.up().action == "already running"
    assert svc.status().state == "running"
    assert svc.down().action == "stopped"
    assert not pid_alive(pid)
    assert not svc.pid_file.exists()
    assert svc.status().state == "stopped"
    assert not list((settings.services.run_dir or Path()).glob("redis/*.rdb"))  # --save '': nothing on disk


def test_kafka_and_connect_carry_a_file_into_a_topic(
    settings: Settings, stop_after: list[Service], tmp_path: Path
) -> None:
    _require(
        "java",
        "mvn",
        modules=("confluent_kafka",),
        ports=(PORTS["kafka"], PORTS["controller"], PORTS["connect"]),
    )
    from confluent_kafka import Consumer

    kafka = KafkaService(settings)
    stop_after.append(kafka)
    t0 = time.monotonic()
    up = kafka.up()
    kafka_s = time.monotonic() - t0
    assert up.action == "started", up
    assert kafka.up().action == "already running"

    connect = ConnectService(settings)
    stop_after.append(connect)
    t0 = time.monotonic()
    assert connect.up().action == "started"
    connect_s = time.monotonic() - t0
    kafka_pid, connect_pid = kafka.read_pid(), connect.read_pid()
    assert kafka_pid is not None and connect_pid is not None
    print(
        f"\nkafka up {kafka_s:.1f} s (RSS {_rss_mb(kafka_pid):.0f} MB), "
        f"connect up {connect_s:.1f} s (RSS {_rss_mb(connect_pid):.0f} MB)"
    )

    lines = [f"AAPL,{i},{100 + i}.5" for i in range(5)]
    source = tmp_path / "ticks.csv"
    source.write_text("\n".join(lines) + "\n")
    topic = f"test.live.{uuid.uuid4().hex[:8]}"
    status = connect.add_connector(
        "live-file-source",
        {"connector.class": "FileStreamSource", "tasks.max": 1, "file": str(source), "topic": topic},
    )
    assert status["connector"]["state"] == "RUNNING"
    assert [t["state"] for t in status["tasks"]] == ["RUNNING"]

    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap,
            "group.id": f"test-live-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    got: list[str] = []
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        while len(got) < len(lines) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            value = msg.value()
            assert value is not None
            got.append(value.decode())
    finally:
        consumer.close()
    assert got == lines

    assert connect.delete_connector("live-file-source") is True
    assert connect.down().action == "stopped"
    assert kafka.down().action == "stopped"
    for pid in (kafka_pid, connect_pid):
        assert not pid_alive(pid)
    for port in (PORTS["kafka"], PORTS["controller"], PORTS["connect"]):
        assert not port_in_use(port)
    assert not kafka.pid_file.exists() and not connect.pid_file.exists()
    assert "Kafka Server started" in kafka.log_file.read_text()
