"""The engine scores each source's sentiment against the returns that followed it and weighs sources by it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from marketpulse.bus.memory import MemoryBus, MemoryBusConfig
from marketpulse.engine.local import LocalEngine
from marketpulse.events import BarBatch, Post, encode
from marketpulse.store.memory import MemoryHistoryStore, MemoryOnlineStore

GOOD = ("$AAA great profit, strong growth, record earnings beat", "$AAA excellent results, upgrade, bullish outlook")
BAD = ("$AAA terrible loss, lawsuit, fraud fears", "$AAA awful guidance cut, downgrade, bearish collapse")


def test_a_source_whose_sentiment_anticipates_returns_weighs_more_than_a_noisy_one() -> None:
    bus = MemoryBus(MemoryBusConfig(capacity=100_000))
    engine = LocalEngine(bus, MemoryOnlineStore(), MemoryHistoryStore())
    rng = np.random.default_rng(4)
    day0 = datetime(2024, 1, 1, tzinfo=UTC)
    close = 100.0
    for d in range(120):
        day = day0 + timedelta(days=d)
        up = bool(rng.random() < 0.5)  # tomorrow's move, announced by "oracle" today and ignored by "noise"
        posts = [
            Post(ts=day + timedelta(hours=14), id=f"o{d}", text=GOOD[d % 2] if up else BAD[d % 2], source="oracle",
                 author=f"a{d}", symbols=("AAA",)),
            Post(ts=day + timedelta(hours=15), id=f"n{d}", text=(GOOD if rng.random() < 0.5 else BAD)[(d + 1) % 2],
                 source="noise", author=f"b{d}", symbols=("AAA",)),
        ]  # fmt: skip
        bus.publish_batch("social.posts", [(p.key, encode(p)) for p in posts])
        engine.drain()
        close *= float(np.exp(0.01 if up else -0.01))
        ts = np.array([int((day + timedelta(days=1, hours=21)).timestamp() * 1e9)], dtype=np.int64)
        bar = BarBatch.from_arrays("AAA", ts, [close], [close], [close], [close], [1e6], interval_s=86_400)
        bus.publish_batch("market.bars", [("AAA", encode(bar))])
        engine.drain()
    rel = engine.state.reliability
    assert set(rel.sources()) == {"oracle", "noise"}
    oracle, noise = rel.get("oracle"), rel.get("noise")
    assert oracle.n > 50 and noise.n > 50, "posts were paired with the returns that followed them"
    assert oracle.ic > 0.5 and abs(noise.ic) < 0.3
    assert rel.weight("oracle") > 2 * rel.weight("noise")
    assert engine.state.sentiment.reliability is rel
