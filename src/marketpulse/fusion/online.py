"""The fusion stage in event time: price predictions + sentiment + momentum → fused signals; outcomes settle later.

:class:`OnlineFusion` is driven by the engine, in event-time order per symbol. Its inputs (``fusion.inputs`` in the
config) are any of:

- ``price`` — the price model's ``p(up)``;
- ``sentiment`` — the symbol's combined (cross-source) sentiment, ``p(up) = (1 + polarity) / 2``;
- ``sentiment:<source>`` — one source's own aggregate (e.g. ``sentiment:news``), so that each source earns its
  own weight;
- ``momentum`` — ``σ(z)`` with ``z`` the log return over the last ``momentum_bars`` bars divided by its expected
  size, ``σ₁ √momentum_bars`` (``σ₁`` = standard deviation of the one-bar log returns over ``momentum_window``
  bars); present once the symbol has ``momentum_window + 1`` bars.

A sentiment input is used for ``sentiment_max_age_s`` after its time and never before it (absent otherwise: the
fusion then weighs the inputs present). Calls:

- :meth:`OnlineFusion.sentiment` — a symbol's sentiment at a time (combined, or one source's);
- :meth:`OnlineFusion.bar` — a bar of the predictions' interval: first **settles** every pending prediction of the
  symbol whose horizon has ended at or before the bar (outcome: this close above the close at prediction time),
  updating the weights and keeping the price model's call beside the outcome (:meth:`OnlineFusion.drain_outcomes`,
  what the model-drift alert judges), then records the close;
- :meth:`OnlineFusion.predict` — a price prediction: fuses it with the other inputs using the current weights,
  returns the :class:`~marketpulse.events.Signal` (``score = 2p − 1``; ``components`` = the inputs' ``p(up)``
  that took part; ``weights`` = the fusion's current weight of **every** configured input, so a stored series of
  signals is the weight history) and keeps it pending until its horizon ends.

Nothing learns from a value after its time: a prediction is settled only by a bar at or after ``ts + horizon``.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import Field, field_validator

from marketpulse.events import Signal
from marketpulse.fusion.ensemble import Fusion, FusionConfig, make_fusion

SOURCE_PREFIX = "sentiment:"


class OnlineFusionConfig(FusionConfig):
    """A :class:`FusionConfig` plus what the engine's stage needs (the ``fusion`` config section)."""

    sentiment_max_age_s: float = Field(3600.0, gt=0, description="a sentiment input is used this long after its time")
    momentum_bars: int = Field(5, ge=1, description="momentum: the return over this many bars")
    momentum_window: int = Field(30, ge=2, description="momentum: bars of one-bar returns that scale it")
    max_pending: int = Field(10_000, gt=0, description="unsettled predictions kept per symbol (oldest dropped)")

    @field_validator("inputs")
    @classmethod
    def _known_inputs(cls, inputs: tuple[str, ...]) -> tuple[str, ...]:
        for name in inputs:
            if name not in ("price", "sentiment", "momentum") and not (
                name.startswith(SOURCE_PREFIX) and len(name) > len(SOURCE_PREFIX)
            ):
                raise ValueError(f"input {name!r}: allowed: 'price', 'sentiment', 'sentiment:<source>', 'momentum'")
        if "price" not in inputs:
            raise ValueError("'price' is required (a signal is made per price prediction)")
        return inputs


@dataclass
class _Pending:
    due_ns: int
    close: float
    inputs: dict[str, float | None]
    model: str


@dataclass(frozen=True)
class Outcome:
    """A settled prediction: the price model's call (``p(up) >= 0.5``) beside what happened."""

    symbol: str
    ts_ns: int
    """The settling bar's time."""
    predicted_up: bool
    realised_up: bool
    model: str


def _momentum(closes: deque[float], bars: int) -> float | None:
    """``σ(z)`` of the closes (oldest first), or None before the window is full or when it is flat."""
    if closes.maxlen is None or len(closes) < closes.maxlen:
        return None
    logs = [math.log(c) for c in closes]
    steps = [b - a for a, b in itertools.pairwise(logs)]
    mean = sum(steps) / len(steps)
    sd = math.sqrt(sum((s - mean) ** 2 for s in steps) / len(steps))
    if sd <= 0:
        return None
    z = (logs[-1] - logs[-1 - bars]) / (sd * math.sqrt(bars))
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))


