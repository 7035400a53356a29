"""The local engine: consumes bus topics in micro-batches and runs the stage functions with explicit state.

Per poll of ``market.ticks``, ``market.bars``, ``social.posts`` and ``news.articles``:

* ticks → time bars (:func:`~marketpulse.features.bars.ticks_to_bars`, event time, watermark); closed bars are
  published on ``market.bars`` (header ``origin: engine``, which the engine itself skips when it reads that topic)
  and late ticks are dead-lettered (reason ``late``), never lost silently;
* bars (built here, or from sources) → feature vectors (:func:`~marketpulse.features.market.compute_features`,
  one state per bar interval) → ``features.market`` (:class:`~marketpulse.events.FeatureBatch`, with the schema
  hash) and the latest vector per symbol in the online store;
* posts and articles → cleaning, tickers, filters (:func:`~marketpulse.features.text.process_posts`) → lexicon
  sentiment → one :class:`~marketpulse.events.SentimentScore` per post and symbol, then the symbol's windowed
  aggregate (per source and combined, event time) → ``sentiment.scores``, the history store (per-post scores)
  and the online store (latest aggregate); rejected texts are dead-lettered with their reason;
* feature vectors → price predictions (:class:`~marketpulse.predict.online.OnlinePredictor`, when a registered
  model of the engine's feature schema exists; hot-reloaded) → ``predictions.price``, history and online store;
* predictions + the latest sentiment (combined, or per source) and momentum → fused signals
  (:class:`~marketpulse.fusion.online.OnlineFusion`, ``fusion`` config: Hedge weights or online stacking learned
  from settled outcomes) → ``signals.fused``, history and online store (``signals``, with every input's weight);
* with an :class:`~marketpulse.monitoring.alerts.AlertManager`: bars, per-post scores and signals go through the
  alert rules (k-sigma move, sentiment spike, signal flip), the fusion's settled outcomes through the drift rule
  (judged from the close at prediction time, in event time) and each micro-batch's lag (ingest of its newest
  record → processed) through the lag rule; alerts go to ``alerts`` and the notifiers, never blocking.

The consumer commits after a micro-batch is processed and published (at-least-once). Stage functions are pure
over (batch, state), so the same input gives the same bars, features and per-post scores at any speed and any
micro-batch split (tested).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from marketpulse.bus.base import (
    DEADLETTER,
    FEATURES_MARKET,
    MARKET_BARS,
    MARKET_TICKS,
    NEWS_ARTICLES,
    PREDICTIONS_PRICE,
    SENTIMENT_SCORES,
    SIGNALS_FUSED,
    SOCIAL_POSTS,
    Bus,
    Message,
)
from marketpulse.errors import CodecError
from marketpulse.events import (
    Alert,
    BarBatch,
    DeadLetter,
    FeatureBatch,
    Post,
    SentimentScore,
    Signal,
    TickBatch,
    decode,
    encode,
    now_ns,
    schema_header,
)
from marketpulse.features.bars import BarState, flush, ticks_to_bars
from marketpulse.features.market import NAMES, FeatureState, compute_features
from marketpulse.features.text import TextState, process_posts
from marketpulse.fusion.online import OnlineFusion, OnlineFusionConfig
from marketpulse.monitoring.alerts import AlertManager
from marketpulse.predict.online import OnlinePredictor
from marketpulse.sentiment import build_sentiment_model
from marketpulse.sentiment.aggregate import SentimentAggregator, score_events
from marketpulse.sentiment.reliability import SourceReliability
from marketpulse.store import HistoryStore, OnlineStore

ENGINE_GROUP = "marketpulse-engine"
INPUT_TOPICS = (MARKET_TICKS, MARKET_BARS, SOCIAL_POSTS, NEWS_ARTICLES)
ORIGIN = ("origin", b"engine")


@dataclass
class EngineCounters:
    """What the engine did; ``latency_ns`` holds ingest → feature latencies (see :meth:`LocalEngine.process`)."""

    consumed: int = 0
    ticks: int = 0
    bars_built: int = 0
    bars_in: int = 0
    late_ticks: int = 0
    features: int = 0
    posts: int = 0
    posts_rejected: Counter[str] = field(default_factory=Counter)
    scores: int = 0
    undecodable: int = 0
    latency_ns: list[int] = field(default_factory=list)
    predictions: int = 0
    prediction_latency_ns: list[int] = field(default_factory=list)
    signals: int = 0
    alerts: int = 0

    def as_dict(self) -> dict[str, Any]:
        lat = np.array(self.latency_ns, dtype=float) / 1e6
        return {
            "consumed": self.consumed,
            "ticks": self.ticks,
            "bars_built": self.bars_built,
            "bars_in": self.bars_in,
            "late_ticks": self.late_ticks,
            "feature_rows": self.features,
            "posts": self.posts,
            "posts_rejected": dict(self.posts_rejected),
            "sentiment_scores": self.scores,
            "undecodable": self.undecodable,
            "latency_ms_p50": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
            "latency_ms_p99": round(float(np.percentile(lat, 99)), 3) if lat.size else None,
            "predictions": self.predictions,
            "signals": self.signals,
            "alerts": self.alerts,
        }


@dataclass
class EngineState:
    """All per-symbol state of the stages (picklable: checkpoint it to resume)."""

    bars: BarState = field(default_factory=BarState)
    features: dict[int, FeatureState] = field(default_factory=dict)
    text: TextState = field(default_factory=TextState)
    reliability: SourceReliability = field(default_factory=SourceReliability)
    sentiment: SentimentAggregator = field(default_factory=SentimentAggregator)
    last_close: dict[tuple[int, str], float] = field(default_factory=dict)
    fusion: OnlineFusion = field(default_factory=OnlineFusion)
    newest_ts: datetime | None = None

    def __post_init__(self) -> None:
        if self.sentiment.reliability is None:  # the combined score weighs sources by their learned reliability
            self.sentiment.reliability = self.reliability


class LocalEngine:
    """Micro-batch engine over one bus and two stores (single-threaded: call :meth:`step` from one thread)."""

    def __init__(
        self,
        bus: Bus,
        online: OnlineStore,
        history: HistoryStore,
        *,
        group: str = ENGINE_GROUP,
        bar_interval_s: int = 60,
        allowed_lateness_s: float = 0.0,
        sentiment_model: str = "lexicon",
        store: bool = True,
        predictor: OnlinePredictor | None = None,
        alerts: AlertManager | None = None,
        fusion: OnlineFusionConfig | None = None,
        sentiment_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.bus, self.online, self.history, self.store = bus, online, history, store
        self.bar_interval_s, self.allowed_lateness_s = bar_interval_s, allowed_lateness_s
        self.model = build_sentiment_model(sentiment_model, **dict(sentiment_options or {}))
        self.predictor = predictor
        self.alerts = alerts
        self.state = EngineState(fusion=OnlineFusion(fusion or OnlineFusionConfig()))
        self.counters = EngineCounters()
        self.consumer = bus.consumer(group, INPUT_TOPICS)

    def close(self) -> None:
        self.consumer.close()
        if self.alerts is not None:
            self.alerts.close()

    # -- driving -----------------------------------------------------------------------------------------------
    def step(self, max_records: int = 5_000, timeout: float = 0.0) -> int:
        """Poll once, process, publish, commit; returns the number of records consumed (0 when idle)."""
        messages = self.consumer.poll(max_records, timeout=timeout)
        if not messages:
            return 0
        self.process(messages)
        self.consumer.commit(messages)
        return len(messages)

    def drain(self, max_records: int = 5_000, timeout: float = 0.0) -> int:
        """Step until the input topics are empty; returns the records consumed."""
        total = 0
        while n := self.step(max_records, timeout):
            total += n
        return total

    def finish(self) -> None:
        """End of stream: close every open bar and process it (features), then flush the bus."""
        closed = flush(self.state.bars)
        if not closed.empty:
            self._bars_built(closed, now_ns())
        self.bus.flush()

    # -- one micro-batch ---------------------------------------------------------------------------------------
    def process(self, messages: Sequence[Message]) -> None:
        """Run every stage on one micro-batch of decoded messages."""
        self.counters.consumed += len(messages)
        ticks: list[TickBatch] = []
        bars_in: list[tuple[int, pd.DataFrame]] = []
        posts: list[Post] = []
        newest_ingest = 0
        for m in messages:
            if m.topic == MARKET_BARS and m.header("origin") == ORIGIN[1]:
                continue  # our own bars, already processed when built
            try:
                event = decode(m.value)
            except CodecError:
                self.counters.undecodable += 1
                continue
            newest_ingest = max(newest_ingest, event.ingest_ns)
            if isinstance(event, TickBatch):
                ticks.append(event)
            elif isinstance(event, BarBatch):
                bars_in.append((event.interval_s, event.to_frame()))
            elif isinstance(event, Post):
                posts.append(event)
        if ticks:
            # one batch per symbol arrives per partition: merge them in event time (stable: per-symbol order kept)
            # so the bar watermark advances with the market, not with whichever partition was read first
            self._ticks(_tick_frame(ticks), newest_ingest)
        for interval, frame in bars_in:
            self.counters.bars_in += len(frame)
            self._realised_returns(frame, interval)
            self._features(frame, interval, newest_ingest)
        if posts:
            # partitions interleave differently from poll to poll: order posts by event time (then id) so the
            # stateful text filters (duplicates, author repeats) decide the same way at any speed
            self._posts(sorted(posts, key=lambda p: (p.ts, p.id)))
        if self.alerts is not None and newest_ingest and self.state.newest_ts is not None:
            self._stored(
                self.alerts.observe_lag(self.state.newest_ts, (now_ns() - newest_ingest) / 1e9, stage="engine")
            )
        self.bus.flush()

    def _ticks(self, ticks: pd.DataFrame, ingest_ns: int) -> None:
        self.counters.ticks += len(ticks)
        out = ticks_to_bars(
            ticks[["symbol", "ts", "price", "size"]], self.state.bars, self.bar_interval_s, self.allowed_lateness_s
        )
        if not out.late.empty:
            self.counters.late_ticks += len(out.late)
            self._dead_letter_late(out.late)
        if not out.bars.empty:
            self._bars_built(out.bars, ingest_ns)

    def _bars_built(self, bars: pd.DataFrame, ingest_ns: int) -> None:
        self.counters.bars_built += len(bars)
        records = []
        latest: dict[str, dict[str, Any]] = {}
        ts_all = bars["ts"].to_numpy("datetime64[ns]").view(np.int64)
        cols = {c: bars[c].to_numpy(float) for c in ("open", "high", "low", "close", "volume")}
        for symbol, idx in bars.groupby("symbol", sort=False, observed=True).indices.items():
            sym = str(symbol)
            batch = BarBatch.from_arrays(
                sym,
                ts_all[idx],
                *(cols[c][idx] for c in ("open", "high", "low", "close", "volume")),
                interval_s=self.bar_interval_s,
                ingest_ns=ingest_ns,
            )
            records.append((sym, encode(batch)))
            last = idx[-1]
            latest[sym] = {"ts": int(ts_all[last]), **{c: float(cols[c][last]) for c in cols}}
        self.bus.publish_batch(MARKET_BARS, records, (("schema", b"marketpulse.BarBatch/v1"), ORIGIN))
        if self.store:
            self.online.put_many(f"bars_{self.bar_interval_s}s", latest)
        self._features(bars, self.bar_interval_s, ingest_ns)

    def _features(self, bars: pd.DataFrame, interval_s: int, ingest_ns: int) -> None:
        if self.alerts is not None:
            self._alert_bars(bars, interval_s)
        state = self.state.features.setdefault(interval_s, FeatureState())
        rows, _ = compute_features(bars, state)
        if rows.empty:
            return
        self.counters.features += len(rows)
        ts_all = rows["ts"].to_numpy("datetime64[ns]").view(np.int64)
        matrix = rows[list(NAMES)].to_numpy(float)
        latest: dict[str, dict[str, Any]] = {}
        records: list[tuple[str | None, bytes]] = []
        for symbol, idx in rows.groupby("symbol", sort=False, observed=True).indices.items():
            sym = str(symbol)
            batch = FeatureBatch.from_arrays(sym, ts_all[idx], NAMES, matrix[idx], state.schema, ingest_ns=ingest_ns)
            records.append((sym, encode(batch)))
            last = idx[-1]
            latest[sym] = {
                "ts": int(ts_all[last]),
                "interval_s": interval_s,
                "schema": state.schema,
                **{n: (None if np.isnan(v) else float(v)) for n, v in zip(NAMES, matrix[last], strict=True)},
            }
        self.bus.publish_batch(FEATURES_MARKET, records, (("schema", b"marketpulse.FeatureBatch/v1"),))
        if ingest_ns:  # one sample per feature vector: the wall time from the newest input's ingest to now
            self.counters.latency_ns.extend([now_ns() - ingest_ns] * len(rows))
        if self.store:
            self.online.put_many(f"features_{interval_s}s", latest)
        if self.predictor is not None:
            self._predict(rows, bars, interval_s, ingest_ns)

    def _predict(self, rows: pd.DataFrame, bars: pd.DataFrame, interval_s: int, ingest_ns: int) -> None:
        assert self.predictor is not None
        predictions = self.predictor.update(rows, interval_s, ingest_ns)
        signals = self._fuse(bars, predictions)
        if signals:
            self._signals(signals)
        outcomes = self.state.fusion.drain_outcomes()
        if self.alerts is not None:  # drift is judged on the fusion's settlement: the close at prediction time
            fired = self.alerts.observe_many(signals)
            for o in outcomes:
                when = datetime.fromtimestamp(o.ts_ns / 1e9, UTC)
                fired += self.alerts.observe_outcome(o.symbol, when, o.predicted_up, o.realised_up, o.model)
            self._stored(fired)
        if not predictions:
            return
        self.counters.predictions += len(predictions)
        self.bus.publish_events(PREDICTIONS_PRICE, predictions)
        if ingest_ns:
            self.counters.prediction_latency_ns.extend([now_ns() - ingest_ns] * len(predictions))
        if self.store:
            self.history.write_events("predictions", predictions)
            self.online.put_many(
                "predictions",
                {
                    p.symbol: {
                        "ts": int(pd.Timestamp(p.ts).value),
                        "p_up": p.p_up,
                        "expected_move": p.expected_move,
                        "confidence": p.confidence,
                        "horizon_s": p.horizon_s,
                        "model": p.version,
                    }
                    for p in predictions
                },
            )

    def _fuse(self, bars: pd.DataFrame, predictions: Sequence[Any]) -> list[Signal]:
        """Bars and predictions of this micro-batch through the fusion stage, merged in event time (a bar at
        ``t`` settles what is due by ``t`` and sets the close that predictions at ``t`` start from)."""
        fusion = self.state.fusion
        ts_all = bars["ts"].to_numpy("datetime64[ns]").view(np.int64)
        events: list[tuple[int, int, Any]] = [
            (int(t), 0, (str(sym), float(c)))
            for sym, t, c in zip(bars["symbol"].astype(str), ts_all, bars["close"].to_numpy(float), strict=True)
        ]
        events += [(int(pd.Timestamp(p.ts).value), 1, p) for p in predictions]
        signals: list[Signal] = []
        for ts, kind, item in sorted(events, key=lambda e: (e[0], e[1])):
            if kind == 0:
                fusion.bar(item[0], ts, item[1])
                continue
            signal = fusion.predict(item.symbol, ts, item.p_up, item.horizon_s, item.version)
            if signal is not None:
                signals.append(signal)
        return signals

    def _signals(self, signals: list[Signal]) -> None:
        self.counters.signals += len(signals)
        self.bus.publish_events(SIGNALS_FUSED, signals)
        if self.store:
            self.history.write_events("signals", signals)
            self.online.put_many(
                "signals",
                {
                    s.symbol: {
                        "ts": int(pd.Timestamp(s.ts).value),
                        "score": s.score,
                        "components": s.components,
                        "weights": s.weights,
                        "fusion": self.state.fusion.state(),
                    }
                    for s in signals
                },
            )

    def _stored(self, alerts: list[Alert]) -> None:
        """Alerts sent (already on the bus and with the notifiers) → the history store, where the API reads them."""
        self.counters.alerts += len(alerts)
        if alerts and self.store:
            self.history.write_events("alerts", alerts)

    def _alert_bars(self, bars: pd.DataFrame, interval_s: int) -> None:
        """Bars in event time to the alert rules (k-sigma moves per symbol and interval); their time also closes the
        sentiment-spike buckets that have ended (so a burst of posts is judged without waiting for a later post)."""
        assert self.alerts is not None
        ts_all = bars["ts"].to_numpy("datetime64[ns]").view(np.int64)
        order = np.argsort(ts_all, kind="stable")
        symbols = bars["symbol"].astype(str).to_numpy()
        closes = bars["close"].to_numpy(float)
        fired: list[Alert] = []
        for i in order.tolist():
            when = datetime.fromtimestamp(int(ts_all[i]) / 1e9, UTC)
            fired += self.alerts.observe_price(symbols[i], when, float(closes[i]), interval_s)
        if len(ts_all):
            newest = datetime.fromtimestamp(int(ts_all.max()) / 1e9, UTC)
            fired += self.alerts.advance(newest)
            self.state.newest_ts = max(self.state.newest_ts or newest, newest)
        self._stored(fired)

    def _realised_returns(self, bars: pd.DataFrame, interval_s: int) -> None:
        """Bars of the reliability estimator's period → each symbol's realised log return, so every source's
        sentiment is scored against what followed it (sources are then weighed by it in the combined score)."""
        rel = self.state.reliability
        if interval_s != int(rel.config.interval_s):
            return
        ts_all = bars["ts"].to_numpy("datetime64[ns]").view(np.int64)
        for symbol, ts, close in zip(bars["symbol"].astype(str), ts_all, bars["close"].to_numpy(float), strict=True):
            key = (interval_s, symbol)
            prev = self.state.last_close.get(key)
            if prev is not None and prev > 0 and close > 0:
                when = datetime.fromtimestamp(int(ts) / 1e9, UTC)
                rel.update_return(symbol, when, math.log(float(close) / prev))
            self.state.last_close[key] = float(close)

    def _posts(self, posts: list[Post]) -> None:
        self.counters.posts += len(posts)
        kept, rejected, _ = process_posts(posts, self.state.text)
        self.counters.posts_rejected.update(reason for _, reason in rejected)
        if rejected:
            letters = [
                DeadLetter(
                    ts=post.ts,
                    source=post.source,
                    position=f"{post.source}:{post.id}",
                    field="text",
                    reason=f"text_{reason}",
                    record=post.text[:2000],
                    kind="news" if post.title else "posts",
                    rejected_at=datetime.now(UTC),
                )
                for post, reason in rejected
            ]
            self.bus.publish_events(DEADLETTER, letters)
            if self.store:
                self.history.write_events("deadletter", letters)
        if not kept:
            return
        scores = self.model.score([p.text for p in kept])
        items = score_events(kept, scores, self.model.name)
        per_post = [event for event, _ in items]
        aggregates: list[SentimentScore] = []
        agg, fusion = self.state.sentiment, self.state.fusion
        for event, weight in items:
            agg.update(event, weight)
            self.state.reliability.update(event, weight)
            combined = agg.get(event.symbol, event.ts)
            ts_ns = int(pd.Timestamp(event.ts).value)
            if combined is not None:
                aggregates.append(combined.to_event(f"{self.model.name}-agg", event.ingest_ns))
                fusion.sentiment(event.symbol, ts_ns, combined.polarity)
            if fusion.sources and (own := agg.get_source(event.symbol, event.source, event.ts)) is not None:
                fusion.sentiment(event.symbol, ts_ns, own.polarity, source=event.source)
        self.counters.scores += len(per_post)
        self.bus.publish_events(SENTIMENT_SCORES, [*per_post, *aggregates])
        if self.alerts is not None:
            self._stored(self.alerts.observe_many(per_post))
        if self.store:
            if per_post:
                self.history.write_events("sentiment", per_post)
            self.online.put_many(
                "sentiment",
                {
                    a.symbol: {
                        "ts": int(a.ts.timestamp() * 1e9),
                        "polarity": a.polarity,
                        "intensity": a.intensity,
                        "probs": a.probs,
                        "source": a.source,
                    }
                    for a in aggregates
                },
            )

    def _dead_letter_late(self, late: pd.DataFrame) -> None:
        ts = late["ts"].to_numpy("datetime64[ns]").view(np.int64)
        letters = [
            DeadLetter(
                ts=datetime.fromtimestamp(int(t) / 1e9, UTC),
                source="engine",
                position=f"{MARKET_TICKS}:{sym}",
                field="ts",
                reason="late",
                record=f"{sym},{int(t)},{p},{s}",
                kind="ticks",
                detail=f"bar {bar_ts} already closed",
                rejected_at=datetime.now(UTC),
            )
            for sym, t, p, s, bar_ts in zip(
                late["symbol"].astype(str), ts, late["price"], late["size"], late["bar_ts"], strict=True
            )
        ]
        self.bus.publish_events(DEADLETTER, letters)
        if self.store:
            self.history.write_events("deadletter", letters)


def _tick_frame(batches: list[TickBatch]) -> pd.DataFrame:
    """One frame of the ticks of many batches in event-time order (stable), symbols categorical: built from the
    columnar buffers directly, without a frame per batch."""
    names = sorted({b.symbol for b in batches})
    code = {n: i for i, n in enumerate(names)}
    ts = np.concatenate([np.frombuffer(b.ts_ns, "<i8") for b in batches])
    price = np.concatenate([np.frombuffer(b.price, "<f8") for b in batches])
    size = np.concatenate([np.frombuffer(b.size, "<f8") for b in batches])
    codes = np.concatenate([np.full(len(b), code[b.symbol], dtype=np.int32) for b in batches])
    order = np.argsort(ts, kind="stable")
    return pd.DataFrame(
        {
            "symbol": pd.Categorical.from_codes(codes[order], categories=pd.Index(names)),
            "ts": pd.DatetimeIndex(ts[order].view("datetime64[ns]")).tz_localize("UTC"),
            "price": price[order],
            "size": size[order],
        }
    )


def run_until_idle(engine: LocalEngine, idle_s: float = 1.0, max_records: int = 5_000) -> None:
    """Step until nothing arrived for ``idle_s`` seconds, then :meth:`LocalEngine.finish`."""
    last = time.monotonic()
    while time.monotonic() - last < idle_s:
        if engine.step(max_records, timeout=0.1):
            last = time.monotonic()
    engine.finish()


__all__ = ["ENGINE_GROUP", "EngineCounters", "EngineState", "LocalEngine", "run_until_idle", "schema_header"]
