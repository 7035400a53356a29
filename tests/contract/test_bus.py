"""The bus contract (see :mod:`marketpulse.bus.base`), run against every backend of ``BUS_FACTORIES``.

Written to hold on a real broker too: consumption polls in a loop until a deadline (:func:`drain`) instead
of expecting everything from one poll, group joins get time to settle, and "nothing more" is checked by
polling for a short quiet period (:func:`assert_quiet`).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from marketpulse.bus.base import Bus, Consumer, Message, partition_for
from marketpulse.errors import BusError
from marketpulse.events import Format, Tick, decode, schema_header

PARTITIONS = 4
POLL_S = 0.05  # one poll's timeout inside the loops
DEADLINE_S = 10.0  # give up on a drain after this long (memory finishes in milliseconds)
QUIET_S = 0.3  # how long "nothing more arrives" is watched
SETTLE_S = 0.2  # idle polling before records flow, so a broker completes group joins first


def drain(consumer: Consumer, n: int, deadline_s: float = DEADLINE_S, max_records: int = 1000) -> list[Message]:
    """Poll until ``n`` records arrived or ``deadline_s`` passed; never asks for more than ``n`` in total."""
    got: list[Message] = []
    end = time.monotonic() + deadline_s
    while len(got) < n:
        left = end - time.monotonic()
        if left <= 0:
            break
        got.extend(consumer.poll(min(max_records, n - len(got)), timeout=min(POLL_S, left)))
    return got


def assert_quiet(*consumers: Consumer, seconds: float = QUIET_S) -> None:
    """Nothing more is delivered to ``consumers`` within ``seconds`` (no duplicate, no phantom record)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for c in consumers:
            extra = c.poll(100, timeout=POLL_S)
            assert extra == [], f"unexpected records: {[(m.partition, m.offset, m.value) for m in extra]}"


def settle(*consumers: Consumer, seconds: float = SETTLE_S, one_group: bool = True) -> None:
    """Poll idle consumers until the group joins have ended: every member owns partitions and, within one
    group, no partition is owned twice (at least ``seconds``, at most ``DEADLINE_S``)."""
    start = time.monotonic()
    while True:
        for c in consumers:
            assert c.poll(100, timeout=POLL_S) == []
        owned = [set(c.assignment()) for c in consumers]
        disjoint = not one_group or sum(len(o) for o in owned) == len(set().union(*owned))
        if time.monotonic() - start >= seconds and all(owned) and disjoint:
            return
        assert time.monotonic() - start < DEADLINE_S, f"group join did not settle: {owned}"


def keyed_records(n: int, keys: int) -> list[tuple[str, bytes]]:
    """``n`` records over ``keys`` interleaved keys; every value is unique and names its key and rank."""
    return [(f"K{i % keys:03d}", f"K{i % keys:03d}:{i // keys}".encode()) for i in range(n)]


def by_key(records: Sequence[tuple[str | None, bytes] | Message]) -> dict[str | None, list[bytes]]:
    """Values per key, in the given order."""
    out: dict[str | None, list[bytes]] = defaultdict(list)
    for r in records:
        key, value = (r.key, r.value) if isinstance(r, Message) else r
        out[key].append(value)
    return dict(out)


def fresh(bus: Bus, topic: str, partitions: int = PARTITIONS) -> str:
    bus.create_topic(topic, partitions)
    return topic


# -- partitioning and offsets -------------------------------------------------------------------------------


def test_offsets_are_consecutive_from_zero_per_partition(bus: Bus, topic: str, group: str) -> None:
    fresh(bus, topic)
    records = keyed_records(200, keys=13)
    assert bus.publish_batch(topic, records) == 200
    with bus.consumer(group, [topic]) as c:
        got = drain(c, 200)
    offsets: dict[int, list[int]] = defaultdict(list)
    for m in got:
        assert m.topic == topic
        offsets[m.partition].append(m.offset)
    assert sum(len(v) for v in offsets.values()) == 200
    for p, seen in offsets.items():
        assert seen == list(range(len(seen))), f"partition {p}"


def test_same_key_goes_to_the_same_partition(bus: Bus, topic: str, group: str) -> None:
    fresh(bus, topic)
    bus.publish_batch(topic, keyed_records(120, keys=30))
    with bus.consumer(group, [topic]) as c:
        got = drain(c, 120)
    assert len(got) == 120
    seen: dict[str | None, set[int]] = defaultdict(set)
    for m in got:
        seen[m.key].add(m.partition)
        assert m.partition == partition_for(m.key, PARTITIONS)
    assert all(len(ps) == 1 for ps in seen.values())


