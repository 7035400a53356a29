"""In-process bus: the embedded default (see :mod:`marketpulse.bus.base` for the contract).

:class:`MemoryBus` keeps every partition as an append-only list of ``(key, value, headers)`` tuples under one
lock shared by two conditions (``data`` wakes pollers, ``room`` wakes publishers blocked by backpressure).

Contracts beyond :mod:`marketpulse.bus.base`, all covered by ``tests/unit/test_memory_bus.py``:

* **Retention.** A group that ever subscribed to a topic stays *registered* on it (its committed offsets
  persist after its consumers close, as in Kafka). Records that every registered group has committed past
  are trimmed. A partition holds at most ``capacity`` records: when it is full and a registered group lags,
  ``publish`` waits up to ``publish_timeout_s`` for a commit to free room, then raises
  :class:`~marketpulse.errors.BackpressureError` without writing the record. A topic that no group ever
  subscribed to keeps the newest ``capacity`` records per partition (size retention; ``stats()`` counts
  the evicted ones). Offsets never restart: a trimmed partition keeps its numbering.
* **Assignment.** The live members of a group, in join order, share each subscribed topic's partitions
  round-robin. The assignment is recomputed eagerly when a member joins or leaves; a partition newly
  assigned to a member starts at the group's committed offset (or the earliest retained one). Commits for
  partitions a consumer does not own are ignored.
* **Closing.** A closed consumer's ``poll``/``commit`` raise :class:`~marketpulse.errors.BusError`; after
  ``MemoryBus.close()`` publishing raises it too and every consumer is closed.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from marketpulse.bus.base import Bus, Consumer, Headers, Message, partition_for
from marketpulse.errors import BackpressureError, BusError

_Record = tuple[str | None, bytes, Headers]
_TP = tuple[str, int]
_RETRY_AFTER_S = 0.05  # the hint given with BackpressureError
_KEY_CACHE_MAX = 65_536  # key -> partition memo per topic (keys are symbols: a bounded set in practice)


class MemoryBusConfig(BaseModel):
    """``bus.type: memory`` — in-process, bounded, thread-safe."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["memory"] = "memory"
    partitions: int = Field(4, gt=0, le=1024, description="default partitions of a new topic")
    capacity: int = Field(100_000, gt=0, description="records kept per partition before backpressure")
    publish_timeout_s: float = Field(5.0, ge=0, description="how long publish waits for room, then raises")


class _Partition:
    """One log. ``records[i]`` has offset ``start + i``; offsets below ``low`` are trimmed (dead slots kept
    until they outnumber the live ones, so trimming is O(1) amortised)."""

    __slots__ = ("low", "records", "start")

    def __init__(self) -> None:
        self.records: list[_Record] = []
        self.start = 0
        self.low = 0

    @property
    def end(self) -> int:
        return self.start + len(self.records)

    def trim_to(self, offset: int) -> int:
        """Drop records below ``offset``; returns how many were dropped."""
        offset = min(offset, self.end)
        dropped = offset - self.low
        if dropped <= 0:
            return 0
        self.low = offset
        dead = offset - self.start
        if dead >= 64 and dead * 2 >= len(self.records):
            del self.records[:dead]
            self.start = offset
        return dropped


class _Topic:
    __slots__ = ("evicted", "groups", "keys", "name", "parts", "published")

    def __init__(self, name: str, partitions: int) -> None:
        self.name = name
        self.parts = [_Partition() for _ in range(partitions)]
        self.groups: set[str] = set()  # every group that ever subscribed
        self.keys: dict[str, int] = {}
        self.published = 0
        self.evicted = 0

    def partition_of(self, key: str | None) -> int:
        if key is None:
            return 0
        p = self.keys.get(key)
        if p is None:
            if len(self.keys) >= _KEY_CACHE_MAX:
                self.keys.clear()
            p = self.keys[key] = partition_for(key, len(self.parts))
        return p


