"""The bus seam: named topics, keyed partitions, consumer groups with committed offsets.

Contract (every backend passes ``tests/contract/test_bus.py`` unchanged):

* **Topics and partitions.** A topic has a fixed number of partitions. A record with a key goes to
  ``partition_for(key, n)`` so that all records of one key (a symbol) land in one partition, in publish order.
  A record without a key goes to partition 0 (a deterministic choice; it keeps keyless streams ordered).
* **Offsets.** Each partition is an append-only log; offsets start at 0 and grow by one per record.
* **Consumer groups.** ``consumer(group, topics)`` joins ``group``. Partitions of the subscribed topics are
  shared among the group's live consumers. A consumer starts each partition at the group's committed offset, or
  at the beginning (``earliest``) when the group never committed. ``commit()`` stores, per partition, the offset
  *after* the last record returned by ``poll`` (or after the given messages). Delivery is at-least-once: records
  polled but not committed are delivered again to the next consumer of the group; a consumer restarted after a
  commit resumes exactly there, with no gap and no duplicate.
* **Backpressure.** A bounded backend raises :class:`~marketpulse.errors.BackpressureError` (after waiting up to
  its publish timeout) instead of growing without bound; the record that raised was not written.
* **Values** are bytes (see :mod:`marketpulse.events` for the codec); headers are ``(name, bytes)`` pairs.
  :meth:`Bus.publish_event` adds the ``schema`` header and uses the event's key.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import NamedTuple, Self

from marketpulse.events import Event, Format, encode, schema_header

# Topic names, identical on every backend.
MARKET_TICKS = "market.ticks"
MARKET_BARS = "market.bars"
SOCIAL_POSTS = "social.posts"
NEWS_ARTICLES = "news.articles"
DEADLETTER = "ingest.deadletter"
FEATURES_MARKET = "features.market"
SENTIMENT_SCORES = "sentiment.scores"
PREDICTIONS_PRICE = "predictions.price"
SIGNALS_FUSED = "signals.fused"
ALERTS = "alerts"
ALL_TOPICS = (
    MARKET_TICKS,
    MARKET_BARS,
    SOCIAL_POSTS,
    NEWS_ARTICLES,
    DEADLETTER,
    FEATURES_MARKET,
    SENTIMENT_SCORES,
    PREDICTIONS_PRICE,
    SIGNALS_FUSED,
    ALERTS,
)

Headers = tuple[tuple[str, bytes], ...]


def partition_for(key: str | None, partitions: int) -> int:
    """Stable partition of a key (CRC-32, identical across processes and runs)."""
    if key is None:
        return 0
    return zlib.crc32(key.encode("utf-8")) % partitions


class Message(NamedTuple):
    """One record as delivered by :meth:`Consumer.poll` (a named tuple: cheap to build on the hot path)."""

    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: Headers = ()

    def header(self, name: str) -> bytes | None:
        for k, v in self.headers:
            if k == name:
                return v
        return None


class Consumer(ABC):
    """A member of a consumer group. Not thread-safe: one thread polls and commits."""

    @abstractmethod
    def poll(self, max_records: int = 1000, timeout: float = 1.0) -> list[Message]:
        """Up to ``max_records`` records (in offset order per partition); ``[]`` after ``timeout`` seconds."""

    @abstractmethod
    def commit(self, messages: Sequence[Message] | None = None) -> None:
        """Commit the offset after each partition's last given message (default: everything polled so far)."""

    @abstractmethod
    def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset for a partition, or None when it never committed there."""

    @abstractmethod
    def assignment(self) -> list[tuple[str, int]]:
        """The sorted ``(topic, partition)`` pairs this member owns now (empty before the group join ends)."""

    @abstractmethod
    def close(self) -> None:
        """Leave the group (uncommitted records go to the next member). Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


class Bus(ABC):
    """Publish/subscribe over named, partitioned topics."""

    @abstractmethod
    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        """Create ``topic`` (idempotent); publishing to an unknown topic creates it with the default count."""

    @abstractmethod
    def partitions(self, topic: str) -> int:
        """Number of partitions of ``topic`` (creating it when unknown)."""

    @abstractmethod
    def publish(self, topic: str, key: str | None, value: bytes, headers: Headers = ()) -> None:
        """Append one record to ``topic`` on the partition of ``key``."""

    def publish_batch(self, topic: str, records: Iterable[tuple[str | None, bytes]], headers: Headers = ()) -> int:
        """Append many records in order (per key); returns how many were written. Backends may do better."""
        n = 0
        for key, value in records:
            self.publish(topic, key, value, headers)
            n += 1
        return n

    def publish_event(self, topic: str, event: Event, fmt: Format = "msgpack") -> None:
        """Encode ``event`` and publish it under its key with the ``schema`` header."""
        self.publish(topic, event.key, encode(event, fmt), (("schema", schema_header(event).encode()),))

    def publish_events(self, topic: str, events: Iterable[Event], fmt: Format = "msgpack") -> int:
        """Publish many events (see :meth:`publish_event`); returns how many."""
        n = 0
        for event in events:
            self.publish_event(topic, event, fmt)
            n += 1
        return n

    @abstractmethod
    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset the next published record will get (the high watermark)."""

    @abstractmethod
    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        """Join ``group`` and subscribe to ``topics``."""

    def flush(self, timeout: float = 10.0) -> None:  # noqa: B027 - optional hook
        """Block until every published record is durable (a no-op when publish is synchronous)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release resources. Idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
