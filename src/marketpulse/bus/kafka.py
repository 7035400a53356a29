"""Kafka bus on confluent-kafka (librdkafka): the same contract as the memory bus, on a real broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from marketpulse.bus.base import Bus, Consumer, Headers, Message, partition_for
from marketpulse.errors import BackpressureError, BusError, MissingDependencyError


class KafkaBusConfig(BaseModel):
    """``bus.type: kafka`` — an Apache Kafka cluster (self-started with ``marketpulse services up kafka``, or yours).

    Security settings map to librdkafka's: ``security_protocol``, ``sasl_*``, ``ssl_*``; anything else librdkafka
    accepts goes in ``extra`` (applied to producer, consumers and admin client).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["kafka"] = "kafka"
    bootstrap_servers: str = Field("127.0.0.1:9092", description="host:port[,host:port...]")
    client_id: str = "marketpulse"
    partitions: int = Field(4, gt=0, le=10_000, description="partitions of a topic the bus creates")
    replication_factor: int = Field(1, gt=0, description="replicas of a topic the bus creates")
    retention_ms: int = Field(7 * 86_400_000, description="retention of a topic the bus creates (-1: forever)")
    linger_ms: float = Field(5.0, ge=0, description="producer batching delay")
    batch_size: int = Field(1_000_000, gt=0, description="producer batch size in bytes")
    compression: Literal["none", "lz4", "zstd", "snappy", "gzip"] = "lz4"
    queue_max_messages: int = Field(1_000_000, gt=0, description="producer queue bound (backpressure beyond)")
    publish_timeout_s: float = Field(5.0, ge=0, description="how long publish waits for room, then raises")
    session_timeout_ms: int = Field(10_000, ge=1_000)
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: str | None = None
    ssl_certificate_location: str | None = None
    ssl_key_location: str | None = None
    extra: dict[str, str] = Field(default_factory=dict, description="more librdkafka settings")


