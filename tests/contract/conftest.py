"""Fixtures of the bus contract suite.

Every backend listed in :data:`BUS_FACTORIES` runs ``test_bus.py`` unchanged. A factory takes no argument and
returns a fresh :class:`~marketpulse.bus.base.Bus`; isolation between tests comes from the unique topic and
group names of the ``topic`` and ``group`` fixtures, so a shared broker (Kafka) can join the list: append
``("kafka", factory)`` here, or a factory that calls ``pytest.skip`` when no broker is reachable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from uuid import uuid4

import pytest

from marketpulse.bus.base import Bus
from marketpulse.bus.memory import MemoryBus, MemoryBusConfig

BusFactory = Callable[[], Bus]


def _memory() -> Bus:
    return MemoryBus(MemoryBusConfig(partitions=4, capacity=10_000, publish_timeout_s=0.5))


def _kafka() -> Bus:
    from marketpulse.bus.kafka import KafkaBus, KafkaBusConfig
    from realservices import require_kafka

    return KafkaBus(KafkaBusConfig(bootstrap_servers=require_kafka(), partitions=4, linger_ms=1.0))


BUS_FACTORIES: list[tuple[str, BusFactory]] = [
    ("memory", _memory),
    ("kafka", _kafka),
]


@pytest.fixture(params=[factory for _, factory in BUS_FACTORIES], ids=[name for name, _ in BUS_FACTORIES])
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    """A fresh bus of each listed backend, closed after the test."""
    factory: BusFactory = request.param
    b = factory()
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def topic() -> str:
    """A topic name no other test (or earlier run against a shared broker) has used."""
    return f"test.{uuid4().hex[:8]}"


@pytest.fixture
def group() -> str:
    """A consumer group name unique to this test."""
    return f"test-group.{uuid4().hex[:8]}"
