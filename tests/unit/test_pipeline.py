"""The embedded pipeline: sources → validation → bus (memory) + online store (memory) + history (SQLite)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from marketpulse.bus.base import DEADLETTER, MARKET_BARS, MARKET_TICKS, NEWS_ARTICLES, SOCIAL_POSTS
from marketpulse.bus.memory import MemoryBus, MemoryBusConfig
from marketpulse.clock import ReplayClock
from marketpulse.config import Settings, ValidationConfig
from marketpulse.events import AnyEvent, BarBatch, DeadLetter, TickBatch, decode
from marketpulse.ingest import open_source
from marketpulse.ingest.market import CsvMarketSource, FrameMarketSource
from marketpulse.pipeline import Counters, Pipeline
from marketpulse.store.memory import MemoryOnlineStore
from marketpulse.store.sqlite import SqliteHistoryStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


class RecordingPipeline(Pipeline):
    """Remembers every emission (kind, first event time) in the order the replay made them."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.emissions: list[tuple[str, int]] = []

    def emit_market(self, frame: pd.DataFrame, kind: str, interval_s: int = 60, synthetic: bool = False) -> int:
        self.emissions.append((kind, int(frame["ts"].iloc[0].value)))
        return super().emit_market(frame, kind, interval_s, synthetic)

    def emit_text(self, events: Any, kind: str) -> int:
        self.emissions.append((kind, int(events[0].ts.timestamp() * 1e9)))
        return super().emit_text(events, kind)


class RecordingClock(ReplayClock):
    """A paced clock that never sleeps: it records the event times it is asked to wait for."""

    def __init__(self, speed: float, stop_after: int | None = None) -> None:
        super().__init__(speed)
        self.asked: list[int] = []
        self.stop_after = stop_after

    def wait_until(self, ts_ns: int) -> bool:
        self.asked.append(ts_ns)
        if self.stop_after is not None and len(self.asked) > self.stop_after:
            self.stop.set()
        return not self.stop.is_set()


