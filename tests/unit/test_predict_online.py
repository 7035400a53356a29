"""The registry (atomic entries, latest by schema) and online inference in the engine (hot reload included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marketpulse.bus.base import PREDICTIONS_PRICE
from marketpulse.bus.memory import MemoryBus, MemoryBusConfig
from marketpulse.engine.local import LocalEngine
from marketpulse.errors import ConfigError
from marketpulse.events import BarBatch, Prediction, decode, encode
from marketpulse.features.market import NAMES, schema_hash
from marketpulse.fusion.online import OnlineFusionConfig
from marketpulse.predict.base import Samples
from marketpulse.predict.models import create
from marketpulse.predict.online import OnlinePredictor
from marketpulse.predict.registry import Registry
from marketpulse.store.memory import MemoryHistoryStore, MemoryOnlineStore

WINDOW = 3


def _samples(n: int = 400, seed: int = 0, schema: str | None = None) -> Samples:
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (n, WINDOW, len(NAMES))).astype(np.float32)
    y = (X[:, -1, NAMES.index("ret_1")] > 0).astype(np.int64)
    ts = np.arange(n, dtype=np.int64) * 60_000_000_000
    info = {"horizon_ns": 300_000_000_000, "interval_s": 60, "typical_move": 0.002}
    return Samples(X, y, ts, np.array(["S"] * n), np.full(n, -1), NAMES, schema or schema_hash(), 2, info)


def _register(registry: Registry, name: str, seed: int = 0, schema: str | None = None) -> None:
    train = _samples(seed=seed, schema=schema)
    model = create("logreg").fit(train, None, seed=seed)
    card = {
        "schema": train.schema,
        "features": list(NAMES),
        "window": WINDOW,
        "interval_s": 60,
        "horizon_ns": 300_000_000_000,
        "typical_move": 0.002,
    }
    registry.register(name, [model], card)


def test_registry_round_trip_versions_and_latest_by_schema(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    assert reg.latest() is None and reg.names() == []
    _register(reg, "a")
    _register(reg, "other-schema", schema="0" * 16)
    assert reg.latest() == "other-schema"
    assert reg.latest(schema_hash()) == "a"
    before = reg.fingerprint("a")
    _register(reg, "a", seed=1)
    assert reg.card("a")["version"] == 2 and reg.fingerprint("a") != before
    ens = reg.load("a")
    assert ens.version == "a@2" and len(ens.models) == 1
    p = ens.predict_proba(_samples(10, seed=5).X)
    assert p.shape == (10, 2) and np.allclose(p.sum(axis=1), 1.0)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "no temporary entries left behind"
    with pytest.raises(ConfigError, match="no registered model 'nope'"):
        reg.card("nope")
    with pytest.raises(ConfigError, match="model name"):
        reg.register("../evil", [], {})


def _bars(n: int, symbols: tuple[str, ...] = ("AAA", "BBB"), start: int = 0) -> list[BarBatch]:
    rng = np.random.default_rng(7)
    out = []
    t0 = 1_704_205_860_000_000_000 + start * 60_000_000_000
    for sym in symbols:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
        ts = t0 + np.arange(n, dtype=np.int64) * 60_000_000_000
        hi, lo, vol = close * 1.001, close * 0.999, np.full(n, 1e4)
        out.append(BarBatch.from_arrays(sym, ts, close, hi, lo, close, vol, interval_s=60))
    return out


def _engine(
    tmp_path: Path, pinned: str | None = None, fusion: OnlineFusionConfig | None = None
) -> tuple[LocalEngine, MemoryBus, OnlinePredictor]:
    bus = MemoryBus(MemoryBusConfig(capacity=100_000))
    predictor = OnlinePredictor(Registry(tmp_path), schema_hash(), NAMES, pinned=pinned, reload_s=0.0)
    engine = LocalEngine(bus, MemoryOnlineStore(), MemoryHistoryStore(), predictor=predictor, fusion=fusion)
    return engine, bus, predictor


def _feed(engine: LocalEngine, bus: MemoryBus, batches: list[BarBatch]) -> list[Prediction]:
    consumer = bus.consumer("test-reader", [PREDICTIONS_PRICE])
    consumer.poll(100_000)
    bus.publish_batch("market.bars", [(b.symbol, encode(b)) for b in batches])
    engine.drain()
    events = [decode(m.value) for m in consumer.poll(100_000)]
    consumer.close()
    return [e for e in events if isinstance(e, Prediction)]


def test_engine_predicts_each_new_feature_vector_once_its_window_is_complete(tmp_path: Path) -> None:
    _register(Registry(tmp_path), "m")
    engine, bus, _ = _engine(tmp_path)
    preds = _feed(engine, bus, _bars(80))
    # features are defined from bar 34 on (MACD's warm-up); the window needs WINDOW of them
    per_symbol = 80 - 33 - (WINDOW - 1)
    assert len(preds) == 2 * per_symbol
    p = preds[-1]
    assert p.p_down is not None
    assert p.version == "m@1" and 0.0 <= p.p_up <= 1.0 and abs(p.p_up + p.p_down - 1.0) < 1e-9
    assert p.confidence == pytest.approx(abs(p.p_up - p.p_down))
    assert p.expected_move == pytest.approx((p.p_up - p.p_down) * 0.002)
    assert p.horizon_s == 300
    assert engine.online.get("predictions", p.symbol)["model"] == "m@1"
    assert engine.history.count("predictions", p.symbol) == per_symbol
    # every prediction is fused (no posts here: price alone) and the 5-minute outcomes settle the weights
    assert engine.counters.signals == len(preds) and engine.history.count("signals", p.symbol) == per_symbol
    signal = engine.online.get("signals", p.symbol)
    assert signal["components"] == {"price": pytest.approx(p.p_up)} and signal["score"] == pytest.approx(2 * p.p_up - 1)
    assert engine.state.fusion.settled == 2 * (per_symbol - 5), "all but the last 5 minutes' predictions settled"


def test_engine_fuses_with_the_configured_method_and_inputs(tmp_path: Path) -> None:
    _register(Registry(tmp_path), "m")
    config = OnlineFusionConfig(method="stacking", inputs=("price", "momentum"), momentum_window=20)
    engine, bus, _ = _engine(tmp_path, fusion=config)
    preds = _feed(engine, bus, _bars(80))
    stored = engine.online.get("signals", preds[-1].symbol)
    assert set(stored["components"]) == {"price", "momentum"}, "21 bars seen long before the first prediction"
    assert set(stored["weights"]) == {"price", "momentum"}
    assert stored["fusion"]["method"] == "stacking" and stored["fusion"]["updates"] == engine.state.fusion.settled > 0


def test_hot_reload_switches_to_a_replaced_model(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    _register(reg, "m")
    engine, bus, predictor = _engine(tmp_path, pinned="m")
    first = _feed(engine, bus, _bars(60))
    assert {p.version for p in first} == {"m@1"}
    _register(reg, "m", seed=3)
    later = _feed(engine, bus, _bars(10, start=60))
    assert later and {p.version for p in later} == {"m@2"}
    assert predictor.reloads == 2


def test_no_model_or_a_model_of_another_schema_gives_no_predictions(tmp_path: Path) -> None:
    engine, bus, _ = _engine(tmp_path)
    assert _feed(engine, bus, _bars(60)) == [] and engine.counters.predictions == 0
    _register(Registry(tmp_path), "alien", schema="f" * 16)
    engine2, bus2, predictor = _engine(tmp_path, pinned="alien")
    assert _feed(engine2, bus2, _bars(60)) == [] and predictor.model is None


def test_windows_skip_warm_up_rows_and_carry_across_micro_batches(tmp_path: Path) -> None:
    _register(Registry(tmp_path), "m")
    predictor = OnlinePredictor(Registry(tmp_path), schema_hash(), NAMES, reload_s=0.0)
    rng = np.random.default_rng(0)
    values = rng.normal(0, 1, (6, len(NAMES)))
    values[0, 0] = np.nan  # a warm-up row: no window containing it is used
    rows = pd.DataFrame(values, columns=list(NAMES))
    rows.insert(0, "ts", pd.date_range("2024-01-02 14:31", periods=6, freq="1min", tz="UTC"))
    rows.insert(0, "symbol", "AAA")
    one = predictor.update(rows.iloc[:4])
    two = predictor.update(rows.iloc[4:])
    assert [p.ts for p in one] == [rows["ts"].iloc[3].to_pydatetime()]
    assert [p.ts for p in two] == [t.to_pydatetime() for t in rows["ts"].iloc[4:]]
    whole = OnlinePredictor(Registry(tmp_path), schema_hash(), NAMES, reload_s=0.0).update(rows)
    assert [p.p_up for p in whole] == [p.p_up for p in one + two], "micro-batch split does not matter"
    assert predictor.update(rows.iloc[4:], interval_s=86_400) == [], "another bar interval is not fed to the model"


def test_the_bundled_model_serves_until_one_is_registered(tmp_path: Path) -> None:
    from marketpulse.predict.online import bundled_registry

    bundled = bundled_registry()
    assert bundled.latest(schema_hash()) == "demo-spy-lstm", "the shipped model fits the engine's feature schema"
    registry = Registry(tmp_path)
    predictor = OnlinePredictor(registry, schema_hash(), NAMES, reload_s=0.0, fallback=bundled)
    predictor.refresh(force=True)
    assert predictor.model is not None and predictor.model.version == "demo-spy-lstm@1"
    _register(registry, "mine")
    predictor.refresh(force=True)
    assert predictor.model is not None and predictor.model.version == "mine@1", "a registered model takes over"
    alone = OnlinePredictor(Registry(tmp_path / "empty"), schema_hash(), NAMES, reload_s=0.0)
    alone.refresh(force=True)
    assert alone.model is None, "without the fallback, no model"


def test_drift_is_judged_from_the_close_at_prediction_time(tmp_path: Path) -> None:
    """A falling market against a model that always says up: every call is wrong and the drift rule says so —
    judged on the fusion's settlement from the close at prediction time, one micro-batch holding the whole day
    (the rule used to take the batch's newest close as every prediction's reference)."""
    from marketpulse.monitoring.alerts import AlertManager, AlertsConfig

    train = _samples()
    bullish = Samples(train.X, np.ones_like(train.y), train.ts, train.symbol, train.prev, NAMES, train.schema, 2,
                      dict(train.info))  # fmt: skip
    card = {"schema": train.schema, "features": list(NAMES), "window": WINDOW, "interval_s": 60,
            "horizon_ns": 300_000_000_000, "typical_move": 0.002}  # fmt: skip
    Registry(tmp_path).register("bull", [create("majority").fit(bullish, None, seed=0)], card)
    bus = MemoryBus(MemoryBusConfig(capacity=100_000))
    predictor = OnlinePredictor(Registry(tmp_path), schema_hash(), NAMES, reload_s=0.0)
    config = AlertsConfig.model_validate(
        {"model_drift": {"min_count": 20, "window": 20}, "price_move": {"enabled": False}, "notifiers": []}
    )
    alerts = AlertManager.from_config(config, bus)
    engine = LocalEngine(bus, MemoryOnlineStore(), MemoryHistoryStore(), predictor=predictor, alerts=alerts)
    n = 200
    close = 100.0 * np.exp(-0.001 * np.arange(n))
    ts = 1_704_205_860_000_000_000 + np.arange(n, dtype=np.int64) * 60_000_000_000
    batch = BarBatch.from_arrays("ZIG", ts, close, close + 0.5, close - 0.5, close, np.full(n, 1e4), interval_s=60)
    bus.publish_batch("market.bars", [("ZIG", encode(batch))])
    engine.drain()
    settled = engine.state.fusion.settled
    assert settled > 100
    drift = [a for a in engine.history.read_events("alerts", "ZIG") if getattr(a, "rule", "") == "model_drift"]
    assert drift and all("hit rate 0.0% over the last 20" in a.message for a in drift)  # type: ignore[attr-defined]
    gaps = np.diff([a.ts.timestamp() for a in drift])
    assert (gaps >= 3600).all(), "one alert per cool-down"
    engine.close()
