"""The embedded pipeline: sources → validation → bus + stores, paced by the replay clock.

:class:`Pipeline` owns one bus, one online store and one history store (built from :class:`Settings`, or given)
and offers the emission stages used by every command:

* market rows go to ``market.bars`` / ``market.ticks`` as one columnar batch per symbol (order kept per key),
  to the history store (idempotent upserts; synthetic ticks are published but never stored as history) and
  the latest row per symbol to the online store;
* posts and articles go to ``social.posts`` / ``news.articles`` and the history store;
* every rejected record goes to ``ingest.deadletter`` and the history store (kind ``deadletter``).

:meth:`Pipeline.replay` merges several sources by event time and paces them with a :class:`ReplayClock`.
Counters are kept per run and prove ``read = accepted + deadlettered``.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from marketpulse.bus import Bus, build_bus
from marketpulse.bus.base import DEADLETTER, MARKET_BARS, MARKET_TICKS, NEWS_ARTICLES, SOCIAL_POSTS
from marketpulse.clock import ReplayClock
from marketpulse.config import Settings
from marketpulse.events import BarBatch, DeadLetter, Event, Post, TickBatch, encode, now_ns, schema_header
from marketpulse.ingest.base import MarketBatch, MarketSource, TextBatch, TextSource
from marketpulse.ingest.validate import MarketValidator, Result, TextValidator
from marketpulse.store import HistoryStore, OnlineStore, build_history_store, build_online_store
from marketpulse.store.base import BAR_COLUMNS, TICK_COLUMNS

_TEXT_TOPIC = {"posts": SOCIAL_POSTS, "news": NEWS_ARTICLES}
_BAR_HEADERS = (("schema", f"marketpulse.{BarBatch.__name__}/v1".encode()),)
_TICK_HEADERS = (("schema", f"marketpulse.{TickBatch.__name__}/v1".encode()),)


@dataclass
class Counters:
    """Per-run figures; ``read == accepted + deadlettered`` holds after every batch."""

    read: int = 0
    accepted: int = 0
    deadlettered: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    published: int = 0
    stored: int = 0
    ignored: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    emitted: Counter[str] = field(default_factory=Counter)  # rows that left through the bus, by kind
    started: float = field(default_factory=time.perf_counter)
    event_ts_ns: int | None = None

    def add(self, kind: str, result: Result) -> None:
        self.read += result.read
        self.accepted += result.n_accepted
        self.deadlettered += len(result.deadletters)
        self.reasons.update(result.reasons)
        self.by_kind[kind] += result.n_accepted

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "read": self.read,
            "accepted": self.accepted,
            "deadlettered": self.deadlettered,
            "reasons": dict(sorted(self.reasons.items())),
            "published": self.published,
            "stored": self.stored,
            "accepted_by_kind": dict(self.by_kind),
            "seconds": round(self.seconds, 4),
        }
        if self.ignored:
            out["ignored_non_trade_messages"] = self.ignored
        return out


@dataclass(order=True)
class _Emission:
    ts_ns: int
    order: int
    kind: str = field(compare=False)
    payload: Any = field(compare=False)
    interval_s: int = field(default=60, compare=False)
    synthetic: bool = field(default=False, compare=False)


class Pipeline:
    """Validation and emission over one bus and two stores. Not thread-safe: one replay at a time."""

    def __init__(
        self, settings: Settings, bus: Bus, online: OnlineStore, history: HistoryStore, *, store: bool = True
    ) -> None:
        """``store=False``: publish only; the stores are left to a ``persist`` consumer of the bus."""
        self.settings, self.bus, self.online, self.history = settings, bus, online, history
        self.store = store
        self.counters = Counters()
        self._order = itertools.count()

    @classmethod
    def from_settings(cls, settings: Settings, *, store: bool = True) -> Pipeline:
        """Build the configured backends (the history store lives under ``settings.data_dir``)."""
        return cls(
            settings,
            build_bus(settings.bus),
            build_online_store(settings.online_store),
            build_history_store(settings.history_store, settings.data_dir),
            store=store,
        )

    def close(self) -> None:
        self.bus.close()
        self.online.close()
        self.history.close()

    # -- emission stages -------------------------------------------------------------------------------------
    def emit_deadletters(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        self.bus.publish_events(DEADLETTER, letters)
        if self.store:
            self.history.write_events("deadletter", letters)

    def emit_market(self, frame: pd.DataFrame, kind: str, interval_s: int = 60, synthetic: bool = False) -> int:
        """Publish, store and cache validated market rows; returns the number of messages published."""
        if frame.empty:
            return 0
        records, latest = publish_market(self.bus, frame, kind, interval_s, synthetic)
        if self.store:
            if not synthetic:
                columns = list(BAR_COLUMNS if kind == "bars" else TICK_COLUMNS)
                self.counters.stored += self.history.write_frame(kind, frame[columns])
            self.online.put_many(kind, latest)
        self.counters.published += records
        self.counters.emitted[kind] += len(frame)
        newest = int(frame["ts"].to_numpy("datetime64[ns]").view(np.int64).max())
        self.counters.event_ts_ns = max(self.counters.event_ts_ns or 0, newest)
        return records

    def emit_text(self, events: Sequence[Post], kind: str) -> int:
        if not events:
            return 0
        topic = _TEXT_TOPIC[kind]
        headers = (("schema", schema_header(events[0]).encode()),)
        self.bus.publish_batch(topic, [(e.key, encode(e)) for e in events], headers)
        if self.store:
            self.counters.stored += self.history.write_events(kind, events)
        self.counters.published += len(events)
        self.counters.emitted[kind] += len(events)
        newest = max(e.ts for e in events)
        self.counters.event_ts_ns = max(self.counters.event_ts_ns or 0, int(newest.timestamp() * 1e9))
        return len(events)

    # -- replay ----------------------------------------------------------------------------------------------
    def validated(self, source: MarketSource | TextSource, slice_ns: int | None) -> Iterator[_Emission]:
        """Validate a source batch by batch; dead letters leave at once, accepted rows as time slices."""
        kind = source.kind
        validator: MarketValidator | TextValidator = (
            MarketValidator(self.settings.validation, kind)
            if kind in ("bars", "ticks")
            else TextValidator(self.settings.validation, kind)  # type: ignore[arg-type]
        )
        for batch in source.batches():
            result = validator.validate(batch)  # type: ignore[arg-type]
            self.counters.add(kind, result)
            self.emit_deadletters(result.deadletters)
            if isinstance(batch, MarketBatch):
                yield from self._market_slices(result.accepted, batch, slice_ns)
            else:
                assert isinstance(batch, TextBatch)
                yield from self._text_slices(result.accepted, kind, slice_ns)
        self.counters.ignored += int(getattr(source, "ignored", 0))

    def _market_slices(self, frame: pd.DataFrame, batch: MarketBatch, slice_ns: int | None) -> Iterator[_Emission]:
        if frame.empty:
            return
        ts = frame["ts"].to_numpy("datetime64[ns]").view(np.int64)
        if np.any(np.diff(ts) < 0):
            order = np.argsort(ts, kind="stable")
            frame, ts = frame.iloc[order].reset_index(drop=True), ts[order]
        for lo, hi in _slices(ts, slice_ns):
            yield _Emission(
                int(ts[lo]), next(self._order), batch.kind, frame.iloc[lo:hi], batch.interval_s, batch.synthetic
            )

    def _text_slices(self, events: list[Post], kind: str, slice_ns: int | None) -> Iterator[_Emission]:
        if not events:
            return
        events = sorted(events, key=lambda e: e.ts)
        ts = np.array([int(e.ts.timestamp() * 1e9) for e in events], dtype=np.int64)
        for lo, hi in _slices(ts, slice_ns):
            yield _Emission(int(ts[lo]), next(self._order), kind, events[lo:hi])

    def replay(
        self,
        sources: Sequence[MarketSource | TextSource],
        clock: ReplayClock | None = None,
        on_progress: Callable[[Counters], None] | None = None,
        progress_every_s: float = 0.25,
        after_emit: Callable[[], object] | None = None,
    ) -> Counters:
        """Replay ``sources`` merged by event time; returns the counters (also on stop).

        ``after_emit`` runs after each emission (the local engine's ``drain``, so processing interleaves with
        the replay in one thread, deterministically)."""
        clock = clock or ReplayClock("max")
        slice_ns = clock.slice_ns()
        streams = [self.validated(s, slice_ns) for s in sources]
        merged: Iterator[_Emission] = streams[0] if len(streams) == 1 else heapq.merge(*streams)
        last_report = 0.0
        for item in merged:
            if not clock.wait_until(item.ts_ns):
                break
            if item.kind in ("bars", "ticks"):
                self.emit_market(item.payload, item.kind, item.interval_s, item.synthetic)
            else:
                self.emit_text(item.payload, item.kind)
            if after_emit is not None:
                after_emit()
            if on_progress is not None and time.perf_counter() - last_report >= progress_every_s:
                last_report = time.perf_counter()
                on_progress(self.counters)
        self.bus.flush()
        if on_progress is not None:
            on_progress(self.counters)
        return self.counters


def publish_market(
    bus: Bus, frame: pd.DataFrame, kind: str, interval_s: int = 60, synthetic: bool = False
) -> tuple[int, dict[str, dict[str, Any]]]:
    """The bus stage of market data: one columnar batch per symbol on ``market.bars`` / ``market.ticks``.

    Returns the number of messages and the latest row per symbol (for the online store). Rows of a symbol keep
    their order; ``frame`` must be non-empty with the columns of its kind (``seq`` optional for ticks).
    """
    stamp = now_ns()
    records: list[tuple[str | None, bytes]] = []
    latest: dict[str, dict[str, Any]] = {}
    ts_all = frame["ts"].to_numpy("datetime64[ns]").view(np.int64)
    names = ("open", "high", "low", "close", "volume") if kind == "bars" else ("price", "size")
    columns = {c: frame[c].to_numpy(float) for c in names}
    seq_all = frame["seq"].to_numpy() if "seq" in frame.columns else None
    for symbol, idx in frame.groupby("symbol", sort=False, observed=True).indices.items():
        sym = str(symbol)
        ts = ts_all[idx]
        cols = [columns[c][idx] for c in names]
        event: Event
        if kind == "bars":
            event = BarBatch.from_arrays(sym, ts, *cols, interval_s=interval_s, ingest_ns=stamp)
            latest[sym] = {
                "ts": int(ts[-1]),
                **{c: float(v[-1]) for c, v in zip(names, cols, strict=True)},
                "interval_s": interval_s,
            }
        else:
            seq = seq_all[idx] if seq_all is not None else None
            event = TickBatch.from_arrays(sym, ts, *cols, seq=seq, synthetic=synthetic, ingest_ns=stamp)
            latest[sym] = {
                "ts": int(ts[-1]),
                "price": float(cols[0][-1]),
                "size": float(cols[1][-1]),
                "synthetic": synthetic,
            }
        records.append((sym, encode(event)))
    if kind == "bars":
        bus.publish_batch(MARKET_BARS, records, _BAR_HEADERS)
    else:
        bus.publish_batch(MARKET_TICKS, records, _TICK_HEADERS)
    return len(records), latest


def _slices(ts: np.ndarray, slice_ns: int | None) -> Iterator[tuple[int, int]]:
    """Index ranges of sorted ``ts`` in windows of ``slice_ns`` (one range when None)."""
    if slice_ns is None:
        yield 0, len(ts)
        return
    bucket = (ts - ts[0]) // slice_ns
    cuts = np.flatnonzero(np.diff(bucket)) + 1
    bounds = np.concatenate(([0], cuts, [len(ts)]))
    for lo, hi in itertools.pairwise(bounds):
        yield int(lo), int(hi)


def stop_event() -> threading.Event:
    """A fresh stop flag for :class:`ReplayClock` (set it from a signal handler to end a replay)."""
    return threading.Event()