class InstantStop(threading.Event):
    """A stop flag whose ``wait`` returns at once (never set), recording how long the clock wanted to sleep."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(float(timeout or 0.0))
        return False


@pytest.fixture
def pipeline(tmp_path: Path) -> Iterator[RecordingPipeline]:
    settings = Settings(data_dir=tmp_path, validation=ValidationConfig())
    p = RecordingPipeline(
        settings,
        MemoryBus(MemoryBusConfig(partitions=4, capacity=100_000)),
        MemoryOnlineStore(),
        SqliteHistoryStore(data_dir=tmp_path),
    )
    yield p
    p.close()


def consume(p: Pipeline, topic: str) -> list[tuple[str | None, AnyEvent]]:
    """Everything on ``topic`` through a fresh consumer group, decoded, in offset order per partition."""
    out: list[tuple[str | None, AnyEvent]] = []
    with p.bus.consumer(f"test-{topic}", [topic]) as consumer:
        while batch := consumer.poll(max_records=10_000, timeout=0.05):
            out.extend((m.key, decode(m.value)) for m in batch)
            consumer.commit()
    return out


def assert_accounted(c: Counters) -> None:
    assert c.read == c.accepted + c.deadlettered
    assert sum(c.reasons.values()) == c.deadlettered


def bars_frame(symbols: tuple[str, ...] = ("AAA", "BBB"), minutes: int = 10) -> pd.DataFrame:
    start = pd.Timestamp("2024-01-02 14:31", tz="UTC")
    rows = []
    for m in range(minutes):
        for k, sym in enumerate(symbols):
            p = 100.0 + 10 * k + m / 10
            rows.append((start + pd.Timedelta(minutes=m), sym, p, p + 0.5, p - 0.5, p + 0.1, 100.0 + m))
    return pd.DataFrame(rows, columns=["timestamp", "symbol", "open", "high", "low", "close", "volume"])


# -- market data -------------------------------------------------------------------------------------------------


def test_ticks_replay_publishes_one_batch_per_symbol_stores_and_caches(pipeline: RecordingPipeline) -> None:
    c = pipeline.replay([open_source(FIXTURES / "ticks_good.csv", "ticks")])
    assert_accounted(c)
    assert (c.read, c.accepted, c.deadlettered, c.stored, c.published) == (8, 8, 0, 8, 2)

    msgs = consume(pipeline, MARKET_TICKS)
    assert sorted(k for k, _ in msgs) == ["AAPL", "MSFT"]
    by_symbol = {k: e for k, e in msgs}
    assert all(isinstance(e, TickBatch) and e.key == k for k, e in by_symbol.items())
    msft = by_symbol["MSFT"].to_frame()  # type: ignore[union-attr]
    assert msft["price"].tolist() == [370.10, 370.11, 370.12, 370.09]
    assert msft["seq"].tolist() == [0, 1, 0, 0]
    assert msft["ts"].is_monotonic_increasing
    aapl = by_symbol["AAPL"].to_frame()  # type: ignore[union-attr]
    assert aapl["size"].tolist() == [200.0, 10.0, 10.0, 75.0]
    assert aapl["seq"].tolist() == [0, 0, 1, 0]
    assert not by_symbol["AAPL"].synthetic  # type: ignore[union-attr]

    stored = pipeline.history.read_frame("ticks", "AAPL")
    assert stored["price"].tolist() == [185.20, 185.21, 185.22, 185.19]
    assert stored["seq"].tolist() == [0, 0, 1, 0]
    assert pipeline.history.count("ticks") == 8

    latest = pipeline.online.get("ticks", "MSFT")
    assert latest is not None
    assert latest["price"] == 370.09
    assert latest["ts"] == pd.Timestamp("2024-01-02 14:30:01", tz="UTC").value
    assert pipeline.online.symbols("ticks") == ["AAPL", "MSFT"]


def test_paced_bars_publish_one_batch_per_symbol_per_slice(pipeline: RecordingPipeline) -> None:
    frame = bars_frame(minutes=10)
    clock = RecordingClock(speed=3000)  # 0.1 s of wall time per slice = 300 s of event time
    assert clock.slice_ns() == 300 * 10**9
    c = pipeline.replay([FrameMarketSource("mem", "bars", frame)], clock)
    assert_accounted(c)
    assert (c.read, c.accepted, c.stored) == (20, 20, 20)
    assert c.published == 4  # 2 slices x 2 symbols

    msgs = consume(pipeline, MARKET_BARS)
    assert len(msgs) == 4
    for sym in ("AAA", "BBB"):
        batches = [e for k, e in msgs if k == sym]
        assert all(isinstance(e, BarBatch) and e.symbol == sym for e in batches)
        frames = [e.to_frame() for e in batches]  # type: ignore[union-attr]
        assert [len(f) for f in frames] == [5, 5]
        got = pd.concat(frames, ignore_index=True)
        expected = frame[frame["symbol"] == sym].reset_index(drop=True)
        assert got["ts"].tolist() == expected["timestamp"].tolist()  # per-symbol order kept across slices
        assert got["close"].tolist() == expected["close"].tolist()
        assert batches[0].interval_s == 60  # type: ignore[union-attr]
    assert [k for k, _ in pipeline.emissions] == ["bars", "bars"]
    assert clock.asked == sorted(clock.asked)

    stored = pipeline.history.read_frame("bars", "BBB")
    assert len(stored) == 10
    assert stored["volume"].tolist() == [100.0 + m for m in range(10)]
    latest = pipeline.online.get("bars", "AAA")
    assert latest is not None and latest["close"] == pytest.approx(101.0)
    assert latest["interval_s"] == 60


def test_unsorted_batch_is_emitted_in_time_order(pipeline: RecordingPipeline) -> None:
    """Rows of different symbols out of time order inside one batch are emitted sorted (per symbol order kept)."""
    frame = pd.DataFrame(
        {
            "timestamp": pd.to_datetime(
                ["2024-01-02 14:35", "2024-01-02 14:31", "2024-01-02 14:36", "2024-01-02 14:32"], utc=True
            ),
            "symbol": ["AAA", "BBB", "AAA", "BBB"],
            "price": [1.0, 2.0, 1.1, 2.1],
            "size": [1.0, 1.0, 1.0, 1.0],
        }
    )
    clock = RecordingClock(speed=600)  # 60 s slices
    c = pipeline.replay([FrameMarketSource("mem", "ticks", frame)], clock)
    assert c.accepted == 4
    assert clock.asked == sorted(clock.asked)
    assert len(clock.asked) == 4


def test_synthetic_ticks_are_published_but_not_stored(pipeline: RecordingPipeline) -> None:
    frame = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-02 14:30", periods=6, freq="10s", tz="UTC"),
            "symbol": ["AAA", "BBB"] * 3,
            "price": [10.0, 20.0, 10.1, 20.1, 10.2, 20.2],
            "size": 1.0,
        }
    )
    c = pipeline.replay([FrameMarketSource("sim", "ticks", frame, synthetic=True)])
    assert_accounted(c)
    assert (c.accepted, c.published, c.stored) == (6, 2, 0)
    msgs = consume(pipeline, MARKET_TICKS)
    assert len(msgs) == 2
    assert all(isinstance(e, TickBatch) and e.synthetic for _, e in msgs)
    assert pipeline.history.count("ticks") == 0
    latest = pipeline.online.get("ticks", "BBB")
    assert latest is not None and latest["synthetic"] is True and latest["price"] == 20.2


def test_dead_letters_go_to_the_topic_and_the_history_store(pipeline: RecordingPipeline) -> None:
    c = pipeline.replay([open_source(FIXTURES / "bars_broken.csv", "bars")])
    assert_accounted(c)
    assert (c.read, c.accepted, c.deadlettered) == (13, 3, 10)
    assert c.stored == 3
    on_bus = [e for _, e in consume(pipeline, DEADLETTER)]
    assert len(on_bus) == 10
    assert all(isinstance(e, DeadLetter) for e in on_bus)
    stored = pipeline.history.read_events("deadletter", "")
    assert len(stored) == 10
    for letters in (on_bus, stored):
        by_line = {int(d.position.rsplit(":", 1)[1]): d for d in letters}  # type: ignore[union-attr]
        assert set(by_line) == {3, 4, 5, 6, 7, 10, 11, 12, 13, 14}
        d = by_line[5]
        assert (d.reason, d.field, d.kind) == ("high_below_low", "high", "bars")  # type: ignore[union-attr]
        assert d.source.endswith("bars_broken.csv")  # type: ignore[union-attr]
        assert d.position == f"{d.source}:5"  # type: ignore[union-attr]
        assert d.record == "2024-01-02 14:34:00,AAPL,100.9,99.0,100.5,100.8,800"  # type: ignore[union-attr]
    assert pipeline.history.read_frame("bars", "AAPL")["close"].tolist() == [100.5, 101.1, 101.7]


def test_posts_and_news_replay(pipeline: RecordingPipeline) -> None:
    c = pipeline.replay([open_source(FIXTURES / "posts.jsonl", "posts"), open_source(FIXTURES / "news.jsonl", "news")])
    assert_accounted(c)
    assert (c.read, c.accepted, c.deadlettered) == (12, 7, 5)
    assert dict(c.by_kind) == {"posts": 4, "news": 3}
    posts = [e for _, e in consume(pipeline, SOCIAL_POSTS)]
    news = [e for _, e in consume(pipeline, NEWS_ARTICLES)]
    assert sorted(p.id for p in posts) == ["p1", "p1", "p2", "p7"]  # type: ignore[union-attr]
    assert sorted(a.id for a in news) == ["n1", "n2", "n3"]  # type: ignore[union-attr]
    assert len(consume(pipeline, DEADLETTER)) == 5
    # a post is stored once per symbol; one without symbols under ""
    assert [p.id for p in pipeline.history.read_events("posts", "MSFT")] == ["p2", "p7"]  # type: ignore[union-attr]
    assert [a.id for a in pipeline.history.read_events("news", "")] == ["n3"]  # type: ignore[union-attr]


# -- merging and pacing -------------------------------------------------------------------------------------------


def _posts_file(tmp_path: Path) -> Path:
    lines = [
        '{"id": "a", "created_at": "2024-01-02T14:29:30Z", "text": "pre-open", "source": "x", "symbols": ["AAA"]}',
        '{"id": "b", "created_at": "2024-01-02T14:33:30Z", "text": "mid", "source": "x", "symbols": ["AAA"]}',
        '{"id": "c", "created_at": "2024-01-02T14:36:10Z", "text": "later", "source": "x", "symbols": ["BBB"]}',
        '{"id": "d", "created_at": "2024-01-02T15:00:00Z", "text": "after all bars", "source": "x"}',
    ]
    path = tmp_path / "posts.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bars_and_posts_are_merged_by_event_time(pipeline: RecordingPipeline, tmp_path: Path) -> None:
    bars = FrameMarketSource("mem", "bars", bars_frame(minutes=8))
    posts = open_source(_posts_file(tmp_path), "posts")
    clock = RecordingClock(speed=600)  # 60 s slices: one per bar minute
    c = pipeline.replay([bars, posts], clock)
    assert_accounted(c)
    assert (c.read, c.accepted) == (20, 20)
    times = [t for _, t in pipeline.emissions]
    assert times == sorted(times)
    assert clock.asked == times
    kinds = [k for k, _ in pipeline.emissions]
    assert kinds == ["posts"] + ["bars"] * 3 + ["posts"] + ["bars"] * 3 + ["posts"] + ["bars"] * 2 + ["posts"]
    assert pipeline.history.count("bars") == 16
    assert pipeline.history.count("posts") == 4


def test_paced_clock_spaces_emissions_without_sleeping(tmp_path: Path) -> None:
    """At 60x, one minute of event time is one second of wall time; the stop flag's wait sees those delays."""
    stop = InstantStop()
    clock = ReplayClock(60, stop=stop)
    settings = Settings(data_dir=tmp_path)
    p = Pipeline(settings, MemoryBus(), MemoryOnlineStore(), SqliteHistoryStore(data_dir=tmp_path))
    try:
        c = p.replay([FrameMarketSource("mem", "bars", bars_frame(("AAA",), minutes=5))], clock)
    finally:
        p.close()
    assert c.published == 5  # 6 s slices at 60x: one bar each
    assert len(stop.waits) == 4  # the first emission sets the origin, each later one waits for its due time
    assert stop.waits == pytest.approx([1.0, 2.0, 3.0, 4.0], abs=0.25)  # nothing slept, so the delays add up


