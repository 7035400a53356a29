"""The fusion stage in event time: price predictions + the latest sentiment → fused signals; outcomes settle later.

:class:`OnlineFusion` is driven by the engine, in event-time order per symbol:

- :meth:`OnlineFusion.sentiment` — the symbol's latest combined sentiment (polarity in [-1, 1]) becomes the
  sentiment input ``p(up) = (1 + polarity) / 2`` (the Hedge weights judge how much that deserves), valid for
  ``sentiment_max_age_s`` after its time and never before it;
- :meth:`OnlineFusion.bar` — a bar of the predictions' interval: first **settles** every pending prediction of the
  symbol whose horizon has ended at or before the bar (outcome: this close above the close at prediction time),
  updating the weights, then records the close;
- :meth:`OnlineFusion.predict` — a price prediction: fuses it with the sentiment input (when fresh) using the
  current weights, returns the :class:`~marketpulse.events.Signal` (``score = 2p − 1``, ``components`` = the
  inputs' ``p(up)``, ``weights``) and keeps it pending until its horizon ends.

Nothing learns from a value after its time: a prediction is settled only by a bar at or after ``ts + horizon``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime

from marketpulse.events import Signal
from marketpulse.fusion.ensemble import FusionConfig, HedgeFusion


@dataclass
class _Pending:
    due_ns: int
    close: float
    inputs: dict[str, float | None]


@dataclass
class OnlineFusion:
    """Per-symbol fusion state (see the module docstring); picklable with the engine's state."""

    config: FusionConfig = field(default_factory=FusionConfig)
    sentiment_max_age_s: float = 3600.0
    max_pending: int = 10_000
    fusion: HedgeFusion = field(init=False)
    settled: int = 0
    _sentiment: dict[str, tuple[int, float]] = field(default_factory=dict)
    _close: dict[str, float] = field(default_factory=dict)
    _pending: dict[str, deque[_Pending]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fusion = HedgeFusion(self.config)

    def sentiment(self, symbol: str, ts_ns: int, polarity: float) -> None:
        """The symbol's combined sentiment at ``ts_ns``."""
        p = min(1.0, max(0.0, (1.0 + float(polarity)) / 2.0))
        self._sentiment[symbol] = (int(ts_ns), p)

    def bar(self, symbol: str, ts_ns: int, close: float) -> int:
        """Settle the symbol's predictions due by ``ts_ns`` against ``close``, then record it; returns how many."""
        queue = self._pending.get(symbol)
        n = 0
        while queue and queue[0].due_ns <= ts_ns:
            pending = queue.popleft()
            self.fusion.update(pending.inputs, close > pending.close)
            n += 1
        self.settled += n
        self._close[symbol] = float(close)
        return n

    def predict(self, symbol: str, ts_ns: int, p_up: float, horizon_s: int, model: str = "") -> Signal | None:
        """The fused signal of a price prediction at ``ts_ns`` (None before the symbol's first bar)."""
        inputs: dict[str, float | None] = {name: None for name in self.config.inputs}
        if "price" in inputs:
            inputs["price"] = float(p_up)
        seen = self._sentiment.get(symbol)
        if "sentiment" in inputs and seen is not None and 0 <= ts_ns - seen[0] <= self.sentiment_max_age_s * 1e9:
            inputs["sentiment"] = seen[1]
        fused = self.fusion.predict(inputs)
        close = self._close.get(symbol)
        if fused is None or close is None:
            return None
        queue = self._pending.setdefault(symbol, deque())
        if len(queue) >= self.max_pending:
            queue.popleft()  # bounded memory: the oldest unsettled prediction is forgotten, never mis-settled
        queue.append(_Pending(int(ts_ns) + int(horizon_s) * 1_000_000_000, close, inputs))
        return Signal(
            ts=datetime.fromtimestamp(ts_ns / 1e9, UTC),
            symbol=symbol,
            score=2.0 * fused.probability - 1.0,
            components={k: v for k, v in fused.inputs.items()},
            weights=dict(fused.weights),
        )


__all__ = ["OnlineFusion"]
