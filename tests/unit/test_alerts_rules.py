"""Alert rules, cool-down and the manager (event times given explicitly; no wall clock, no network)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from marketpulse.bus.base import ALERTS
from marketpulse.bus.memory import MemoryBus, MemoryBusConfig
from marketpulse.errors import ConfigError
from marketpulse.events import Alert, Bar, BarBatch, Prediction, SentimentScore, Signal, decode
from marketpulse.monitoring import (
    AlertManager,
    AlertsConfig,
    Cooldown,
    DispatchConfig,
    Dispatcher,
    ModelDriftConfig,
    ModelDriftRule,
    Notifier,
    NotifierError,
    PipelineLagConfig,
    PipelineLagRule,
    PriceMoveConfig,
    PriceMoveRule,
    RetryConfig,
    SentimentSpikeConfig,
    SentimentSpikeRule,
    SignalFlipConfig,
    SignalFlipRule,
    load_alerts_config,
)

T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


# -- signal flip ------------------------------------------------------------------------------------------------


def test_signal_flip_fires_on_a_confident_direction_change_only() -> None:
    rule = SignalFlipRule(SignalFlipConfig(min_confidence=0.5))
    assert rule.update("AAPL", at(0), 0.8) == []  # first confident view: nothing to flip from
    assert rule.update("AAPL", at(1), 0.9) == []  # same direction
    assert rule.update("AAPL", at(2), -0.3) == []  # flip, but not confident
    fired = rule.update("AAPL", at(3), -0.7)  # confident flip vs the last confident direction (up)
    assert [(a.rule, a.symbol, a.ts, a.severity) for a in fired] == [("signal_flip", "AAPL", at(3), "warning")]
    assert "down" in fired[0].message
    assert rule.update("AAPL", at(4), -0.9) == []  # still down
    assert rule.update("MSFT", at(5), -0.9) == []  # other symbol: its own state


def test_signal_flip_uses_given_confidence_and_dead_band() -> None:
    rule = SignalFlipRule(SignalFlipConfig(min_confidence=0.6, dead_band=0.1))
    assert rule.update("X", at(0), 0.2, confidence=0.9) == []
    assert rule.update("X", at(1), -0.05, confidence=0.9) == []  # inside the dead band: no direction
    assert rule.update("X", at(2), -0.2, confidence=0.59) == []
    assert len(rule.update("X", at(3), -0.2, confidence=0.6)) == 1


# -- price move -------------------------------------------------------------------------------------------------


def test_price_move_sigma_uses_past_returns_only() -> None:
    # past returns ±1%: their std is 1.1%, so +5% is 4.6σ and fires at k=4; had the current return been part of
    # σ (std of the last five including +5% is 2.4%), it would be 2.0σ and stay quiet.
    rule = PriceMoveRule(PriceMoveConfig(k=4.0, window=5, min_history=5))
    past = [0.01, -0.01, 0.01, -0.01, 0.01]
    for i, r in enumerate(past):
        assert rule.update_return("AAPL", at(i), r) == []
    fired = rule.update_return("AAPL", at(5), 0.05)
    assert [(a.rule, a.symbol, a.ts) for a in fired] == [("price_move", "AAPL", at(5))]
    assert f"{0.05 / np.std(past, ddof=1):.1f}σ" in fired[0].message
    with_current = np.std([*past[1:], 0.05], ddof=1)
    assert 0.05 / with_current < 4.0  # the discriminating case really discriminates


def test_price_move_never_fires_before_warm_up() -> None:
    rule = PriceMoveRule(PriceMoveConfig(k=2.0, window=10, min_history=10))
    prices = [100.0, 100.1, 150.0, 60.0, 100.0, 100.2, 99.9, 100.1, 100.0, 100.1, 100.0]  # huge early moves
    fired = [a for i, p in enumerate(prices) for a in rule.update("AAPL", at(i), p)]
    assert fired == []  # 10 prices = 9 returns < min_history
    assert len(rule.update("AAPL", at(20), 200.0)) == 0  # 10th return joins history; σ is huge from the jumps


def test_price_move_quiet_inside_k_sigma_and_fires_beyond() -> None:
    rng = np.random.default_rng(7)
    rule = PriceMoveRule(PriceMoveConfig(k=5.0, window=200, min_history=50))
    price, fired = 100.0, []
    for i in range(300):
        price *= float(np.exp(rng.normal(0, 0.001)))
        fired += rule.update("AAPL", at(i), price)
    assert fired == []
    assert len(rule.update("AAPL", at(300), price * 1.02)) == 1  # ~20σ
    assert rule.update("AAPL", at(301), float("nan")) == []  # bad prices are ignored, not judged


def test_price_move_ewma_sigma() -> None:
    rule = PriceMoveRule(PriceMoveConfig(k=4.0, ewma_halflife=20, min_history=30))
    returns = [0.001 * (-1) ** i for i in range(40)]
    assert [a for i, r in enumerate(returns) for a in rule.update_return("X", at(i), r)] == []
    assert len(rule.update_return("X", at(41), 0.01)) == 1
    assert rule.update_return("Y", at(41), 0.5) == []  # a new symbol warms up on its own


# -- sentiment spike --------------------------------------------------------------------------------------------


def _steady(rule: SentimentSpikeRule, n: int, symbol: str = "TSLA") -> None:
    for i in range(n):
        assert rule.update(symbol, at(i * 5), 9 + 2 * (i % 2), 0.1 + 0.02 * (-1) ** i) == []


def test_sentiment_volume_spike_fires_above_z_only() -> None:
    rule = SentimentSpikeRule(SentimentSpikeConfig(z=3.0, window=50, min_history=20))
    _steady(rule, 30)
    assert rule.update("TSLA", at(200), 12, 0.1) == []  # z ≈ 2
    fired = rule.update("TSLA", at(205), 40, 0.1)
    assert [(a.rule, a.symbol, a.ts) for a in fired] == [("sentiment_spike", "TSLA", at(205))]
    assert "post volume" in fired[0].message and "polarity" not in fired[0].message


def test_sentiment_polarity_spike_fires_either_way_and_skips_empty_buckets() -> None:
    rule = SentimentSpikeRule(SentimentSpikeConfig(z=3.0, window=50, min_history=20, polarity_min_std=0.01))
    _steady(rule, 30)
    assert rule.update("TSLA", at(200), 10, None) == []  # no post: polarity not judged, count normal
    fired = rule.update("TSLA", at(205), 10, -0.5)
    assert len(fired) == 1 and "mean polarity -0.50" in fired[0].message


def test_sentiment_spike_warm_up() -> None:
    rule = SentimentSpikeRule(SentimentSpikeConfig(z=3.0, min_history=20))
    _steady(rule, 19)
    assert rule.update("TSLA", at(500), 1000, -1.0) == []  # 19 past buckets < min_history


# -- model drift ------------------------------------------------------------------------------------------------


def test_model_drift_needs_min_count_then_fires_below_hit_rate() -> None:
    rule = ModelDriftRule(ModelDriftConfig(min_hit_rate=0.45, window=100, min_count=50))
    for i in range(49):
        assert rule.update("AAPL", at(i), True, False) == []  # all wrong, but too few outcomes
    fired = rule.update("AAPL", at(49), True, False, model="lstm@3")
    assert [(a.rule, a.symbol, a.ts) for a in fired] == [("model_drift", "AAPL", at(49))]
    assert "lstm@3" in fired[0].message and "0.0%" in fired[0].message


def test_model_drift_quiet_when_hit_rate_is_fine() -> None:
    rule = ModelDriftRule(ModelDriftConfig(min_hit_rate=0.45, window=20, min_count=10))
    # 50 % hits: above 45 %
    assert [a for i in range(100) for a in rule.update("AAPL", at(i), True, i % 2 == 0)] == []
    # rolling: 20 misses push it under, then 20 hits bring it back
    assert [a for i in range(20) for a in rule.update("AAPL", at(100 + i), True, False)] != []
    assert rule.update("AAPL", at(140), True, True) != []  # 1/20 hits: still below
    for i in range(20):
        last = rule.update("AAPL", at(141 + i), True, True)
    assert last == []


# -- pipeline lag -----------------------------------------------------------------------------------------------


def test_pipeline_lag_fires_above_threshold() -> None:
    rule = PipelineLagRule(PipelineLagConfig(max_lag_s=30.0, severity="critical"))
    assert rule.update(at(0), 30.0) == []
    fired = rule.update(at(1), 31.5, stage="predict")
    assert [(a.rule, a.symbol, a.severity, a.ts) for a in fired] == [("pipeline_lag", None, "critical", at(1))]
    assert "predict lag 31.5s" in fired[0].message


# -- cool-down --------------------------------------------------------------------------------------------------


def _alert(rule: str, symbol: str | None, minutes: float) -> Alert:
    return Alert(ts=at(minutes), rule=rule, severity="warning", message="m", symbol=symbol)


def test_cooldown_suppresses_same_rule_and_symbol_inside_its_window() -> None:
    cd = Cooldown({"price_move": 300.0, "signal_flip": 60.0})
    assert cd.allow(_alert("price_move", "AAPL", 0))
    assert not cd.allow(_alert("price_move", "AAPL", 4.99))
    assert cd.allow(_alert("price_move", "MSFT", 1))  # other symbol
    assert cd.allow(_alert("signal_flip", "AAPL", 1))  # other rule
    assert cd.allow(_alert("signal_flip", "AAPL", 2))  # its own (shorter) cool-down has passed
    assert cd.allow(_alert("price_move", "AAPL", 5))  # exactly the cool-down later
    assert not cd.allow(_alert("price_move", "AAPL", 3))  # a late event inside the window
    assert cd.suppressed == {"price_move": 2}


def test_manager_applies_cooldown_and_publishes_to_the_alerts_topic() -> None:
    bus = MemoryBus(MemoryBusConfig(partitions=1))
    consumer = bus.consumer("test", [ALERTS])
    cfg = AlertsConfig(pipeline_lag=PipelineLagConfig(max_lag_s=10, cooldown_s=600), notifiers=[])
    manager = AlertManager(cfg, bus=bus)
    sent = [a for i in range(5) for a in manager.observe_lag(at(i), 60.0)]
    sent += manager.observe_lag(at(10), 60.0)  # cool-down over
    assert [a.ts for a in sent] == [at(0), at(10)]
    got = [decode(m.value) for m in consumer.poll(10, timeout=1.0)]
    assert got == sent
    assert manager.stats()["suppressed"] == 4 and manager.stats()["sent"] == 2


def test_manager_routes_events_to_rules() -> None:
    cfg = AlertsConfig(
        price_move=PriceMoveConfig(window=10, min_history=5),
        model_drift=ModelDriftConfig(min_count=3, window=3, min_hit_rate=0.5),
        signal_flip=SignalFlipConfig(enabled=False),
    )
    manager = AlertManager(cfg)
    assert manager.observe(Signal(ts=at(0), symbol="A", score=0.9)) == []
    assert manager.observe(Signal(ts=at(1), symbol="A", score=-0.9)) == []  # rule disabled
    closes = [100, 100.1, 100, 100.1, 100, 100.1, 100]
    batch = BarBatch.from_arrays(
        "A", [int((at(i) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 10**9 for i in range(7)],
        closes, closes, closes, closes, [1.0] * 7,
    )  # fmt: skip
    assert manager.observe(batch) == []
    # three predictions "up" one minute ahead, each followed by a falling price: 0 % hits after three outcomes
    fired: list[Alert] = []
    price = 100.0
    for i in range(3):
        manager.observe(Prediction(ts=at(10 + 2 * i), symbol="A", model="m", horizon_s=60, p_up=0.8))
        price -= 0.01
        fired += manager.observe(Bar(ts=at(11 + 2 * i), symbol="A", open=price, high=price, low=price,
                                     close=price, volume=1))  # fmt: skip
    assert [a.rule for a in fired] == ["model_drift"]
    assert fired[0].ts == at(15)
    jump = manager.observe(Bar(ts=at(20), symbol="A", open=120, high=120, low=120, close=120, volume=1))
    assert [a.rule for a in jump] == ["price_move"]


def test_manager_buckets_per_post_sentiment() -> None:
    cfg = AlertsConfig(sentiment_spike=SentimentSpikeConfig(bucket_s=60, min_history=10, window=30, z=3.0))
    manager = AlertManager(cfg)

    def post(minutes: float, polarity: float = 0.1) -> SentimentScore:
        return SentimentScore(
            ts=at(minutes), symbol="GME", source="x", model="lexicon", polarity=polarity, intensity=0.5, ref_id="p"
        )

    fired: list[Alert] = []
    for minute in range(20):  # two posts a minute
        fired += manager.observe(post(minute + 0.1)) + manager.observe(post(minute + 0.5))
    for k in range(30):  # a burst in minute 20
        fired += manager.observe(post(20 + k / 100))
    assert fired == []  # minute 20 is still open
    fired += manager.observe(post(21.2))
    assert [(a.rule, a.ts) for a in fired] == [("sentiment_spike", at(21))]  # bucket end time
    assert manager.observe(post(5)) == []  # a late post of a judged bucket is ignored


# -- config -----------------------------------------------------------------------------------------------------


def test_config_errors_name_the_key_and_allowed_values() -> None:
    with pytest.raises(ConfigError, match=r"alerts\.notifiers\.0\.type: got 'sms'; allowed: 'log', 'webhook', 'email'"):
        load_alerts_config({"notifiers": [{"type": "sms"}]})
    with pytest.raises(ConfigError, match=r"alerts\.price_move\.kk: unknown key; allowed keys: cooldown_s"):
        load_alerts_config({"price_move": {"kk": 3}})
    with pytest.raises(ConfigError, match=r"alerts\.notifiers\.0\.url: Field required"):
        load_alerts_config({"notifiers": [{"type": "webhook"}]})
    cfg = load_alerts_config({"notifiers": [{"type": "webhook", "url": "http://127.0.0.1:1/x"}]})
    assert cfg.notifiers[0].type == "webhook"


# -- dispatcher retry logic (in-process notifier, no delays) ----------------------------------------------------


class Flaky(Notifier):
    def __init__(self, failures: int, retryable: bool = True) -> None:
        self.name = "flaky"
        self.failures = failures
        self.retryable = retryable
        self.calls = 0
        self.got: list[Alert] = []

    def send(self, alert: Alert) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise NotifierError("down", retryable=self.retryable)
        self.got.append(alert)


def _dispatch(notifier: Notifier, attempts: int) -> Dispatcher:
    return Dispatcher([notifier], DispatchConfig(retry=RetryConfig(attempts=attempts, base_delay_s=0.0)))


def test_dispatcher_retries_then_delivers() -> None:
    flaky = Flaky(failures=2)
    d = _dispatch(flaky, attempts=3)
    d.submit(_alert("r", "A", 0))
    assert d.close(timeout=10)
    assert flaky.got == [_alert("r", "A", 0)]
    assert d.stats() | {"pending": 0} == {
        "submitted": 1, "delivered": {"flaky": 1}, "retried": 2, "failed": 0, "dropped": 0, "pending": 0,
    }  # fmt: skip


def test_dispatcher_gives_up_after_attempts_and_at_once_on_permanent_errors() -> None:
    flaky = Flaky(failures=10)
    d = _dispatch(flaky, attempts=3)
    d.submit(_alert("r", "A", 0))
    assert d.close(timeout=10)
    assert (flaky.calls, d.retried, d.failed, flaky.got) == (3, 2, 1, [])
    permanent = Flaky(failures=10, retryable=False)
    d = _dispatch(permanent, attempts=5)
    d.submit(_alert("r", "A", 0))
    assert d.close(timeout=10)
    assert (permanent.calls, d.retried, d.failed) == (1, 0, 1)


def test_price_move_skips_a_return_across_a_gap() -> None:
    """1-minute prices, then an overnight pause and a 3 % gap: not a one-bar move (and σ stays intraday); with
    ``gap_factor: null`` the same gap fires. The bar after the gap is judged again."""
    for factor, expected in ((5.0, 0), (None, 1)):
        rng = np.random.default_rng(11)
        rule = PriceMoveRule(PriceMoveConfig(k=5.0, window=100, min_history=50, gap_factor=factor, cooldown_s=0))
        price, fired = 100.0, []
        for i in range(100):
            price *= float(np.exp(rng.normal(0, 0.001)))
            fired += rule.update("AAPL", at(i), price)
        assert fired == []
        price *= 1.03
        assert len(rule.update("AAPL", at(99 + 17 * 60), price)) == expected
        if factor is not None:
            assert len(rule.update("AAPL", at(100 + 17 * 60), price * 1.02)) == 1, "the next bar is judged again"


def test_price_move_keeps_one_series_per_bar_interval() -> None:
    """1-minute closes and a daily close of the same symbol (another price level, another time grid) interleaved:
    no jump between the two series; a real 1-minute jump still fires."""
    rule = PriceMoveRule(PriceMoveConfig(k=5.0, window=100, min_history=50, cooldown_s=0))
    rng = np.random.default_rng(5)
    price, fired = 100.0, []
    for i in range(200):
        price *= float(np.exp(rng.normal(0, 0.001)))
        fired += rule.update("AAPL", at(i), price, series=60)
        if i % 100 == 99:  # the day's own bar, 11 % away from the intraday path (e.g. unadjusted)
            fired += rule.update("AAPL", at(i), price * 1.11, series=86_400)
    assert fired == []
    assert len(rule.update("AAPL", at(200), price * 1.02, series=60)) == 1


def test_a_burst_is_judged_when_event_time_moves_on_without_a_later_post() -> None:
    """The symbol's posts stop after a burst: the bucket is judged once any stream's event time (e.g. bars) is
    ``lateness_s`` past its end — not hours later at the next post. A post for a judged bucket is ignored."""
    spike = SentimentSpikeConfig(bucket_s=60, min_history=10, window=30, z=3.0, lateness_s=30)
    manager = AlertManager(AlertsConfig(sentiment_spike=spike))

    def post(minutes: float) -> SentimentScore:
        return SentimentScore(
            ts=at(minutes), symbol="GME", source="x", model="lexicon", polarity=0.1, intensity=0.5, ref_id="p"
        )

    fired: list[Alert] = []
    for minute in range(20):
        fired += manager.observe(post(minute + 0.1)) + manager.observe(post(minute + 0.5))
    for k in range(30):  # a burst in minute 20, then silence
        fired += manager.observe(post(20 + k / 100))
    assert fired == [] and manager.advance(at(21.4)) == [], "21:00 + 30 s of lateness not reached yet"
    fired = manager.advance(at(21.5))
    assert [(a.rule, a.symbol, a.ts) for a in fired] == [("sentiment_spike", "GME", at(21))]
    assert manager.observe(post(20.9)) == [], "late for a judged bucket: ignored"
    assert manager.advance(at(300)) == [], "quiet buckets after the burst are judged too, without an alert"
