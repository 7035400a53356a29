"""Per-symbol sentiment over time: decayed, engagement-weighted windows per source, and one cross-source score.

River style with an explicit state: :meth:`SentimentAggregator.update` takes one scored text (a
:class:`~marketpulse.events.SentimentScore` of one post and one symbol, plus its engagement weight);
:meth:`SentimentAggregator.get` answers for a symbol at an event time; :meth:`SentimentAggregator.emit` turns every
symbol touched since the last emit into ``SentimentScore`` events (one per source + ``source="all"``);
:func:`aggregate_scores` is the batch form a stage calls once per micro-batch. :func:`score_events` builds the
per-text events from the text stage's :class:`~marketpulse.features.text.CleanPost` and a model's scores.

Maths, for a symbol and a source at time ``T``, over the events ``i`` with ``T - window_s < t_i <= T``:
``w_i = engagement_i * 2 ** (-(T - t_i) / half_life_s)``; polarity, intensity and each label probability are the
``w``-weighted means; ``dispersion`` is the ``w``-weighted standard deviation of polarity; ``count`` is the number
of events and ``weight`` is ``sum(w_i)``. The combined score mixes the sources that have data with the configured
``source_weights`` (``default_source_weight`` for others): the means are weighted means over sources, the dispersion
that of the mixture (within-source variance + spread of the source means). With a
:class:`~marketpulse.sentiment.reliability.SourceReliability` (``reliability=``, default ``None``), each configured
weight is multiplied by that source's learned reliability weight at ``T`` (``reliability.weight(source, T)``: a
floor plus the shrunk positive information coefficient, from the pairs whose return was realised at or before ``T``);
without one, the combined score is exactly the configured mix. The caller feeds the estimator (its ``update`` with the
same per-post events, ``update_return`` with prices): the aggregator only reads it.

Time is event time only: nothing reads the wall clock, events later than ``T`` are never used (no look-ahead), an
event arriving late is placed by its own time, and one input gives one output whatever the batch boundaries.
The state keeps, per (symbol, source), the events inside ``window_s`` of the newest event of that key (at most
``max_events``); :meth:`get` is exact for any ``T`` not older than ``newest - window_s``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.events import SentimentScore
from marketpulse.sentiment.base import LABELS, Score

if TYPE_CHECKING:
    from marketpulse.sentiment.reliability import SourceReliability

ALL_SOURCES = "all"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class AggregateConfig(BaseModel):
    """Windows, decay and source weights of the aggregation (a config section)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    half_life_s: float = Field(3_600.0, gt=0, description="an event's weight halves every half_life_s seconds")
    window_s: float = Field(86_400.0, gt=0, description="events older than this behind T are ignored")
    max_events: int = Field(10_000, gt=0, description="at most this many events kept per symbol and source")
    source_weights: dict[str, float] = Field(
        default_factory=lambda: {"news": 1.0, "twitter": 0.6, "stocktwits": 0.6, "reddit": 0.4},
        description="weight of each source in the combined score",
    )
    default_source_weight: float = Field(0.5, ge=0, description="weight of a source not in source_weights")
    model: str = Field("lexicon", description="model name put on emitted events")


@dataclass(frozen=True)
class Aggregate:
    """One symbol's sentiment for one source (or ``all``) at ``ts``."""

    symbol: str
    source: str
    ts: datetime
    polarity: float
    intensity: float
    probs: dict[str, float]
    dispersion: float
    count: int
    weight: float

    def to_event(self, model: str, ingest_ns: int = 0) -> SentimentScore:
        return SentimentScore(
            ts=self.ts,
            ingest_ns=ingest_ns,
            symbol=self.symbol,
            source=self.source,
            model=model,
            polarity=self.polarity,
            intensity=self.intensity,
            probs=dict(self.probs),
        )


