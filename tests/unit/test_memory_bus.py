"""Behaviour of :class:`MemoryBus` beyond the shared contract: retention, backpressure, threads, rebalance."""

from __future__ import annotations

import threading
import time
from collections import defaultdict

import pytest

from marketpulse.bus.base import Consumer, Message, partition_for
from marketpulse.bus.memory import MemoryBus, MemoryBusConfig
from marketpulse.errors import BackpressureError, BusError


def make(partitions: int = 1, capacity: int = 5, publish_timeout_s: float = 0.0) -> MemoryBus:
    return MemoryBus(MemoryBusConfig(partitions=partitions, capacity=capacity, publish_timeout_s=publish_timeout_s))


def drain(consumer: Consumer, n: int, deadline_s: float = 5.0, max_records: int = 1000) -> list[Message]:
    got: list[Message] = []
    end = time.monotonic() + deadline_s
    while len(got) < n and time.monotonic() < end:
        got.extend(consumer.poll(min(max_records, n - len(got)), timeout=0.05))
    return got


def values(msgs: list[Message]) -> list[bytes]:
    return [m.value for m in msgs]


# -- backpressure and retention -----------------------------------------------------------------------------


def test_backpressure_when_a_registered_group_lags() -> None:
    bus = make(capacity=5)
    c = bus.consumer("g", ["t"])
    for i in range(5):
        bus.publish("t", None, b"%d" % i)
    with pytest.raises(BackpressureError) as err:
        bus.publish("t", None, b"5")
    assert (err.value.topic, err.value.partition) == ("t", 0)
    assert 0 < err.value.retry_after < 1
    assert bus.end_offsets("t") == {0: 5}  # the record that raised was not written
    assert bus.stats()["t"] == {"published": 5, "evicted": 0, "retained": 5}

    got = c.poll(3, timeout=0)
    assert [m.offset for m in got] == [0, 1, 2]
    with pytest.raises(BackpressureError):  # polled is not committed: still no room
        bus.publish("t", None, b"5")
    c.commit()
    assert bus.stats()["t"]["retained"] == 2
    for i in range(5, 8):
        bus.publish("t", None, b"%d" % i)
    with pytest.raises(BackpressureError):
        bus.publish("t", None, b"8")
    assert values(drain(c, 5)) == [b"3", b"4", b"5", b"6", b"7"]


def test_backpressure_counts_the_slowest_group() -> None:
    bus = make(capacity=3)
    fast, slow = bus.consumer("fast", ["t"]), bus.consumer("slow", ["t"])
    bus.publish_batch("t", [(None, b"a"), (None, b"b"), (None, b"c")])
    drain(fast, 3)
    fast.commit()
    with pytest.raises(BackpressureError):
        bus.publish("t", None, b"d")
    drain(slow, 1)
    slow.commit()
    bus.publish("t", None, b"d")
    assert bus.stats()["t"]["retained"] == 3


def test_group_stays_registered_after_its_consumers_close() -> None:
    bus = make(capacity=2)
    bus.consumer("g", ["t"]).close()
    bus.publish_batch("t", [(None, b"a"), (None, b"b")])
    with pytest.raises(BackpressureError):
        bus.publish("t", None, b"c")


def test_publish_batch_stops_at_the_full_partition() -> None:
    bus = make(capacity=5)
    bus.consumer("g", ["t"])
    with pytest.raises(BackpressureError):
        bus.publish_batch("t", [(None, b"%d" % i) for i in range(8)])
    assert bus.end_offsets("t") == {0: 5}
    assert bus.stats()["t"]["published"] == 5


def test_publish_waits_for_a_commit_then_succeeds() -> None:
    bus = make(capacity=2, publish_timeout_s=5.0)
    c = bus.consumer("g", ["t"])
    bus.publish_batch("t", [(None, b"a"), (None, b"b")])

    def consume_later() -> None:
        time.sleep(0.1)
        drain(c, 1)
        c.commit()

    worker = threading.Thread(target=consume_later)
    worker.start()
    t0 = time.monotonic()
    bus.publish("t", None, b"c")  # blocks until the commit frees one slot
    elapsed = time.monotonic() - t0
    worker.join()
    assert 0.05 < elapsed < 2.0
    assert bus.end_offsets("t") == {0: 3}