def _client_config(config: KafkaBusConfig) -> dict[str, Any]:
    """librdkafka settings shared by the producer, the consumers and the admin client."""
    out: dict[str, Any] = {
        "bootstrap.servers": config.bootstrap_servers,
        "client.id": config.client_id,
        "security.protocol": config.security_protocol.lower(),
    }
    optional = {
        "sasl.mechanism": config.sasl_mechanism,
        "sasl.username": config.sasl_username,
        "sasl.password": config.sasl_password.get_secret_value() if config.sasl_password else None,
        "ssl.ca.location": config.ssl_ca_location,
        "ssl.certificate.location": config.ssl_certificate_location,
        "ssl.key.location": config.ssl_key_location,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    out["log_level"] = 3  # librdkafka errors only (transient retries at start-up are not news); extra may override
    out.update(config.extra)
    return out


def _kafka() -> Any:
    try:
        import confluent_kafka
        import confluent_kafka.admin
    except ImportError as e:
        raise MissingDependencyError("confluent-kafka", "kafka") from e
    return confluent_kafka


class KafkaBus(Bus):
    """The bus on an Apache Kafka cluster (contract: :mod:`marketpulse.bus.base`).

    * Producer: idempotent (``enable.idempotence``, ``acks=all``), batched (``linger_ms``, ``batch_size``,
      ``compression``), partition chosen by :func:`~marketpulse.bus.base.partition_for` (CRC-32 of the key, the
      same as the memory bus, so a symbol lands on the same partition number on both backends).
    * ``publish`` returns once the record is queued in the client; :meth:`flush` waits until every queued record
      is acknowledged by the broker and raises :class:`BusError` for any that failed. A full client queue makes
      ``publish`` wait up to ``publish_timeout_s`` and then raise :class:`BackpressureError`.
    * Topics the bus publishes to or subscribes to are created with ``partitions``, ``replication_factor`` and
      ``retention_ms`` when missing.
    * Consumers: no auto-commit; ``commit`` is synchronous and commits only partitions still assigned.
    """

    def __init__(self, config: KafkaBusConfig | None = None) -> None:
        self.config = config or KafkaBusConfig()
        ck = _kafka()
        self._ck = ck
        self._common = _client_config(self.config)
        self._failures: list[str] = []
        self._producer = ck.Producer(
            {
                **self._common,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": self.config.linger_ms,
                "batch.size": self.config.batch_size,
                "compression.type": self.config.compression,
                "queue.buffering.max.messages": self.config.queue_max_messages,
                "queue.buffering.max.kbytes": 1_048_576,
                "delivery.report.only.error": True,
                "on_delivery": self._on_delivery,
            }
        )
        self._admin = ck.admin.AdminClient(self._common)
        self._meta: Any = None
        self._partitions: dict[str, int] = {}
        self._lock = threading.Lock()
        self._consumers: list[KafkaConsumer] = []
        self._closed = False

    # -- topics ----------------------------------------------------------------------------------------------
    def _describe(self, topic: str) -> int | None:
        try:  # all topics: asking for one by name would make a broker with auto-create create it
            md = self._admin.list_topics(timeout=10)
        except self._ck.KafkaException as e:
            raise BusError(f"Kafka at {self.config.bootstrap_servers} unreachable: {e}") from e
        t = md.topics.get(topic)
        if t is None or t.error is not None or not t.partitions:
            return None
        if any(p.leader < 0 for p in t.partitions.values()):
            return 0  # exists, leaders not elected yet
        return len(t.partitions)

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        wanted = partitions or self.config.partitions
        with self._lock:
            existing = self._partitions.get(topic) or self._describe(topic)
            if existing == 0:
                existing = self._wait_for_metadata(topic)
            if existing is None:
                new = self._ck.admin.NewTopic(
                    topic,
                    num_partitions=wanted,
                    replication_factor=self.config.replication_factor,
                    config={"retention.ms": str(self.config.retention_ms)},
                )
                future = self._admin.create_topics([new], operation_timeout=30)[topic]
                try:
                    future.result(timeout=60)
                except self._ck.KafkaException as e:
                    if e.args[0].code() != self._ck.KafkaError.TOPIC_ALREADY_EXISTS:
                        raise BusError(f"cannot create topic {topic!r}: {e.args[0].str()}") from e
                existing = self._wait_for_metadata(topic)
            elif partitions is not None and existing != partitions:
                raise BusError(f"topic {topic!r} exists with {existing} partitions, not {partitions}")
            self._partitions[topic] = existing

    def _wait_for_metadata(self, topic: str, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            n = self._describe(topic)
            if n:
                return n
            time.sleep(0.05)
        raise BusError(f"topic {topic!r} was created but its metadata did not appear within {timeout_s:.0f}s")

    def partitions(self, topic: str) -> int:
        n = self._partitions.get(topic)
        if n is None:
            self.create_topic(topic)
            n = self._partitions[topic]
        return n

    # -- producing -------------------------------------------------------------------------------------------
    def _on_delivery(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._failures.append(f"{msg.topic()}[{msg.partition()}]: {err.str()}")

    def publish(self, topic: str, key: str | None, value: bytes, headers: Headers = ()) -> None:
        self.publish_batch(topic, ((key, value),), headers)

    def publish_batch(self, topic: str, records: Iterable[tuple[str | None, bytes]], headers: Headers = ()) -> int:
        if self._closed:
            raise BusError("the bus is closed")
        n_parts = self.partitions(topic)
        produce = self._producer.produce
        hdrs = list(headers) if headers else None
        cache: dict[str | None, tuple[bytes | None, int]] = {}
        n = 0
        for key, value in records:
            hit = cache.get(key)
            if hit is None:
                hit = cache[key] = (None if key is None else key.encode(), partition_for(key, n_parts))
            try:
                produce(topic, value, hit[0], hit[1], headers=hdrs)
            except BufferError:
                self._wait_for_room(topic, hit[1])
                produce(topic, value, hit[0], hit[1], headers=hdrs)
            n += 1
            if n % 10_000 == 0:
                self._producer.poll(0)
        self._producer.poll(0)
        return n

    def _wait_for_room(self, topic: str, partition: int) -> None:
        deadline = time.monotonic() + self.config.publish_timeout_s
        while True:
            self._producer.poll(0.05)
            if len(self._producer) < self.config.queue_max_messages:
                return
            if time.monotonic() >= deadline:
                raise BackpressureError(topic, partition, 0.1)

    def flush(self, timeout: float = 30.0) -> None:
        remaining = self._producer.flush(timeout)
        failures, self._failures = self._failures, []
        if remaining:
            raise BusError(f"{remaining} record(s) not acknowledged by Kafka within {timeout:.0f}s")
        if failures:
            raise BusError(f"{len(failures)} record(s) failed: {failures[0]}")

    # -- consuming -------------------------------------------------------------------------------------------
    def end_offsets(self, topic: str) -> dict[int, int]:
        n = self.partitions(topic)
        if self._meta is None:
            self._meta = self._ck.Consumer({**self._common, "group.id": f"{self.config.client_id}-meta"})
        return {p: self._high_watermark(topic, p) for p in range(n)}

    def _high_watermark(self, topic: str, partition: int, timeout_s: float = 15.0) -> int:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return int(self._meta.get_watermark_offsets(self._ck.TopicPartition(topic, partition), timeout=5)[1])
            except self._ck.KafkaException as e:  # e.g. a leader election right after creation or a restart
                if not e.args[0].retriable() and e.args[0].code() != self._ck.KafkaError.NOT_LEADER_FOR_PARTITION:
                    raise BusError(f"offsets of {topic}[{partition}]: {e.args[0].str()}") from e
                if time.monotonic() > deadline:
                    raise BusError(f"offsets of {topic}[{partition}]: {e.args[0].str()}") from e
                time.sleep(0.1)

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        for t in topics:
            self.partitions(t)
        c = KafkaConsumer(self, group, topics)
        self._consumers.append(c)
        return c

    def close(self) -> None:
        if self._closed:
            return
        for c in self._consumers:
            c.close()
        try:
            self.flush()
        finally:
            self._closed = True
            if self._meta is not None:
                self._meta.close()


def _key(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode()


class KafkaConsumer(Consumer):
    """A member of a Kafka consumer group (see :class:`KafkaBus`)."""

    def __init__(self, bus: KafkaBus, group: str, topics: Sequence[str]) -> None:
        self._ck = bus._ck
        self._c = self._ck.Consumer(
            {
                **bus._common,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": bus.config.session_timeout_ms,
                "fetch.wait.max.ms": 50,
                "partition.assignment.strategy": "cooperative-sticky",
            }
        )
        self._c.subscribe(list(topics))
        self._pending: dict[tuple[str, int], int] = {}
        self._closed = False

    def poll(self, max_records: int = 1000, timeout: float = 1.0) -> list[Message]:
        if self._closed:
            raise BusError("poll on a closed consumer")
        out: list[Message] = []
        deadline = time.monotonic() + timeout
        while not out:
            left = deadline - time.monotonic()
            batch = self._c.consume(num_messages=max_records, timeout=max(left, 0.0))
            out = [
                Message(m.topic(), m.partition(), m.offset(), _key(m.key()), m.value(), tuple(m.headers() or ()))
                for m in batch
                if m.error() is None
            ]
            if len(out) != len(batch):
                for m in batch:
                    err = m.error()
                    if err is not None and err.fatal():
                        raise BusError(f"Kafka consumer failed: {err.str()}")
            if left <= 0:
                break
        # offsets grow within a partition in one poll: the last message of each partition is its newest
        self._pending.update({(m.topic, m.partition): m.offset + 1 for m in out})
        return out

    def commit(self, messages: Sequence[Message] | None = None) -> None:
        if self._closed:
            raise BusError("commit on a closed consumer")
        if messages is None:
            offsets, self._pending = self._pending, {}
        else:  # messages come in offset order per partition: the last one of each is the newest
            offsets = {(m.topic, m.partition): m.offset + 1 for m in messages}
        assigned = {(tp.topic, tp.partition) for tp in self._c.assignment()}
        tps = [self._ck.TopicPartition(t, p, o) for (t, p), o in offsets.items() if (t, p) in assigned]
        if not tps:
            return
        try:
            self._c.commit(offsets=tps, asynchronous=False)
        except self._ck.KafkaException as e:
            code = e.args[0].code()
            if code in (self._ck.KafkaError.REBALANCE_IN_PROGRESS, self._ck.KafkaError.ILLEGAL_GENERATION):
                return  # the partitions moved: their records will be delivered again (at-least-once)
            raise BusError(f"commit failed: {e.args[0].str()}") from e

    def assignment(self) -> list[tuple[str, int]]:
        return sorted((tp.topic, tp.partition) for tp in self._c.assignment())

    def committed(self, topic: str, partition: int) -> int | None:
        tp = self._c.committed([self._ck.TopicPartition(topic, partition)], timeout=10)[0]
        return None if tp.offset < 0 else int(tp.offset)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._c.close()