def test_keys_spread_over_partitions(bus: Bus, topic: str, group: str) -> None:
    fresh(bus, topic)
    bus.publish_batch(topic, keyed_records(100, keys=100))
    with bus.consumer(group, [topic]) as c:
        got = drain(c, 100)
    counts: dict[int, int] = defaultdict(int)
    for m in got:
        counts[m.partition] += 1
    assert set(counts) == set(range(PARTITIONS))
    assert max(counts.values()) < 60  # 100 distinct keys: no partition takes most of them


def test_keyless_records_go_to_partition_zero(bus: Bus, topic: str, group: str) -> None:
    fresh(bus, topic)
    for i in range(5):
        bus.publish(topic, None, f"v{i}".encode())
    with bus.consumer(group, [topic]) as c:
        got = drain(c, 5)
    assert [(m.partition, m.offset, m.key, m.value) for m in got] == [(0, i, None, f"v{i}".encode()) for i in range(5)]


def test_per_key_order_is_kept(bus: Bus, topic: str, group: str) -> None:
    fresh(bus, topic)
    records = keyed_records(600, keys=7)
    for key, value in records[:100]:
        bus.publish(topic, key, value)
    bus.publish_batch(topic, records[100:350])
    bus.publish_batch(topic, iter(records[350:]))  # any iterable, not only a list
    with bus.consumer(group, [topic]) as c:
        got = drain(c, 600, max_records=37)
        assert_quiet(c)
    assert by_key(got) == by_key(records)


def test_end_offsets(bus: Bus, topic: str) -> None:
    fresh(bus, topic)
    assert bus.end_offsets(topic) == dict.fromkeys(range(PARTITIONS), 0)
    records = keyed_records(90, keys=11)
    bus.publish_batch(topic, records)
    bus.flush()
    expected = dict.fromkeys(range(PARTITIONS), 0)
    for key, _ in records:
        expected[partition_for(key, PARTITIONS)] += 1
    assert bus.end_offsets(topic) == expected


def test_create_topic_is_idempotent(bus: Bus, topic: str) -> None:
    bus.create_topic(topic, 3)
    bus.create_topic(topic, 3)
    bus.create_topic(topic)  # no count: accepts the existing one
    assert bus.partitions(topic) == 3
    with pytest.raises(BusError):
        bus.create_topic(topic, 5)
    assert bus.partitions(topic) == 3


def test_unknown_topic_is_created_on_demand(bus: Bus, topic: str) -> None:
    n = bus.partitions(topic)
    assert n > 0
    assert bus.end_offsets(topic) == dict.fromkeys(range(n), 0)


# -- values, headers, events --------------------------------------------------------------------------------


def test_headers_round_trip(bus: Bus, topic: str, group: str) -> None:
    fresh(bus, topic)
    headers = (("trace", b"abc"), ("bin", b"\x00\xff\x10"), ("empty", b""))
    bus.publish(topic, "AAPL", b"payload", headers)
    bus.publish(topic, "AAPL", b"")
    with bus.consumer(group, [topic]) as c:
        first, second = drain(c, 2)
    assert first.headers == headers
    assert first.header("bin") == b"\x00\xff\x10"
    assert first.header("missing") is None
    assert (first.key, first.value) == ("AAPL", b"payload")
    assert (second.value, second.headers) == (b"", ())


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_publish_event_round_trip(bus: Bus, topic: str, group: str, fmt: Format) -> None:
    fresh(bus, topic)
    events = [
        Tick(ts=datetime(2024, 3, 1, 14, 30, s, tzinfo=UTC), symbol=sym, price=100.0 + s, size=10.0 * s)
        for s, sym in enumerate(["AAPL", "MSFT", "AAPL"])
    ]
    bus.publish_event(topic, events[0], fmt)
    assert bus.publish_events(topic, events[1:], fmt) == 2
    with bus.consumer(group, [topic]) as c:
        got = drain(c, 3)
    assert len(got) == 3
    decoded = {}
    for m in got:
        ev = decode(m.value, fmt)
        assert m.key == ev.key
        assert m.partition == partition_for(ev.key, PARTITIONS)
        assert m.header("schema") == schema_header(ev).encode() == b"marketpulse.Tick/v1"
        decoded[(m.partition, m.offset)] = ev
    assert sorted(decoded.values(), key=lambda e: e.ts) == events


# -- consumer groups ----------------------------------------------------------------------------------------


def test_poll_timeout_returns_empty(bus: Bus, topic: str, group: str) -> None:
    fresh(bus, topic)
    with bus.consumer(group, [topic]) as c:
        t0 = time.monotonic()
        assert c.poll(10, timeout=0.2) == []
        elapsed = time.monotonic() - t0
    assert 0.15 <= elapsed < 2.5