def test_publish_waits_at_most_the_timeout() -> None:
    bus = make(capacity=1, publish_timeout_s=0.2)
    bus.consumer("g", ["t"])
    bus.publish("t", None, b"a")
    t0 = time.monotonic()
    with pytest.raises(BackpressureError):
        bus.publish("t", None, b"b")
    assert 0.15 < time.monotonic() - t0 < 2.0


def test_size_retention_evicts_when_no_group_subscribed() -> None:
    bus = make(capacity=10)
    for i in range(25):
        bus.publish("t", None, b"%d" % i)
    bus.publish_batch("t", [(None, b"%d" % i) for i in range(25, 40)])
    assert bus.stats()["t"] == {"published": 40, "evicted": 30, "retained": 10}
    assert bus.end_offsets("t") == {0: 40}  # offsets keep growing
    with bus.consumer("late", ["t"]) as c:  # a new group starts at the earliest retained record
        got = drain(c, 10)
        assert c.poll(timeout=0.05) == []
    assert [m.offset for m in got] == list(range(30, 40))
    assert values(got) == [b"%d" % i for i in range(30, 40)]


def test_trimming_keeps_offsets_growing() -> None:
    bus = make(capacity=50)
    c = bus.consumer("g", ["t"])
    seen: list[int] = []
    for round_ in range(40):  # 40 * 30 records through a 50-slot partition
        bus.publish_batch("t", [(None, b"%d" % (round_ * 30 + i)) for i in range(30)])
        seen.extend(m.offset for m in drain(c, 30))
        c.commit()
    assert seen == list(range(1200))
    assert bus.stats()["t"]["retained"] == 0
    assert c.committed("t", 0) == 1200


# -- consumers ----------------------------------------------------------------------------------------------


def test_poll_wakes_up_when_a_record_arrives() -> None:
    bus = make()
    c = bus.consumer("g", ["t"])
    threading.Timer(0.1, bus.publish, args=("t", "k", b"x")).start()
    t0 = time.monotonic()
    got = c.poll(timeout=5.0)
    assert values(got) == [b"x"]
    assert time.monotonic() - t0 < 2.0


def test_poll_is_fair_across_partitions() -> None:
    bus = make(partitions=2, capacity=10_000)
    keys = {partition_for(f"k{i}", 2): f"k{i}" for i in range(10)}
    bus.publish_batch("t", [(keys[0], b"%d" % i) for i in range(1000)])
    bus.publish_batch("t", [(keys[1], b"%d" % i) for i in range(500)])
    c = bus.consumer("g", ["t"])
    first = c.poll(max_records=10, timeout=0)
    assert sorted(m.partition for m in first) == [0] * 5 + [1] * 5  # an equal share each
    second = [m for _ in range(4) for m in c.poll(max_records=1, timeout=0)]  # the start rotates
    assert [m.partition for m in second] in ([0, 1, 0, 1], [1, 0, 1, 0])
    per_part: dict[int, list[int]] = defaultdict(list)
    for m in first + second + drain(c, 1486):
        per_part[m.partition].append(m.offset)
    assert per_part == {0: list(range(1000)), 1: list(range(500))}


def test_closed_consumer_refuses_poll_and_commit() -> None:
    bus = make()
    c = bus.consumer("g", ["t"])
    c.close()
    c.close()  # idempotent
    with pytest.raises(BusError):
        c.poll(timeout=0)
    with pytest.raises(BusError):
        c.commit()


def test_closing_the_bus_closes_consumers_and_publishing() -> None:
    bus = make()
    c = bus.consumer("g", ["t"])
    woke: list[BaseException] = []

    def blocked_poll() -> None:
        try:
            c.poll(timeout=5.0)
        except BusError as e:
            woke.append(e)

    t = threading.Thread(target=blocked_poll)
    t.start()
    time.sleep(0.05)
    bus.close()
    t.join(2.0)
    assert woke and not t.is_alive()
    with pytest.raises(BusError):
        bus.publish("t", None, b"x")
    bus.close()  # idempotent


