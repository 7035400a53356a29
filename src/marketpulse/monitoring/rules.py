"""Alert rules and the cool-down: pure, River style, in event time (see :mod:`marketpulse.monitoring.alerts`).

Each rule keeps one state per symbol (or key); ``update(...)`` takes one observation with its **event time** and
returns the alerts that fire (``[]`` mostly). Nothing reads the wall clock. Every rule warms up first.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from marketpulse.events import Alert

Severity = Literal["info", "warning", "critical"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- config --------------------------------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RuleConfig(_Section):
    enabled: bool = Field(True, description="evaluate this rule")
    severity: Severity = Field("warning", description="severity of the alerts it raises")
    cooldown_s: float = Field(900.0, ge=0, description="same rule and symbol alert at most once per this event time")


class SignalFlipConfig(_RuleConfig):
    min_confidence: float = Field(0.5, ge=0, le=1, description="confidence the new direction needs")
    dead_band: float = Field(0.0, ge=0, lt=1, description="|score| at or below this has no direction")


class PriceMoveConfig(_RuleConfig):
    cooldown_s: float = Field(300.0, ge=0, description="same rule and symbol alert at most once per this event time")
    k: float = Field(4.0, gt=0, description="fire when |log return| > k σ")
    window: int = Field(100, ge=2, description="past returns in the windowed σ")
    ewma_halflife: float | None = Field(None, gt=0, description="bars; set to use an EWMA σ instead of the window")
    min_history: int = Field(30, ge=2, description="past returns seen before judging")
    gap_factor: float | None = Field(
        5.0,
        gt=1,
        description="a return across a pause longer than this × the symbol's usual spacing (overnight, a halt) is "
        "neither judged nor added to σ; null judges every return",
    )


class SentimentSpikeConfig(_RuleConfig):
    z: float = Field(3.0, gt=0, description="fire when a z-score reaches this")
    bucket_s: int = Field(300, gt=0, description="bucket length when fed SentimentScore events")
    window: int = Field(288, ge=2, description="past buckets in the rolling mean/std")
    min_history: int = Field(24, ge=2, description="past buckets seen before judging")
    volume_min_std: float = Field(1.0, gt=0, description="floor of the post-count std")
    polarity_min_std: float = Field(0.05, gt=0, description="floor of the mean-polarity std")
    lateness_s: float = Field(
        300.0, ge=0, description="a bucket is judged once event time (any stream) is this far past its end"
    )


class ModelDriftConfig(_RuleConfig):
    cooldown_s: float = Field(3600.0, ge=0, description="same rule and symbol alert at most once per this event time")
    min_hit_rate: float = Field(0.45, ge=0, le=1, description="fire below this rolling hit rate")
    window: int = Field(200, ge=1, description="outcomes in the rolling hit rate")
    min_count: int = Field(50, ge=1, description="outcomes needed before judging")


class PipelineLagConfig(_RuleConfig):
    cooldown_s: float = Field(300.0, ge=0, description="same rule and symbol alert at most once per this event time")
    max_lag_s: float = Field(30.0, gt=0, description="fire above this lag")


# -- rolling statistics ---------------------------------------------------------------------------------------------


class _Window:
    """Mean and sample std of the last ``size`` values, in O(1) per value (running sums; variance floored at 0)."""

    def __init__(self, size: int) -> None:
        self.values: deque[float] = deque(maxlen=size)
        self._sum = 0.0
        self._sumsq = 0.0

    @property
    def n(self) -> int:
        return len(self.values)

    def add(self, x: float) -> None:
        if len(self.values) == self.values.maxlen:
            old = self.values[0]
            self._sum -= old
            self._sumsq -= old * old
        self.values.append(x)
        self._sum += x
        self._sumsq += x * x

    def mean_std(self) -> tuple[float, float]:
        n = len(self.values)
        mean = self._sum / n
        var = max(0.0, (self._sumsq - n * mean * mean) / (n - 1)) if n > 1 else 0.0
        return mean, math.sqrt(var)


class _Ewma:
    """Exponentially weighted mean and std (West's incremental form), ``halflife`` in observations."""

    def __init__(self, halflife: float) -> None:
        self.alpha = 1.0 - 0.5 ** (1.0 / halflife)
        self.n = 0
        self.mean = 0.0
        self.var = 0.0

    def add(self, x: float) -> None:
        if self.n == 0:
            self.mean = x
        else:
            diff = x - self.mean
            incr = self.alpha * diff
            self.mean += incr
            self.var = (1.0 - self.alpha) * (self.var + diff * incr)
        self.n += 1

    def mean_std(self) -> tuple[float, float]:
        return self.mean, math.sqrt(self.var)


# -- rules ----------------------------------------------------------------------------------------------------------


class _Rule:
    name = "rule"

    def __init__(self, config: _RuleConfig) -> None:
        self.severity: Severity = config.severity

    def _alert(self, ts: datetime, symbol: str | None, message: str, severity: Severity | None = None) -> list[Alert]:
        return [Alert(ts=ts, rule=self.name, severity=severity or self.severity, message=message, symbol=symbol)]


class SignalFlipRule(_Rule):
    name = "signal_flip"

    def __init__(self, config: SignalFlipConfig | None = None) -> None:
        self.config = config = config or SignalFlipConfig()
        super().__init__(config)
        self._last: dict[str, int] = {}  # last confident direction per symbol

    def update(self, symbol: str, ts: datetime, score: float, confidence: float | None = None) -> list[Alert]:
        cfg = self.config
        conf = abs(score) if confidence is None else confidence
        direction = 1 if score > cfg.dead_band else -1 if score < -cfg.dead_band else 0
        if direction == 0 or not conf >= cfg.min_confidence:
            return []
        previous = self._last.get(symbol)
        self._last[symbol] = direction
        if previous is None or previous == direction:
            return []
        word = "up" if direction > 0 else "down"
        return self._alert(
            ts, symbol, f"{symbol} fused signal flipped {word} (score {score:+.2f}, confidence {conf:.2f})"
        )


class PriceMoveRule(_Rule):
    name = "price_move"

    def __init__(self, config: PriceMoveConfig | None = None) -> None:
        self.config = config = config or PriceMoveConfig()
        super().__init__(config)
        self._last: dict[tuple[str, object], tuple[float, float]] = {}
        self._stats: dict[tuple[str, object], _Window | _Ewma] = {}
        self._spacing: dict[tuple[str, object], _Window] = {}

    def update(self, symbol: str, ts: datetime, price: float, series: object = None) -> list[Alert]:
        """Judge the log return from the previous price of the symbol's ``series`` (e.g. the bar interval: each
        series has its own returns and σ); a non-positive or non-finite price is ignored, and a return across a
        gap (see ``gap_factor``) is skipped."""
        if not (math.isfinite(price) and price > 0):
            return []
        key = (symbol, series)
        previous = self._last.get(key)
        now = ts.timestamp()
        self._last[key] = (now, price)
        if previous is None:
            return []
        step = now - previous[0]
        spacing = self._spacing.setdefault(key, _Window(self.config.window))
        factor = self.config.gap_factor
        if factor is not None and spacing.n >= 5 and step > factor * spacing.mean_std()[0]:
            return []  # overnight or a halt: not a one-bar move, and not part of the one-bar σ
        if step > 0:
            spacing.add(step)
        return self.update_return(symbol, ts, math.log(price / previous[1]), series)

    def update_return(self, symbol: str, ts: datetime, ret: float, series: object = None) -> list[Alert]:
        cfg = self.config
        stats = self._stats.get((symbol, series))
        if stats is None:
            stats = _Ewma(cfg.ewma_halflife) if cfg.ewma_halflife else _Window(cfg.window)
            self._stats[(symbol, series)] = stats
        out: list[Alert] = []
        if stats.n >= cfg.min_history:
            sigma = stats.mean_std()[1]  # past returns only: ``ret`` is added below
            if sigma > 0 and abs(ret) > cfg.k * sigma:
                out = self._alert(
                    ts, symbol, f"{symbol} moved {ret:+.2%} in one bar: {abs(ret) / sigma:.1f}σ (limit {cfg.k:g}σ)"
                )
        stats.add(ret)
        return out


def _z(x: float, stats: _Window, floor: float) -> tuple[float, float]:
    mean, std = stats.mean_std()
    return (x - mean) / max(std, floor), mean


class SentimentSpikeRule(_Rule):
    name = "sentiment_spike"

    def __init__(self, config: SentimentSpikeConfig | None = None) -> None:
        self.config = config = config or SentimentSpikeConfig()
        super().__init__(config)
        self._volume: dict[str, _Window] = {}
        self._polarity: dict[str, _Window] = {}

    def update(self, symbol: str, ts: datetime, count: float, polarity: float | None) -> list[Alert]:
        """One bucket: its post count and mean polarity (``None`` when it had no post)."""
        cfg = self.config
        volume = self._volume.setdefault(symbol, _Window(cfg.window))
        pol = self._polarity.setdefault(symbol, _Window(cfg.window))
        parts = []
        if volume.n >= cfg.min_history:
            z, mean = _z(count, volume, cfg.volume_min_std)
            if z >= cfg.z:
                parts.append(f"post volume {count:g} is {z:.1f}σ above its mean {mean:.1f}")
        if polarity is not None and pol.n >= cfg.min_history:
            z, mean = _z(polarity, pol, cfg.polarity_min_std)
            if abs(z) >= cfg.z:
                parts.append(f"mean polarity {polarity:+.2f} is {z:+.1f}σ from its mean {mean:+.2f}")
        volume.add(count)
        if polarity is not None:
            pol.add(polarity)
        return self._alert(ts, symbol, f"{symbol} sentiment spike: {'; '.join(parts)}") if parts else []


class ModelDriftRule(_Rule):
    name = "model_drift"

    def __init__(self, config: ModelDriftConfig | None = None) -> None:
        self.config = config = config or ModelDriftConfig()
        super().__init__(config)
        self._hits: dict[str, deque[bool]] = {}

    def update(self, symbol: str, ts: datetime, predicted_up: bool, realised_up: bool, model: str = "") -> list[Alert]:
        cfg = self.config
        hits = self._hits.setdefault(symbol, deque(maxlen=cfg.window))
        hits.append(predicted_up == realised_up)
        if len(hits) < cfg.min_count:
            return []
        rate = sum(hits) / len(hits)
        if rate >= cfg.min_hit_rate:
            return []
        who = f"model {model} on {symbol}" if model else f"predictions on {symbol}"
        return self._alert(
            ts, symbol, f"{who}: hit rate {rate:.1%} over the last {len(hits)} below {cfg.min_hit_rate:.0%}"
        )


class PipelineLagRule(_Rule):
    name = "pipeline_lag"

    def __init__(self, config: PipelineLagConfig | None = None) -> None:
        self.config = config = config or PipelineLagConfig()
        super().__init__(config)

    def update(self, ts: datetime, lag_s: float, *, stage: str = "pipeline", symbol: str | None = None) -> list[Alert]:
        if not lag_s > self.config.max_lag_s:
            return []
        return self._alert(ts, symbol, f"{stage} lag {lag_s:.1f}s above {self.config.max_lag_s:g}s")


# -- cool-down ------------------------------------------------------------------------------------------------------


class Cooldown:
    """Suppress a ``(rule, symbol)`` alert whose event time is within the rule's cool-down of the last one sent
    (either side, so a replay or a late event does not re-alert); suppressed alerts are counted per rule."""

    def __init__(self, cooldowns: Mapping[str, float], default_s: float = 0.0) -> None:
        self._cooldowns = {rule: timedelta(seconds=s) for rule, s in cooldowns.items()}
        self._default = timedelta(seconds=default_s)
        self._last: dict[tuple[str, str | None], datetime] = {}
        self.suppressed: dict[str, int] = {}

    def allow(self, alert: Alert) -> bool:
        key = (alert.rule, alert.symbol)
        last = self._last.get(key)
        if last is not None and abs(alert.ts - last) < self._cooldowns.get(alert.rule, self._default):
            self.suppressed[alert.rule] = self.suppressed.get(alert.rule, 0) + 1
            return False
        self._last[key] = alert.ts
        return True