def _ns(ts: datetime) -> int:
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _dt(ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=ns // 1_000)


@dataclass
class _Series:
    """Events of one (symbol, source), sorted by time: columns polarity, intensity, p_neg, p_neu, p_pos, weight."""

    ts: list[int] = field(default_factory=list)
    rows: list[tuple[float, float, float, float, float, float]] = field(default_factory=list)

    def add(self, ts: int, row: tuple[float, float, float, float, float, float], horizon: int, cap: int) -> None:
        if ts < horizon:
            return  # older than the window of the newest event: never counted again
        at = bisect.bisect_right(self.ts, ts)
        self.ts.insert(at, ts)
        self.rows.insert(at, row)
        drop = max(bisect.bisect_left(self.ts, horizon), len(self.ts) - cap)
        if drop > 0:
            del self.ts[:drop], self.rows[:drop]


@dataclass
class AggregateState:
    """The aggregator's state: per (symbol, source) event series, the symbols touched since the last emit and
    the newest ingest stamp seen per symbol (carried onto emitted events so latency is measurable)."""

    series: dict[tuple[str, str], _Series] = field(default_factory=dict)
    dirty: set[str] = field(default_factory=set)
    ingest_ns: dict[str, int] = field(default_factory=dict)


class SentimentAggregator:
    """``update`` / ``get`` / ``emit`` over an explicit :class:`AggregateState` (see the module docstring).

    ``reliability``: optional learned source reliability; when given, the combined score's source weights are the
    configured ones times ``reliability.weight(source, T)`` (see the module docstring). It is only read here.
    """

    def __init__(
        self,
        config: AggregateConfig | None = None,
        state: AggregateState | None = None,
        reliability: SourceReliability | None = None,
    ) -> None:
        self.config = config or AggregateConfig()
        self.state = state if state is not None else AggregateState()
        self.reliability = reliability
        self._lambda = math.log(2.0) / self.config.half_life_s / 1e9  # per nanosecond
        self._window = int(self.config.window_s * 1e9)

    def update(self, event: SentimentScore, weight: float = 1.0) -> None:
        """Add one scored text (``event.symbol``/``source``/``ts``/``polarity``/``intensity``/``probs``).

        A non-finite or non-positive ``weight`` counts as 1; non-finite scores are ignored.
        """
        probs = event.probs or {}
        row = (
            float(event.polarity),
            float(event.intensity),
            float(probs.get("negative", 0.0)),
            float(probs.get("neutral", 0.0)),
            float(probs.get("positive", 0.0)),
            float(weight) if math.isfinite(weight) and weight > 0 else 1.0,
        )
        if not all(math.isfinite(v) for v in row):
            return
        ts = _ns(event.ts)
        key = (event.symbol, event.source)
        series = self.state.series.setdefault(key, _Series())
        newest = max(ts, series.ts[-1]) if series.ts else ts
        series.add(ts, row, newest - self._window, self.config.max_events)
        st = self.state
        st.dirty.add(event.symbol)
        st.ingest_ns[event.symbol] = max(st.ingest_ns.get(event.symbol, 0), event.ingest_ns)

    def update_many(self, items: Iterable[tuple[SentimentScore, float]]) -> None:
        for event, weight in items:
            self.update(event, weight)

    def get_source(self, symbol: str, source: str, at_ts: datetime) -> Aggregate | None:
        """One source's aggregate at ``at_ts``; ``None`` when no event is inside the window."""
        series = self.state.series.get((symbol, source))
        if series is None:
            return None
        at = _ns(at_ts)
        lo = bisect.bisect_right(series.ts, at - self._window)
        hi = bisect.bisect_right(series.ts, at)
        if hi <= lo:
            return None
        ts = np.asarray(series.ts[lo:hi], dtype=np.float64)
        cols = np.asarray(series.rows[lo:hi], dtype=np.float64)
        w = cols[:, 5] * np.exp(-self._lambda * (at - ts))
        total = float(w.sum())
        if not total > 0:
            w, total = np.ones_like(w), float(len(w))
        means = (w @ cols[:, :5]) / total
        polarity = float(means[0])
        variance = float(w @ (cols[:, 0] - polarity) ** 2) / total
        return Aggregate(
            symbol=symbol,
            source=source,
            ts=at_ts,
            polarity=polarity,
            intensity=float(means[1]),
            probs=dict(zip(LABELS, (float(p) for p in means[2:5]), strict=True)),
            dispersion=math.sqrt(max(variance, 0.0)),
            count=hi - lo,
            weight=total,
        )

    def newest(self, symbol: str) -> datetime | None:
        """The newest event time of ``symbol`` over its sources (``None`` when it has none)."""
        times = [s.ts[-1] for (sym, _), s in self.state.series.items() if sym == symbol and s.ts]
        return _dt(max(times)) if times else None

    def sources(self, symbol: str) -> list[str]:
        return sorted(src for sym, src in self.state.series if sym == symbol)

    def get(self, symbol: str, at_ts: datetime, source: str = ALL_SOURCES) -> Aggregate | None:
        """``symbol``'s aggregate at ``at_ts`` for one source, or combined over sources (``"all"``)."""
        if source != ALL_SOURCES:
            return self.get_source(symbol, source, at_ts)
        return self._combine(symbol, at_ts, self._per_source(symbol, at_ts))

    def _per_source(self, symbol: str, at_ts: datetime) -> list[Aggregate]:
        found = (self.get_source(symbol, src, at_ts) for src in self.sources(symbol))
        return [a for a in found if a is not None]

    def _combine(self, symbol: str, at_ts: datetime, parts: Sequence[Aggregate]) -> Aggregate | None:
        cfg = self.config
        weights = [cfg.source_weights.get(a.source, cfg.default_source_weight) for a in parts]
        reliability = getattr(self, "reliability", None)  # an aggregator pickled before the attribute existed has none
        if reliability is not None and parts:
            weights = [w * reliability.weight(a.source, at_ts) for w, a in zip(weights, parts, strict=True)]
        total = sum(weights)
        if not parts or total <= 0:
            return None
        polarity = sum(w * a.polarity for w, a in zip(weights, parts, strict=True)) / total
        spread = sum(w * (a.dispersion**2 + (a.polarity - polarity) ** 2) for w, a in zip(weights, parts, strict=True))
        return Aggregate(
            symbol=symbol,
            source=ALL_SOURCES,
            ts=at_ts,
            polarity=polarity,
            intensity=sum(w * a.intensity for w, a in zip(weights, parts, strict=True)) / total,
            probs={k: sum(w * a.probs[k] for w, a in zip(weights, parts, strict=True)) / total for k in LABELS},
            dispersion=math.sqrt(max(spread / total, 0.0)),
            count=sum(a.count for a in parts),
            weight=sum(a.weight for a in parts),
        )

    def emit(self, at_ts: datetime | None = None) -> list[SentimentScore]:
        """Events for every symbol updated since the last emit (sorted by symbol): one per source with data, then
        the combined ``all``. Each is taken at ``at_ts``, or at the symbol's newest event time when ``None``.

        What :meth:`get` answers does not depend on batch boundaries; how often a symbol is emitted does."""
        out: list[SentimentScore] = []
        st = self.state
        for symbol in sorted(st.dirty):
            when = at_ts if at_ts is not None else self.newest(symbol)
            if when is None:
                continue
            parts = self._per_source(symbol, when)
            combined = self._combine(symbol, when, parts)
            ingest = st.ingest_ns.get(symbol, 0)
            out.extend(a.to_event(self.config.model, ingest) for a in parts)
            if combined is not None:
                out.append(combined.to_event(self.config.model, ingest))
        st.dirty.clear()
        return out


def aggregate_scores(
    items: Iterable[tuple[SentimentScore, float]],
    state: AggregateState | None = None,
    config: AggregateConfig | None = None,
    at_ts: datetime | None = None,
    reliability: SourceReliability | None = None,
) -> tuple[list[SentimentScore], AggregateState]:
    """Batch form: update with every ``(event, weight)`` of a micro-batch, then :meth:`~SentimentAggregator.emit`.

    Returns the emitted events and the (updated in place) state. ``reliability`` as in :class:`SentimentAggregator`.
    """
    agg = SentimentAggregator(config, state, reliability)
    agg.update_many(items)
    return agg.emit(at_ts), agg.state


class ScoredPost(Protocol):
    """What :func:`score_events` reads of a post (a :class:`~marketpulse.features.text.CleanPost` has it)."""

    @property
    def id(self) -> str: ...
    @property
    def ts(self) -> datetime: ...
    @property
    def source(self) -> str: ...
    @property
    def symbols(self) -> tuple[str, ...]: ...
    @property
    def weight(self) -> float: ...
    @property
    def ingest_ns(self) -> int: ...


def score_events(
    posts: Sequence[ScoredPost], scores: Sequence[Score], model: str
) -> list[tuple[SentimentScore, float]]:
    """One ``(SentimentScore, weight)`` per post and symbol, from :class:`~marketpulse.features.text.CleanPost`
    objects (``id, ts, source, symbols, weight, ingest_ns``) and their model scores (same order)."""
    out: list[tuple[SentimentScore, float]] = []
    for post, s in zip(posts, scores, strict=True):
        probs = s.probs
        for symbol in post.symbols:
            event = SentimentScore(
                ts=post.ts,
                ingest_ns=post.ingest_ns,
                symbol=symbol,
                source=post.source,
                model=model,
                polarity=s.polarity,
                intensity=s.intensity,
                probs=probs,
                ref_id=post.id,
            )
            out.append((event, post.weight))
    return out
