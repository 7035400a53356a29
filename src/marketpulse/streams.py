"""Long-running bus stages, each a consumer-group member that commits only after its work is stored.

* :func:`persist` — events on the bus → the history and online stores. Delivery is at-least-once and history
  writes are idempotent upserts, so after a crash and restart every record is stored exactly once.
* :func:`ingest_topic` — raw CSV lines on a topic (e.g. written by a Kafka Connect source connector) →
  validation → validated batches on the bus and in the stores; rejected lines go to the dead-letter topic with
  their position ``topic/partition:offset``.

Both run until ``stop`` is set, or until no record arrived for ``idle_s`` seconds (when given) while the
consumer owned partitions (a group join that waits for a killed member's session to expire is not idleness).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from marketpulse.bus import Bus
from marketpulse.bus.base import Message
from marketpulse.errors import CodecError, SourceError
from marketpulse.events import AnyEvent, Article, BarBatch, DeadLetter, Post, TickBatch, decode
from marketpulse.ingest.base import MarketKind
from marketpulse.ingest.market import CsvMarketSource
from marketpulse.ingest.validate import MarketValidator
from marketpulse.pipeline import Pipeline
from marketpulse.store import HistoryStore, OnlineStore
from marketpulse.store.base import BAR_COLUMNS, TICK_COLUMNS

PERSIST_GROUP = "marketpulse-persist"


@dataclass
class StreamCounters:
    """What a stream stage did: records consumed, rows stored, undecodable records, commits."""

    consumed: int = 0
    stored: int = 0
    undecodable: int = 0
    commits: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "consumed": self.consumed,
            "stored": self.stored,
            "undecodable": self.undecodable,
            "commits": self.commits,
            "stored_by_kind": dict(self.by_kind),
            "seconds": round(time.perf_counter() - self.started, 3),
        }


def _run(
    bus: Bus,
    group: str,
    topics: Sequence[str],
    handle: Callable[[list[Message]], None],
    stop: threading.Event | None,
    idle_s: float | None,
    max_records: int,
    counters: StreamCounters,
) -> None:
    stop = stop or threading.Event()
    last = time.monotonic()
    with bus.consumer(group, topics) as consumer:
        while not stop.is_set():
            messages = consumer.poll(max_records, timeout=0.2)
            if not messages:
                if not consumer.assignment():
                    last = time.monotonic()  # still joining (e.g. a killed member's session has not expired)
                elif idle_s is not None and time.monotonic() - last >= idle_s:
                    return
                continue
            last = time.monotonic()
            handle(messages)
            counters.consumed += len(messages)
            consumer.commit(messages)
            counters.commits += 1


def persist(
    bus: Bus,
    history: HistoryStore,
    online: OnlineStore,
    topics: Sequence[str],
    *,
    group: str = PERSIST_GROUP,
    stop: threading.Event | None = None,
    idle_s: float | None = None,
    max_records: int = 2_000,
) -> StreamCounters:
    """Store every event of ``topics``; commit after each stored batch. Returns when stopped or idle."""
    counters = StreamCounters()

    def handle(messages: list[Message]) -> None:
        events: list[AnyEvent] = []
        for m in messages:
            try:
                events.append(decode(m.value))
            except CodecError:
                counters.undecodable += 1  # not an event (e.g. a raw line): nothing to store here
        _store(events, history, online, counters)

    _run(bus, group, topics, handle, stop, idle_s, max_records, counters)
    return counters


def _store(events: list[AnyEvent], history: HistoryStore, online: OnlineStore, counters: StreamCounters) -> None:
    frames: dict[str, list[pd.DataFrame]] = defaultdict(list)
    others: dict[str, list[Any]] = defaultdict(list)
    for e in events:
        if isinstance(e, TickBatch):
            if not e.synthetic:
                frames["ticks"].append(e.to_frame())
        elif isinstance(e, BarBatch):
            frames["bars"].append(e.to_frame())
        elif isinstance(e, Article):
            others["news"].append(e)
        elif isinstance(e, Post):
            others["posts"].append(e)
        elif isinstance(e, DeadLetter):
            others["deadletter"].append(e)
        else:
            others[type(e).__name__.lower()].append(e)
    for kind, parts in frames.items():
        frame = pd.concat(parts, ignore_index=True)
        columns = list(BAR_COLUMNS if kind == "bars" else TICK_COLUMNS)
        counters.stored += history.write_frame(kind, frame[columns])
        counters.by_kind[kind] += len(frame)
        last = frame.groupby("symbol", sort=False).tail(1)
        latest = {
            str(row["symbol"]): {
                str(k): (int(v.value) if k == "ts" else float(v)) for k, v in row.items() if k != "symbol"
            }
            for row in last.to_dict("records")
        }
        online.put_many(kind, latest)
    for kind, items in others.items():
        counters.stored += history.write_events(kind, items)
        counters.by_kind[kind] += len(items)


def ingest_topic(
    pipeline: Pipeline,
    topic: str,
    kind: MarketKind,
    *,
    header: str | None = None,
    symbol: str | None = None,
    group: str | None = None,
    stop: threading.Event | None = None,
    idle_s: float | None = None,
    max_records: int = 20_000,
) -> StreamCounters:
    """Validate raw CSV lines from ``topic`` into the pipeline (bus + stores), committing after each batch.

    ``header`` names the columns (e.g. ``timestamp,symbol,price,size``); without it the first line that maps to
    the kind's columns is taken as the header. A line equal to the header (a file's header row streamed by a
    connector) is skipped and counted in ``undecodable``. Validation state (order, duplicates, outliers) is kept
    per symbol across batches, as for a file.
    """
    counters = StreamCounters()
    state: dict[str, Any] = {"parser": None, "header": header}
    validator = MarketValidator(pipeline.settings.validation, kind)
    name = f"kafka:{topic}" if type(pipeline.bus).__name__ == "KafkaBus" else f"bus:{topic}"

    def parser() -> CsvMarketSource:
        if state["parser"] is None:
            state["parser"] = CsvMarketSource.for_lines(
                name, state["header"], kind, symbol=symbol, naive_tz=pipeline.settings.validation.naive_timezone
            )
        return state["parser"]

    def handle(messages: list[Message]) -> None:
        by_partition: dict[int, list[Message]] = defaultdict(list)
        for m in messages:
            line = m.value.decode("utf-8", "replace").strip()
            if state["header"] is None:
                try:
                    CsvMarketSource.for_lines(name, line, kind, symbol=symbol)
                except SourceError:
                    pass
                else:
                    state["header"] = line
                    counters.undecodable += 1
                    continue
            if state["header"] is not None and line == state["header"]:
                counters.undecodable += 1
                continue
            by_partition[m.partition].append(m)
        if state["header"] is None and by_partition:
            raise SourceError(f"{name}: no header line seen and none given (--header timestamp,symbol,price,size)")
        for partition, msgs in sorted(by_partition.items()):
            batch = parser().parse_lines([m.value for m in msgs], np.array([m.offset for m in msgs]))
            batch.source = f"{name}/{partition}"
            result = validator.validate(batch)
            pipeline.counters.add(kind, result)
            pipeline.emit_deadletters(result.deadletters)
            if not result.accepted.empty:
                pipeline.emit_market(result.accepted, kind, batch.interval_s)
        pipeline.bus.flush()

    _run(pipeline.bus, group or f"marketpulse-ingest-{topic}", [topic], handle, stop, idle_s, max_records, counters)
    return counters