def test_stopping_ends_the_replay_with_counters(pipeline: RecordingPipeline) -> None:
    clock = RecordingClock(speed=600, stop_after=3)
    c = pipeline.replay([FrameMarketSource("mem", "bars", bars_frame(minutes=10))], clock)
    assert_accounted(c)
    assert len(pipeline.emissions) == 3
    assert c.published == 6
    assert pipeline.history.count("bars") == 6


def test_progress_callback_gets_the_final_counters(pipeline: RecordingPipeline) -> None:
    seen: list[int] = []
    c = pipeline.replay([open_source(FIXTURES / "ticks_good.csv", "ticks")], on_progress=lambda k: seen.append(k.read))
    assert seen and seen[-1] == c.read == 8


def _sources() -> list[Any]:
    return [
        CsvMarketSource(FIXTURES / "bars_broken.csv", "bars"),
        open_source(FIXTURES / "ticks_good.csv", "ticks"),
        open_source(FIXTURES / "posts.jsonl", "posts"),
    ]


def _snapshot(p: Pipeline) -> dict[str, Any]:
    h = p.history
    out: dict[str, Any] = {}
    for kind in ("bars", "ticks"):
        for sym in h.symbols(kind):
            out[f"{kind}/{sym}"] = h.read_frame(kind, sym).to_dict("list")
    for sym in h.symbols("posts"):
        out[f"posts/{sym}"] = [(e.ts, e.id, e.source) for e in h.read_events("posts", sym)]  # type: ignore[union-attr]
    return out


