"""Alerts: the rules (:mod:`.rules`), the cool-down and the :class:`AlertManager` that routes what fires to the
bus and the notifiers.

Rules are pure and River style: one state per symbol (or key), ``update(...)`` takes one observation with its
**event time** and returns the alerts that fire (``[]`` mostly). Nothing reads the wall clock, so one input gives
one output. Every rule warms up: it never fires before it has seen enough history (``min_history``/``min_count``).

* ``signal_flip`` — the fused signal's direction (sign of ``score`` outside ``±dead_band``) differs from the last
  *confident* direction of that symbol and the new signal's confidence (``|score|`` unless given) is at least
  ``min_confidence``. Weak signals neither fire nor change the reference direction.
* ``price_move`` — ``|log return|`` of a bar exceeds ``k`` σ, σ being the std of the **previous** returns only
  (a window of ``window`` returns, or an EWMA with ``ewma_halflife`` bars); the current return joins the history
  after it was judged.
* ``sentiment_spike`` — per time bucket, the z-score of the post count and of the mean polarity against the
  symbol's own previous buckets (std floored at ``*_min_std``); the count fires upwards, polarity either way.
* ``model_drift`` — hit rate (predicted direction == realised direction) over the last ``window`` outcomes below
  ``min_hit_rate`` once ``min_count`` outcomes are in.
* ``pipeline_lag`` — a measured lag above ``max_lag_s``.

:class:`Cooldown`: an alert with the same ``(rule, symbol)`` whose event time is within that rule's
``cooldown_s`` of the last one sent is suppressed (counted, not sent). :class:`AlertManager.emit` applies it,
then publishes each alert to the ``alerts`` topic (when a bus is given; a bus error is logged and counted, never
raised) and submits it to the :class:`~marketpulse.monitoring.notifiers.Dispatcher` (never blocks).
The manager is not thread-safe: one pipeline thread calls it.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import numpy as np
from pydantic import Field, ValidationError

from marketpulse.bus.base import ALERTS, Bus
from marketpulse.config_errors import format_validation_error
from marketpulse.errors import BusError, ConfigError
from marketpulse.events import Alert, Bar, BarBatch, Event, Prediction, SentimentScore, Signal
from marketpulse.monitoring.notifiers import (
    DispatchConfig,
    Dispatcher,
    LogNotifierConfig,
    NotifierConfig,
)
from marketpulse.monitoring.rules import (
    _EPOCH,
    Cooldown,
    ModelDriftConfig,
    ModelDriftRule,
    PipelineLagConfig,
    PipelineLagRule,
    PriceMoveConfig,
    PriceMoveRule,
    SentimentSpikeConfig,
    SentimentSpikeRule,
    SignalFlipConfig,
    SignalFlipRule,
    _Section,
)

log = logging.getLogger(__name__)


def _default_notifiers() -> list[NotifierConfig]:
    # info, not the alert's severity: the console (warnings and up) stays readable under `run`; alerts still reach
    # the bus, the history store, the API and the dashboard, and a configured log notifier can say "severity"
    return [LogNotifierConfig(level="info")]


class AlertsConfig(_Section):
    """The ``alerts`` section: rules, notifiers and delivery."""

    enabled: bool = Field(True, description="evaluate rules at all")
    publish: bool = Field(True, description="publish alerts to the bus topic 'alerts' when a bus is given")
    signal_flip: SignalFlipConfig = Field(default_factory=SignalFlipConfig, description="fused-signal flip")
    price_move: PriceMoveConfig = Field(default_factory=PriceMoveConfig, description="move beyond k σ")
    sentiment_spike: SentimentSpikeConfig = Field(default_factory=SentimentSpikeConfig, description="talk spikes")
    model_drift: ModelDriftConfig = Field(default_factory=ModelDriftConfig, description="hit rate drops")
    pipeline_lag: PipelineLagConfig = Field(default_factory=PipelineLagConfig, description="lag too high")
    notifiers: list[NotifierConfig] = Field(
        default_factory=_default_notifiers, description="where alerts go (types: log, webhook, email)"
    )
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig, description="queue and retry of delivery")


def load_alerts_config(data: Mapping[str, Any] | None = None) -> AlertsConfig:
    """Validate the ``alerts`` section; :class:`~marketpulse.errors.ConfigError` names the key and allowed values."""
    try:
        return AlertsConfig.model_validate(dict(data or {}))
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, AlertsConfig, "alerts")) from e


# -- manager --------------------------------------------------------------------------------------------------------


def _ts_ns(ts: datetime) -> int:
    delta = ts - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _bucket_end(index: int, size_s: int) -> datetime:
    return _EPOCH + timedelta(seconds=(index + 1) * size_s)


class AlertManager:
    """Feeds pipeline events to the rules; sends what fires (after the cool-down) to the bus and the notifiers.

    ``observe(event)`` understands :class:`Signal` (flip), :class:`Bar`/:class:`BarBatch` (price move, and the
    outcome of pending predictions), :class:`Prediction` (kept until ``ts + horizon_s``, then judged against the
    first price at or after it: drift) and per-post :class:`SentimentScore` (``ref_id`` set; counted into
    ``bucket_s`` buckets closed when a later bucket's event arrives). Other events are ignored. The ``observe_*``
    methods feed already aggregated values. Every method returns the alerts actually sent.
    """

    def __init__(
        self, config: AlertsConfig | None = None, *, dispatcher: Dispatcher | None = None, bus: Bus | None = None
    ) -> None:
        self.config = cfg = config or AlertsConfig()
        self.dispatcher = dispatcher
        self.bus = bus if cfg.publish else None
        self.signal_flip = SignalFlipRule(cfg.signal_flip)
        self.price_move = PriceMoveRule(cfg.price_move)
        self.sentiment_spike = SentimentSpikeRule(cfg.sentiment_spike)
        self.model_drift = ModelDriftRule(cfg.model_drift)
        self.pipeline_lag = PipelineLagRule(cfg.pipeline_lag)
        rules = (cfg.signal_flip, cfg.price_move, cfg.sentiment_spike, cfg.model_drift, cfg.pipeline_lag)
        names = ("signal_flip", "price_move", "sentiment_spike", "model_drift", "pipeline_lag")
        self._enabled = {name for name, rule in zip(names, rules, strict=True) if rule.enabled and cfg.enabled}
        self.cooldown = Cooldown({name: rule.cooldown_s for name, rule in zip(names, rules, strict=True)})
        self.sent = 0
        self.publish_errors = 0
        self._pending: dict[str, list[tuple[int, int, float, bool, str]]] = {}  # due_ns, seq, ref, up, model
        self._seq = 0
        self._last_price: dict[str, float] = {}
        self._buckets: dict[str, list[float]] = {}  # symbol -> [bucket index, count, polarity sum]

    @classmethod
    def from_config(cls, config: AlertsConfig | None = None, bus: Bus | None = None) -> AlertManager:
        """A manager with a started :class:`Dispatcher` over the configured notifiers."""
        cfg = config or AlertsConfig()
        return cls(cfg, dispatcher=Dispatcher.from_configs(cfg.notifiers, cfg.dispatch), bus=bus)

    # -- feeding --------------------------------------------------------------------------------------------------

    def observe(self, event: Event) -> list[Alert]:
        if isinstance(event, Signal):
            return self._run("signal_flip", lambda: self.signal_flip.update(event.symbol, event.ts, event.score))
        if isinstance(event, Bar):
            return self._price(event.symbol, event.ts, event.close, event.interval_s)
        if isinstance(event, BarBatch):
            out: list[Alert] = []
            closes = np.frombuffer(event.close, "<f8")
            for ns, close in zip(np.frombuffer(event.ts_ns, "<i8").tolist(), closes.tolist(), strict=True):
                out += self._price(event.symbol, _EPOCH + timedelta(microseconds=ns // 1000), close, event.interval_s)
            return out
        if isinstance(event, Prediction):
            ref = self._last_price.get(event.symbol)
            if ref is not None and "model_drift" in self._enabled:
                self._seq += 1
                due = _ts_ns(event.ts) + event.horizon_s * 1_000_000_000
                item = (due, self._seq, ref, event.p_up >= 0.5, event.version or event.model)
                heapq.heappush(self._pending.setdefault(event.symbol, []), item)
            return []
        if isinstance(event, SentimentScore) and event.ref_id is not None:
            return self._sentiment(event)
        return []

    def observe_many(self, events: Iterable[Event]) -> list[Alert]:
        return [a for e in events for a in self.observe(e)]

    def observe_price(self, symbol: str, ts: datetime, price: float, interval_s: int | None = None) -> list[Alert]:
        """A bar's close (or a trade price): the k-sigma rule — per symbol and bar interval, so daily and 1-minute
        closes never make one series — and the outcome of pending predictions."""
        return self._price(symbol, ts, price, interval_s)

    def observe_sentiment(self, symbol: str, ts: datetime, count: float, polarity: float | None) -> list[Alert]:
        return self._run("sentiment_spike", lambda: self.sentiment_spike.update(symbol, ts, count, polarity))

    def observe_outcome(
        self, symbol: str, ts: datetime, predicted_up: bool, realised_up: bool, model: str = ""
    ) -> list[Alert]:
        return self._run("model_drift", lambda: self.model_drift.update(symbol, ts, predicted_up, realised_up, model))

    def observe_lag(
        self, ts: datetime, lag_s: float, *, stage: str = "pipeline", symbol: str | None = None
    ) -> list[Alert]:
        return self._run("pipeline_lag", lambda: self.pipeline_lag.update(ts, lag_s, stage=stage, symbol=symbol))

    def _run(self, rule: str, fire: Callable[[], list[Alert]]) -> list[Alert]:
        return self.emit(fire()) if rule in self._enabled else []

    def _price(self, symbol: str, ts: datetime, price: float, interval_s: int | None = None) -> list[Alert]:
        out = self._run("price_move", lambda: self.price_move.update(symbol, ts, price, series=interval_s))
        if math.isfinite(price) and price > 0:
            self._last_price[symbol] = price
            pending = self._pending.get(symbol)
            now = _ts_ns(ts)
            while pending and pending[0][0] <= now:
                _, _, ref, up, model = heapq.heappop(pending)
                if price != ref:
                    out += self.observe_outcome(symbol, ts, up, price > ref, model)
        return out

    def _sentiment(self, event: SentimentScore) -> list[Alert]:
        size = self.config.sentiment_spike.bucket_s
        index = _ts_ns(event.ts) // (size * 1_000_000_000)
        state = self._buckets.get(event.symbol)
        out: list[Alert] = []
        if state is None:
            state = self._buckets[event.symbol] = [index, 0.0, 0.0]
        elif index > state[0]:
            out += self._close_buckets(event.symbol, state, index)
        elif index < state[0]:
            return []  # later than its bucket: already judged
        state[1] += 1
        state[2] += event.polarity
        return out

    def _close_buckets(self, symbol: str, state: list[float], index: int) -> list[Alert]:
        """Judge the open bucket and the empty ones after it, up to (not including) bucket ``index``."""
        size, window = self.config.sentiment_spike.bucket_s, self.config.sentiment_spike.window
        start, count, total = int(state[0]), state[1], state[2]
        out = self.observe_sentiment(symbol, _bucket_end(start, size), count, total / count if count else None)
        for empty in range(max(start + 1, index - window), index):
            out += self.observe_sentiment(symbol, _bucket_end(empty, size), 0.0, None)
        state[:] = [index, 0.0, 0.0]
        return out

    def advance(self, ts: datetime) -> list[Alert]:
        """Event time has reached ``ts`` (from any stream, e.g. bars): every symbol's sentiment bucket that ended at
        least ``sentiment_spike.lateness_s`` before is judged now, without waiting for the symbol's next post (a
        post that arrives later for a judged bucket is ignored, as always)."""
        if "sentiment_spike" not in self._enabled or not self._buckets:
            return []
        cfg = self.config.sentiment_spike
        index = (_ts_ns(ts) - int(cfg.lateness_s * 1e9)) // (cfg.bucket_s * 1_000_000_000)
        out: list[Alert] = []
        for symbol, state in self._buckets.items():
            if index > state[0]:
                out += self._close_buckets(symbol, state, int(index))
        return out

    # -- sending --------------------------------------------------------------------------------------------------

    def emit(self, alerts: Iterable[Alert]) -> list[Alert]:
        """Apply the cool-down, then publish and submit each remaining alert; returns those sent."""
        sent = [a for a in alerts if self.cooldown.allow(a)]
        for alert in sent:
            if self.bus is not None:
                try:
                    self.bus.publish_event(ALERTS, alert)
                except BusError as e:
                    self.publish_errors += 1
                    log.warning("alert %s %s not published: %s", alert.rule, alert.symbol, e)
            if self.dispatcher is not None:
                self.dispatcher.submit(alert)
        self.sent += len(sent)
        return sent

    def stats(self) -> dict[str, Any]:
        """``sent``, ``suppressed`` (total and ``suppressed_by_rule``), ``publish_errors`` and the dispatcher's."""
        out: dict[str, Any] = {
            "sent": self.sent,
            "suppressed": sum(self.cooldown.suppressed.values()),
            "suppressed_by_rule": dict(self.cooldown.suppressed),
            "publish_errors": self.publish_errors,
        }
        if self.dispatcher is not None:
            out.update(self.dispatcher.stats())
        return out

    def close(self, timeout: float = 10.0) -> bool:
        """Drain and stop the dispatcher (True when everything queued was handled in time)."""
        return self.dispatcher.close(timeout) if self.dispatcher is not None else True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