@dataclass
class OnlineFusion:
    """Per-symbol fusion state (see the module docstring); picklable with the engine's state."""

    config: OnlineFusionConfig = field(default_factory=OnlineFusionConfig)
    fusion: Fusion = field(init=False)
    sources: bool = field(init=False)
    """Whether per-source sentiment is an input (the engine skips computing it otherwise)."""
    settled: int = 0
    _sentiment: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)
    _closes: dict[str, deque[float]] = field(default_factory=dict)
    _pending: dict[str, deque[_Pending]] = field(default_factory=dict)
    _outcomes: list[Outcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fusion = make_fusion(self.config)
        self.sources = any(name.startswith(SOURCE_PREFIX) for name in self.config.inputs)

    def sentiment(self, symbol: str, ts_ns: int, polarity: float, source: str | None = None) -> None:
        """``symbol``'s sentiment at ``ts_ns``: the combined one, or ``source``'s own."""
        p = min(1.0, max(0.0, (1.0 + float(polarity)) / 2.0))
        name = "sentiment" if source is None else SOURCE_PREFIX + source
        if name in self.fusion.weights:
            self._sentiment[(symbol, name)] = (int(ts_ns), p)

    def bar(self, symbol: str, ts_ns: int, close: float) -> int:
        """Settle the symbol's predictions due by ``ts_ns`` against ``close``, then record it; returns how many."""
        queue = self._pending.get(symbol)
        n = 0
        while queue and queue[0].due_ns <= ts_ns:
            pending = queue.popleft()
            realised = close > pending.close
            self.fusion.update(pending.inputs, realised)
            price = pending.inputs.get("price")
            if price is not None and close != pending.close:  # an unchanged close is no outcome for the drift rule
                self._outcomes.append(Outcome(symbol, int(ts_ns), price >= 0.5, realised, pending.model))
            n += 1
        self.settled += n
        closes = self._closes.get(symbol)
        if closes is None:
            closes = self._closes[symbol] = deque(
                maxlen=max(self.config.momentum_window, self.config.momentum_bars) + 1
            )
        if close > 0 and math.isfinite(close):
            closes.append(float(close))
        return n

    def inputs(self, symbol: str, ts_ns: int, p_up: float) -> dict[str, float | None]:
        """The inputs a prediction of ``p_up`` at ``ts_ns`` is fused from (None = absent)."""
        out: dict[str, float | None] = {}
        for name in self.config.inputs:
            if name == "price":
                out[name] = float(p_up)
            elif name == "momentum":
                closes = self._closes.get(symbol)
                out[name] = _momentum(closes, self.config.momentum_bars) if closes else None
            else:
                seen = self._sentiment.get((symbol, name))
                fresh = seen is not None and 0 <= ts_ns - seen[0] <= self.config.sentiment_max_age_s * 1e9
                out[name] = seen[1] if fresh and seen is not None else None
        return out

    def predict(self, symbol: str, ts_ns: int, p_up: float, horizon_s: int, model: str = "") -> Signal | None:
        """The fused signal of a price prediction at ``ts_ns`` (None before the symbol's first bar)."""
        inputs = self.inputs(symbol, ts_ns, p_up)
        fused = self.fusion.predict(inputs)
        closes = self._closes.get(symbol)
        if fused is None or not closes:
            return None
        queue = self._pending.setdefault(symbol, deque())
        if len(queue) >= self.config.max_pending:
            queue.popleft()  # bounded memory: the oldest unsettled prediction is forgotten, never mis-settled
        queue.append(_Pending(int(ts_ns) + int(horizon_s) * 1_000_000_000, closes[-1], inputs, model))
        return Signal(
            ts=datetime.fromtimestamp(ts_ns / 1e9, UTC),
            symbol=symbol,
            score=2.0 * fused.probability - 1.0,
            components=dict(fused.inputs),
            weights=dict(self.fusion.weights),
        )

    def drain_outcomes(self) -> list[Outcome]:
        """The outcomes settled since the last call (the engine feeds them to the model-drift alert rule)."""
        out, self._outcomes = self._outcomes, []
        return out

    def state(self) -> dict[str, Any]:
        """The fusion's JSON snapshot plus how many predictions have settled."""
        return {**self.fusion.state(), "settled": self.settled}


__all__ = ["SOURCE_PREFIX", "OnlineFusion", "OnlineFusionConfig", "Outcome"]
