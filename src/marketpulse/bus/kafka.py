"""Kafka bus on confluent-kafka (librdkafka): the same contract as the memory bus, on a real broker."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


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
