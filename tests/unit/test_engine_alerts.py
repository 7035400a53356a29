"""Alerts in the engine: a k-sigma bar fires once (cool-down), reaches the bus topic, the history and the notifier;
lag is measured per micro-batch; an engine without alerts behaves as before."""

from __future__ import annotations

import numpy as np

from marketpulse.bus.base import ALERTS
from marketpulse.bus.memory import MemoryBus, MemoryBusConfig
from marketpulse.engine.local import LocalEngine
from marketpulse.events import Alert, BarBatch, decode, encode, now_ns
from marketpulse.monitoring.alerts import AlertManager, AlertsConfig
from marketpulse.store.memory import MemoryHistoryStore, MemoryOnlineStore

T0 = 1_704_205_860_000_000_000
MIN = 60_000_000_000


def _batch(symbol: str, closes: np.ndarray, start: int = 0) -> BarBatch:
    ts = T0 + (start + np.arange(len(closes), dtype=np.int64)) * MIN
    return BarBatch.from_arrays(
        symbol, ts, closes, closes * 1.001, closes * 0.999, closes, np.full(len(closes), 1e4), ingest_ns=now_ns()
    )


class _Collect:
    def __init__(self) -> None:
        self.got: list[Alert] = []

    def submit(self, alert: Alert) -> bool:
        self.got.append(alert)
        return True

    def stats(self) -> dict[str, int]:
        return {"submitted": len(self.got)}

    def close(self, timeout: float = 10.0) -> bool:
        return True


def test_a_jump_alerts_once_through_bus_history_and_notifier() -> None:
    bus = MemoryBus(MemoryBusConfig(capacity=100_000))
    sink = _Collect()
    config = AlertsConfig.model_validate(
        {"price_move": {"k": 6.0, "cooldown_s": 3600}, "pipeline_lag": {"max_lag_s": 1e9}}
    )
    manager = AlertManager(config, dispatcher=sink, bus=bus)  # type: ignore[arg-type]
    engine = LocalEngine(bus, MemoryOnlineStore(), MemoryHistoryStore(), alerts=manager)
    reader = bus.consumer("alerts-reader", [ALERTS])
    rng = np.random.default_rng(3)
    calm = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, 120)))
    jumps = calm.copy()
    jumps[100:] *= 1.05  # +5 % in one minute: ~50 sigma
    jumps[105:] *= 1.05  # a second jump inside the cool-down: suppressed
    bus.publish_batch("market.bars", [("AAA", encode(_batch("AAA", jumps))), ("BBB", encode(_batch("BBB", calm)))])
    engine.drain()
    on_bus = [decode(m.value) for m in reader.poll(1000)]
    moves = [a for a in on_bus if isinstance(a, Alert) and a.rule == "price_move"]
    assert [(a.symbol, a.ts.timestamp()) for a in moves] == [("AAA", (T0 + 100 * MIN) / 1e9)]
    assert [a.rule for a in sink.got if a.rule == "price_move"] == ["price_move"]
    assert engine.history.count("alerts", "AAA") == 1 and engine.counters.alerts == 1
    assert manager.stats()["suppressed"] == 1
    engine.close()


def test_lag_alerts_are_stored_without_a_symbol() -> None:
    bus = MemoryBus(MemoryBusConfig(capacity=100_000))
    sink = _Collect()
    config = AlertsConfig.model_validate({"pipeline_lag": {"max_lag_s": 1e-9}})
    engine = LocalEngine(
        bus,
        MemoryOnlineStore(),
        MemoryHistoryStore(),
        alerts=AlertManager(config, dispatcher=sink, bus=bus),  # type: ignore[arg-type]
    )
    closes = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 1e-3, 40)))
    bus.publish_batch("market.bars", [("AAA", encode(_batch("AAA", closes)))])
    engine.drain()
    lags = [a for a in sink.got if a.rule == "pipeline_lag"]
    assert len(lags) == 1 and lags[0].symbol is None
    assert engine.counters.alerts >= 1