def test_replaying_twice_changes_no_stored_data(pipeline: RecordingPipeline) -> None:
    pipeline.replay(_sources())
    first = _snapshot(pipeline)
    assert first
    pipeline.replay(_sources())
    assert _snapshot(pipeline) == first


def test_replaying_twice_stores_dead_letters_once(pipeline: RecordingPipeline) -> None:
    pipeline.replay(_sources())
    first = pipeline.history.count("deadletter")
    assert first == 15
    pipeline.replay(_sources())
    assert pipeline.history.count("deadletter") == first


# -- counters -------------------------------------------------------------------------------------------------------


def test_counters_as_dict(pipeline: RecordingPipeline, tmp_path: Path) -> None:
    c = pipeline.replay([open_source(FIXTURES / "bars_broken.csv", "bars")])
    d = c.as_dict()
    assert set(d) == {
        "read",
        "accepted",
        "deadlettered",
        "reasons",
        "published",
        "stored",
        "accepted_by_kind",
        "seconds",
    }
    assert (d["read"], d["accepted"], d["deadlettered"]) == (13, 3, 10)
    assert d["reasons"]["missing_value"] == 2
    assert list(d["reasons"]) == sorted(d["reasons"])
    assert d["accepted_by_kind"] == {"bars": 3}
    assert isinstance(d["seconds"], float) and d["seconds"] >= 0

    lobster = tmp_path / "X_2012-06-21_34200000_57600000_message_1.csv"
    lobster.write_text("34200.1,1,1,100,1000000,1\n34200.2,4,1,100,1000000,1\n34200.3,3,2,100,1000000,1\n")
    c2 = Pipeline(pipeline.settings, MemoryBus(), MemoryOnlineStore(), pipeline.history).replay(
        [open_source(lobster, "ticks")]
    )
    assert c2.as_dict()["ignored_non_trade_messages"] == 2
    assert (c2.read, c2.accepted) == (1, 1)


def test_counters_add_keeps_the_identity() -> None:
    c = Counters()
    assert c.as_dict()["read"] == 0 and "ignored_non_trade_messages" not in c.as_dict()
    assert np.isclose(c.seconds, c.seconds, atol=1)