class _Group:
    __slots__ = ("committed", "members", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.committed: dict[_TP, int] = {}
        self.members: dict[int, MemoryConsumer] = {}  # member id (join order) -> consumer


class MemoryBus(Bus):
    """Thread-safe, bounded, in-process bus (see the module docstring for its retention rules)."""

    def __init__(self, config: MemoryBusConfig | None = None) -> None:
        self.config = config or MemoryBusConfig()
        self._lock = threading.Lock()
        self._data = threading.Condition(self._lock)
        self._room = threading.Condition(self._lock)
        self._topics: dict[str, _Topic] = {}
        self._groups: dict[str, _Group] = {}
        self._member_ids = itertools.count()
        self._closed = False

    # -- topics ---------------------------------------------------------------------------------------------

    def _topic(self, name: str, partitions: int | None = None) -> _Topic:
        """The topic, created when unknown. Caller holds the lock."""
        t = self._topics.get(name)
        if t is None:
            n = self.config.partitions if partitions is None else partitions
            if n <= 0:
                raise BusError(f"topic {name!r}: partitions must be positive, got {n}")
            t = self._topics[name] = _Topic(name, n)
        elif partitions is not None and partitions != len(t.parts):
            raise BusError(f"topic {name!r} exists with {len(t.parts)} partitions, not {partitions}")
        return t

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        """Create ``topic``; idempotent. :class:`BusError` if it exists with another partition count."""
        with self._lock:
            self._topic(topic, partitions)

    def partitions(self, topic: str) -> int:
        """Partition count of ``topic`` (created with the default count when unknown)."""
        with self._lock:
            return len(self._topic(topic).parts)

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Per partition, the offset of the next record (created with the default count when unknown)."""
        with self._lock:
            return {p: part.end for p, part in enumerate(self._topic(topic).parts)}

    def stats(self) -> dict[str, dict[str, int]]:
        """Per topic: ``published`` and ``evicted`` (size retention) counts and ``retained`` records."""
        with self._lock:
            return {
                name: {
                    "published": t.published,
                    "evicted": t.evicted,
                    "retained": sum(part.end - part.low for part in t.parts),
                }
                for name, t in self._topics.items()
            }

    # -- publishing -----------------------------------------------------------------------------------------

    def publish(self, topic: str, key: str | None, value: bytes, headers: Headers = ()) -> None:
        """Append one record; may block up to ``publish_timeout_s``, then :class:`BackpressureError`."""
        self.publish_batch(topic, ((key, value),), headers)

    def publish_batch(self, topic: str, records: Iterable[tuple[str | None, bytes]], headers: Headers = ()) -> int:
        """Append records in order under one lock acquisition; returns how many were written.

        On :class:`BackpressureError` the records before the one that raised are written (and visible).
        """
        if type(headers) is not tuple:
            headers = tuple(headers)
        capacity = self.config.capacity
        n = 0
        with self._lock:
            if self._closed:
                raise BusError("bus is closed")
            t = self._topic(topic)
            parts, keys = t.parts, t.keys
            try:
                for key, value in records:
                    if type(value) is not bytes:
                        value = bytes(value)  # copies a bytearray/memoryview; a str raises TypeError
                    p = 0 if key is None else keys.get(key)
                    if p is None:
                        p = t.partition_of(key)
                    part = parts[p]
                    if part.end - part.low >= capacity:
                        self._make_room(t, p, n)
                    part.records.append((key, value, headers))
                    n += 1
            finally:
                t.published += n
                if n:
                    self._data.notify_all()
        return n

    def _make_room(self, t: _Topic, p: int, pending: int) -> None:
        """Free one slot of a full partition: evict (no group) or wait for a commit. Caller holds the lock."""
        part = t.parts[p]
        capacity = self.config.capacity
        if not t.groups:
            t.evicted += part.trim_to(part.end - capacity + 1)
            return
        if pending:
            self._data.notify_all()  # let consumers see what this batch wrote before we sleep
        deadline = time.monotonic() + self.config.publish_timeout_s
        while part.end - part.low >= capacity:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BackpressureError(t.name, p, _RETRY_AFTER_S)
            self._room.wait(remaining)
            if self._closed:
                raise BusError("bus is closed")

    def _trim(self, t: _Topic, p: int) -> None:
        """Trim what every registered group has committed past. Caller holds the lock."""
        floor: int | None = None
        for g in t.groups:
            c = self._groups[g].committed.get((t.name, p))
            if c is None:
                return
            floor = c if floor is None else min(floor, c)
        if floor is not None and t.parts[p].trim_to(floor):
            self._room.notify_all()

    # -- consuming ------------------------------------------------------------------------------------------

    def consumer(self, group: str, topics: Sequence[str]) -> MemoryConsumer:
        """Join ``group`` (registering it on ``topics``, created when unknown) and rebalance the group."""
        if isinstance(topics, str):
            raise TypeError("topics must be a sequence of topic names, not a str")
        with self._lock:
            if self._closed:
                raise BusError("bus is closed")
            g = self._groups.get(group)
            if g is None:
                g = self._groups[group] = _Group(group)
            names = tuple(dict.fromkeys(topics))
            for name in names:
                self._topic(name).groups.add(group)
            c = MemoryConsumer(self, g, next(self._member_ids), names)
            g.members[c.member_id] = c
            self._rebalance(g)
        return c

    def _rebalance(self, g: _Group) -> None:
        """Assign partitions round-robin over members in join order. Caller holds the lock."""
        members = [g.members[i] for i in sorted(g.members)]
        wanted: dict[int, set[_TP]] = {c.member_id: set() for c in members}
        i = 0
        for name in sorted({name for c in members for name in c.topics}):
            subs = [c for c in members if name in c.topics]
            for p in range(len(self._topics[name].parts)):
                wanted[subs[i % len(subs)].member_id].add((name, p))
                i += 1
        for c in members:
            c._assign(wanted[c.member_id])
        self._data.notify_all()  # pollers may now own partitions with data

    def _leave(self, c: MemoryConsumer) -> None:
        """Remove ``c`` from its group. Caller holds the lock."""
        if c.member_id in c.group.members:
            del c.group.members[c.member_id]
            self._rebalance(c.group)
        self._data.notify_all()  # wake c if it is blocked in poll

    def close(self) -> None:
        """Close every consumer and refuse further publishing; idempotent."""
        with self._lock:
            self._closed = True
            for g in self._groups.values():
                for c in list(g.members.values()):
                    c._closed = True
                g.members.clear()
            self._data.notify_all()
            self._room.notify_all()


class MemoryConsumer(Consumer):
    """A member of a :class:`MemoryBus` group. One thread polls and commits; the bus lock guards its state."""

    def __init__(self, bus: MemoryBus, group: _Group, member_id: int, topics: tuple[str, ...]) -> None:
        self._bus = bus
        self.group = group
        self.member_id = member_id
        self.topics = topics
        self._positions: dict[_TP, int] = {}  # next offset to return, per owned partition
        self._polled: dict[_TP, int] = {}  # offset after the last polled record, per owned partition
        self._order: list[_TP] = []  # owned partitions, rotated by poll for fairness
        self._closed = False

    def _assign(self, tps: set[_TP]) -> None:
        """Take a new assignment. Caller holds the bus lock."""
        for tp in set(self._positions) - tps:
            del self._positions[tp]
            self._polled.pop(tp, None)
        for tp in tps - set(self._positions):
            part = self._bus._topics[tp[0]].parts[tp[1]]
            self._positions[tp] = max(self.group.committed.get(tp, part.low), part.low)
        self._order = sorted(self._positions)

    def assignment(self) -> list[tuple[str, int]]:
        """The ``(topic, partition)`` pairs this consumer currently owns."""
        with self._bus._lock:
            return sorted(self._positions)

    def poll(self, max_records: int = 1000, timeout: float = 1.0) -> list[Message]:
        """Up to ``max_records`` records, offset order per partition; blocks up to ``timeout`` for data.

        Fair across partitions: each owned partition gets an equal share first (the start rotates between
        polls), the remainder goes to whichever still has records.
        """
        if max_records <= 0:
            raise ValueError("max_records must be positive")
        bus = self._bus
        deadline: float | None = None
        chunks: list[tuple[str, int, int, list[_Record]]] = []
        with bus._lock:
            while True:
                if self._closed:
                    raise BusError("consumer is closed")
                if self._order and self._take(max_records, chunks):
                    break
                now = time.monotonic()
                if deadline is None:
                    deadline = now + max(timeout, 0.0)
                if now >= deadline:
                    return []
                bus._data.wait(deadline - now)
        return [
            Message(topic, p, off, k, v, h)
            for topic, p, first, recs in chunks
            for off, (k, v, h) in enumerate(recs, first)
        ]

    def _take(self, max_records: int, chunks: list[tuple[str, int, int, list[_Record]]]) -> int:
        """Move up to ``max_records`` records into ``chunks``; returns how many. Caller holds the bus lock."""
        topics = self._bus._topics
        order = self._order
        self._order = order = order[1:] + order[:1]
        share = max(1, max_records // len(order))
        left = max_records
        for quota_pass in (True, False):
            for tp in order:
                if left <= 0:
                    break
                part = topics[tp[0]].parts[tp[1]]
                pos = max(self._positions[tp], part.low)
                take = min(part.end - pos, share if quota_pass else left, left)
                if take <= 0:
                    continue
                i = pos - part.start
                chunks.append((tp[0], tp[1], pos, part.records[i : i + take]))
                self._positions[tp] = self._polled[tp] = pos + take
                left -= take
        return max_records - left

    def commit(self, messages: Sequence[Message] | None = None) -> None:
        """Store the offset after the last polled (or given) record per owned partition; frees room."""
        offsets: dict[_TP, int] | None = None
        if messages is not None:
            offsets = {}
            for m in messages:
                offsets[(m.topic, m.partition)] = m.offset + 1
        bus = self._bus
        with bus._lock:
            if self._closed:
                raise BusError("consumer is closed")
            if offsets is None:
                offsets = dict(self._polled)
            committed = self.group.committed
            for tp, off in offsets.items():
                if tp in self._positions:  # not owned (e.g. revoked by a rebalance): ignored
                    committed[tp] = off
                    bus._trim(bus._topics[tp[0]], tp[1])

    def committed(self, topic: str, partition: int) -> int | None:
        """The group's committed offset (kept after its members close), or None."""
        with self._bus._lock:
            return self.group.committed.get((topic, partition))

    def close(self) -> None:
        """Leave the group; uncommitted records go to the next owner. Idempotent."""
        with self._bus._lock:
            if not self._closed:
                self._closed = True
                self._bus._leave(self)
