"""The local engine: deterministic at any speed, hostile text never crashes it, late ticks are dead-lettered."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from marketpulse.bus.base import DEADLETTER, FEATURES_MARKET, MARKET_BARS, MARKET_TICKS, SENTIMENT_SCORES, SOCIAL_POSTS
from marketpulse.bus.memory import MemoryBus, MemoryBusConfig
from marketpulse.clock import ReplayClock
from marketpulse.config import load_settings
from marketpulse.demo import demo_sources
from marketpulse.engine.local import LocalEngine
from marketpulse.events import BarBatch, DeadLetter, FeatureBatch, Post, SentimentScore, TickBatch, decode, encode
from marketpulse.pipeline import Pipeline
from marketpulse.store.memory import MemoryHistoryStore, MemoryOnlineStore

OUTPUTS = (MARKET_BARS, FEATURES_MARKET, SENTIMENT_SCORES)


class _NoSleep(threading.Event):
    """A stop flag whose waits return at once: a paced clock without real sleeping."""

    def wait(self, timeout: float | None = None) -> bool:
        return False


def _run(speed: float | str, tmp_symbols: list[str]) -> dict[str, object]:
    bus = MemoryBus(MemoryBusConfig(capacity=2_000_000, partitions=4))
    collector = bus.consumer("test-collector", OUTPUTS)  # registered first: every output is retained for it
    settings = load_settings()
    pipeline = Pipeline(settings, bus, MemoryOnlineStore(), MemoryHistoryStore())
    engine = LocalEngine(bus, pipeline.online, pipeline.history)
    clock = ReplayClock(speed, stop=_NoSleep())  # type: ignore[arg-type]
    pipeline.replay(demo_sources(tmp_symbols), clock, after_emit=engine.drain)
    engine.drain()
    engine.finish()
    engine.drain()
    bars, feats, scores = [], [], []
    while batch := collector.poll(10_000, timeout=0.0):
        for m in batch:
            e = decode(m.value)
            if isinstance(e, BarBatch):
                bars.append(e.to_frame())
            elif isinstance(e, FeatureBatch):
                feats.append(e.to_frame())
            elif isinstance(e, SentimentScore) and e.model == "lexicon":
                scores.append((e.ref_id, e.symbol, e.ts, e.polarity, e.intensity, tuple(sorted(e.probs.items()))))
    engine.close()
    pipeline.close()
    key = ["symbol", "ts"]
    return {
        "bars": pd.concat(bars).sort_values(key).reset_index(drop=True),
        "features": pd.concat(feats).sort_values(key).reset_index(drop=True),
        "scores": sorted(scores),
        "late": engine.counters.late_ticks,
    }


def test_same_input_at_different_speeds_gives_identical_outputs() -> None:
    symbols = ["MSFT", "BAC"]
    fast = _run("max", symbols)
    paced = _run(36_000.0, symbols)  # slices of one hour of event time: very different micro-batches
    assert len(fast["bars"]) > 1000 and len(fast["features"]) > 1000 and len(fast["scores"]) > 50
    pd.testing.assert_frame_equal(fast["bars"], paced["bars"])
    pd.testing.assert_frame_equal(fast["features"], paced["features"])
    assert fast["scores"] == paced["scores"]
    assert fast["late"] == paced["late"] == 0


def _engine() -> tuple[MemoryBus, LocalEngine]:
    bus = MemoryBus(MemoryBusConfig(capacity=100_000))
    return bus, LocalEngine(bus, MemoryOnlineStore(), MemoryHistoryStore())


HOSTILE = [
    "",
    "x" * 1_000_000 + " $AAPL",
    "\x00\x01\x02\xff\xfe binary \x1b[31m $AAPL",
    # (a lone surrogate never reaches the engine: ingest validation dead-letters it as bad_encoding)
    "🚀🚀🚀🔥💎🙌",
    "ÃƒÂ© mojibake $AAPL is great",
    "$AAPL " * 500,
    "<script>alert(1)</script> $AAPL rallies",
]


def test_hostile_text_never_crashes_the_engine_and_every_post_is_accounted_for() -> None:
    bus, engine = _engine()
    dead = bus.consumer("test-dead", [DEADLETTER])
    t0 = datetime(2024, 1, 2, 15, tzinfo=UTC)
    posts = [
        Post(ts=t0 + timedelta(seconds=i), id=f"p{i}", text=text, source="twitter", symbols=("AAPL",))
        for i, text in enumerate(HOSTILE)
    ]
    bus.publish_events(SOCIAL_POSTS, posts)
    engine.drain()
    c = engine.counters
    assert c.posts == len(HOSTILE)
    rejected = sum(c.posts_rejected.values())
    kept = c.posts - rejected
    assert rejected >= 3  # empty, binary, only emoji at least
    assert c.scores >= kept  # one score per kept post and symbol
    letters = [decode(m.value) for m in dead.poll(1000, timeout=0.0)]
    assert len(letters) == rejected
    assert all(isinstance(d, DeadLetter) and d.reason.startswith("text_") for d in letters)
    engine.close()


def test_late_ticks_are_dead_lettered_not_lost() -> None:
    bus, engine = _engine()
    dead = bus.consumer("test-dead", [DEADLETTER])
    base = int(pd.Timestamp("2024-01-02 14:30", tz="UTC").value)
    on_time = TickBatch.from_arrays("AAA", base + np.arange(0, 180) * 10**9, np.full(180, 10.0), np.ones(180))
    bus.publish(MARKET_TICKS, "AAA", encode(on_time))
    engine.drain()
    late = TickBatch.from_arrays("AAA", [base + 5 * 10**9], [10.5], [3.0])  # its minute closed long ago
    bus.publish(MARKET_TICKS, "AAA", encode(late))
    engine.drain()
    assert engine.counters.late_ticks == 1
    letters = [decode(m.value) for m in dead.poll(100, timeout=0.0)]
    assert [d.reason for d in letters] == ["late"]
    engine.close()


@pytest.mark.parametrize("bad", [b"not msgpack", b"\x92\x01\xc0"])
def test_undecodable_records_are_counted_and_skipped(bad: bytes) -> None:
    bus, engine = _engine()
    bus.publish(MARKET_TICKS, "AAA", bad)
    engine.drain()
    assert engine.counters.undecodable == 1
    engine.close()