def test_create_topic_rejects_non_positive_counts() -> None:
    with pytest.raises(BusError):
        make().create_topic("t", 0)


def test_str_value_is_rejected() -> None:
    with pytest.raises(TypeError):
        make().publish("t", None, "text")  # type: ignore[arg-type]


def test_rebalance_when_a_second_consumer_joins_and_leaves() -> None:
    bus = make(partitions=4, capacity=10_000)
    c1 = bus.consumer("g", ["t"])
    assert c1.assignment() == [("t", p) for p in range(4)]
    records = [(f"k{i % 20}", b"%d" % i) for i in range(200)]
    bus.publish_batch("t", records)
    before = drain(c1, 40, max_records=10)
    c1.commit()

    c2 = bus.consumer("g", ["t"])
    assert c1.assignment() == [("t", 0), ("t", 2)]
    assert c2.assignment() == [("t", 1), ("t", 3)]
    c2_msgs = drain(c2, 1000, deadline_s=0.3)
    c2.commit()
    c1_msgs = drain(c1, 1000, deadline_s=0.3)
    c1.commit()
    assert {m.partition for m in c1_msgs} <= {0, 2}
    assert {m.partition for m in c2_msgs} <= {1, 3}
    assert sorted(values(before + c1_msgs + c2_msgs)) == sorted(v for _, v in records)

    bus.publish_batch("t", [(f"k{i % 20}", b"late%d" % i) for i in range(40)])
    c2.close()
    assert c1.assignment() == [("t", p) for p in range(4)]
    late = drain(c1, 1000, deadline_s=0.3)  # c2's partitions resume at its commits: only the new records
    assert sorted(values(late)) == sorted(b"late%d" % i for i in range(40))


def test_revoked_partition_restarts_at_the_committed_offset() -> None:
    bus = make(partitions=2, capacity=10_000)
    key1 = next(f"k{i}" for i in range(100) if partition_for(f"k{i}", 2) == 1)
    bus.publish_batch("t", [(key1, b"%d" % i) for i in range(10)])
    c1 = bus.consumer("g", ["t"])
    polled = drain(c1, 10)  # polled, not committed
    assert len(polled) == 10
    c2 = bus.consumer("g", ["t"])  # takes partition 1 from c1
    c1.commit()  # partition 1 is no longer c1's: ignored
    c1.commit(polled)  # explicitly too
    assert c1.committed("t", 1) is None
    assert values(drain(c2, 10)) == [b"%d" % i for i in range(10)]


def test_producer_and_consumer_threads_agree_exactly() -> None:
    bus = MemoryBus(MemoryBusConfig(partitions=4, capacity=500, publish_timeout_s=10.0))
    c = bus.consumer("g", ["t"])
    n_per_producer, producers = 20_000, 2
    total = n_per_producer * producers
    received: list[Message] = []
    errors: list[BaseException] = []

    def produce(tag: int) -> None:
        try:
            batch: list[tuple[str | None, bytes]] = []
            for i in range(n_per_producer):
                rec = (f"p{tag}k{i % 13}", b"%d:%d" % (tag, i))
                if i % 100 < 10:  # some single publishes, after whatever was batched before them
                    bus.publish_batch("t", batch)
                    batch = []
                    bus.publish("t", *rec)
                else:
                    batch.append(rec)
                    if len(batch) >= 64:
                        bus.publish_batch("t", batch)
                        batch = []
            bus.publish_batch("t", batch)
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    def consume() -> None:
        end = time.monotonic() + 30
        while len(received) < total and time.monotonic() < end:
            received.extend(c.poll(256, timeout=0.1))
            c.commit()

    threads = [threading.Thread(target=produce, args=(i,)) for i in range(producers)]
    threads.append(threading.Thread(target=consume))
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(received) == total
    assert len({m.value for m in received}) == total
    per_key: dict[str | None, list[int]] = defaultdict(list)
    for m in received:
        per_key[m.key].append(int(m.value.split(b":")[1]))
    assert all(seq == sorted(seq) for seq in per_key.values())
    assert bus.stats()["t"] == {"published": total, "evicted": 0, "retained": 0}