def test_committed_is_none_before_any_commit(bus: Bus, topic: str, group: str) -> None:
    fresh(bus, topic)
    bus.publish_batch(topic, keyed_records(10, keys=3))
    with bus.consumer(group, [topic]) as c:
        assert len(drain(c, 10)) == 10
        assert all(c.committed(topic, p) is None for p in range(PARTITIONS))
        c.commit()
        assert {p: c.committed(topic, p) for p in range(PARTITIONS)} == {
            p: (n or None) for p, n in bus.end_offsets(topic).items()
        }


def test_resume_after_commit_has_no_gap_and_no_duplicate(bus: Bus, topic: str, group: str) -> None:
    fresh(bus, topic)
    records = keyed_records(300, keys=17)
    # Another group that never commits: a bounded backend must keep every record for it, so the resume
    # below can only be right by honouring the committed offsets (not by starting at the earliest record).
    bus.consumer(group + ".other", [topic]).close()
    bus.publish_batch(topic, records)
    c1 = bus.consumer(group, [topic])
    polled = drain(c1, 180, max_records=7)  # mid-stream, over many polls
    assert len(polled) == 180
    done = polled[:110]  # per partition a prefix of what was polled
    c1.commit(done)
    expected_committed: dict[int, int] = {}
    for m in done:
        expected_committed[m.partition] = m.offset + 1
    c1.close()  # polled[110:] was never committed: it must come again

    with bus.consumer(group, [topic]) as c2:
        for p in range(PARTITIONS):
            assert c2.committed(topic, p) == expected_committed.get(p)
        rest = drain(c2, 300 - 110, max_records=50)
        assert_quiet(c2)
    assert by_key(done + rest) == by_key(records)  # every record once, per-key order kept
    redelivered = {(m.partition, m.offset) for m in polled[110:]}
    assert redelivered <= {(m.partition, m.offset) for m in rest}


def test_uncommitted_records_are_redelivered(bus: Bus, topic: str, group: str) -> None:
    fresh(bus, topic)
    records = keyed_records(50, keys=5)
    bus.publish_batch(topic, records)
    with bus.consumer(group, [topic]) as c1:
        first = drain(c1, 50)
    assert len(first) == 50
    with bus.consumer(group, [topic]) as c2:
        again = drain(c2, 50)
        c2.commit()
        assert_quiet(c2)
    assert by_key(again) == by_key(records)
    with bus.consumer(group, [topic]) as c3:  # after the commit: nothing left for the group
        assert_quiet(c3)


def test_two_groups_each_see_everything(bus: Bus, topic: str, group: str) -> None:
    fresh(bus, topic)
    records = keyed_records(150, keys=9)
    with bus.consumer(group + ".a", [topic]) as a, bus.consumer(group + ".b", [topic]) as b:
        settle(a, b, one_group=False)
        bus.publish_batch(topic, records)
        got_a = drain(a, 150)
        a.commit()
        got_b = drain(b, 150)  # a's commit does not move b
        assert_quiet(a, b)
    assert by_key(got_a) == by_key(records)
    assert by_key(got_b) == by_key(records)


def test_two_consumers_of_a_group_split_partitions(bus: Bus, topic: str, group: str) -> None:
    fresh(bus, topic)
    records = keyed_records(400, keys=40)
    with bus.consumer(group, [topic]) as c1, bus.consumer(group, [topic]) as c2:
        settle(c1, c2)
        bus.publish_batch(topic, records)
        got: dict[int, list[Message]] = {1: [], 2: []}
        end = time.monotonic() + DEADLINE_S
        while len(got[1]) + len(got[2]) < 400 and time.monotonic() < end:
            for i, c in ((1, c1), (2, c2)):
                msgs = c.poll(50, timeout=POLL_S)
                got[i].extend(msgs)
                c.commit()
        assert_quiet(c1, c2)
    parts1 = {m.partition for m in got[1]}
    parts2 = {m.partition for m in got[2]}
    assert parts1 and parts2, "both members must own partitions"
    assert not parts1 & parts2
    assert parts1 | parts2 == set(range(PARTITIONS))
    assert by_key(got[1] + got[2]) == by_key(records)


def test_consumer_subscribes_to_several_topics(bus: Bus, topic: str, group: str) -> None:
    other = fresh(bus, topic + ".b", 2)
    fresh(bus, topic)
    bus.publish_batch(topic, keyed_records(20, keys=4))
    bus.publish_batch(other, keyed_records(10, keys=3))
    with bus.consumer(group, [topic, other]) as c:
        got = drain(c, 30)
        assert_quiet(c)
    assert sorted((m.topic, m.value) for m in got) == sorted(
        [(topic, v) for _, v in keyed_records(20, keys=4)] + [(other, v) for _, v in keyed_records(10, keys=3)]
    )
