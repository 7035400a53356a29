"""Source reliability: pairing of posts with the next return, IC and weights, no look-ahead, shrinkage, pickling,
the aggregator's use of it, and the offline learner on small synthetic folders in the real layouts."""

from __future__ import annotations

import gzip
import json
import math
import pickle
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marketpulse.events import SentimentScore
from marketpulse.sentiment.aggregate import AggregateConfig, SentimentAggregator, aggregate_scores
from marketpulse.sentiment.base import Score, SentimentModel
from marketpulse.sentiment.reliability import ReliabilityConfig, SourceReliability
from marketpulse.sentiment.reliability_report import (
    STOCKNET_SOURCE,
    STOCKTWITS_SOURCE,
    _t_two_sided,
    learn_reliability,
)

D0 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)
CLOSE = timedelta(hours=21)


def day(i: int) -> datetime:
    return D0 + i * DAY


def synthetic(
    days: int = 250, symbols: int = 20, seed: int = 0, perturb_after: datetime | None = None
) -> SourceReliability:
    """``good``: sentiment = next return + noise (IC about 0.45); ``noise``: independent of returns.

    Posts of day ``i`` at noon, the return from day ``i`` to ``i + 1`` realised at ``i + 1`` 21:00. With
    ``perturb_after``, every return realised after it is replaced by an unrelated random number."""
    rng = np.random.default_rng(seed)
    rets = rng.normal(0, 0.02, (days + 1, symbols))
    good = rets + rng.normal(0, 0.04, rets.shape)
    noise = rng.normal(0, 0.04, rets.shape)
    other = np.random.default_rng(seed + 1000).normal(0, 0.02, rets.shape)
    rel = SourceReliability(ReliabilityConfig(half_life_s=10_000 * 86_400.0, prior_pairs=100.0))
    for i in range(days):
        for s in range(symbols):
            sym = f"S{s}"
            noon = day(i) + timedelta(hours=12)
            rel.update_value("good", sym, noon, float(np.tanh(10 * good[i + 1, s])))
            rel.update_value("noise", sym, noon, float(np.tanh(10 * noise[i + 1, s])))
            at = day(i + 1) + CLOSE
            r = other[i + 1, s] if perturb_after is not None and at > perturb_after else rets[i + 1, s]
            rel.update_return(sym, at, float(r), start=day(i) + CLOSE)
    return rel


@pytest.fixture(scope="module")
def learned() -> SourceReliability:
    return synthetic()


def test_predictive_source_outweighs_noise(learned: SourceReliability) -> None:
    good, noise = learned.get("good"), learned.get("noise")
    assert good.n == noise.n == 250 * 20
    assert good.ic > 0.3
    assert abs(noise.ic) < 0.05
    assert good.weight > 10 * noise.weight
    assert noise.weight == pytest.approx(learned.config.floor, abs=0.05)
    assert good.hit_rate is not None and good.hit_rate > 0.6
    assert learned.weights() == {"good": good.weight, "noise": noise.weight}


def test_weight_formula(learned: SourceReliability) -> None:
    cfg = learned.config
    for source in ("good", "noise"):
        s = learned.get(source)
        assert s.shrunk_ic == pytest.approx(s.ic * s.n_eff / (s.n_eff + cfg.prior_pairs))
        assert s.weight == pytest.approx(cfg.floor + max(0.0, s.shrunk_ic))
        assert s.n_eff == pytest.approx(s.n, rel=1e-3)  # the half-life is very long here: hardly any decay


def test_unknown_and_new_sources_get_the_floor(learned: SourceReliability) -> None:
    assert learned.weight("never-seen") == learned.config.floor
    assert learned.get("never-seen").n == 0
    rel = SourceReliability()
    rel.update_value("news", "AAPL", day(0), 0.5)
    assert rel.weights() == {"news": rel.config.floor}
    assert rel.weight("good", day(10)) == rel.config.floor


def test_no_look_ahead_future_returns_do_not_matter(learned: SourceReliability) -> None:
    cut = day(150) + CLOSE
    perturbed = synthetic(perturb_after=cut)
    for at in (day(20), day(150), cut, cut + timedelta(hours=1), day(151) + CLOSE - timedelta(seconds=1)):
        assert perturbed.weights(at) == learned.weights(at)
        assert perturbed.get("good", at) == learned.get("good", at)
    # the perturbation does matter once its returns are realised
    later = day(152) + CLOSE
    assert perturbed.get("good", later).ic != learned.get("good", later).ic
    assert perturbed.get("good").ic < learned.get("good").ic - 0.1


def test_weights_are_a_step_function_of_realised_pairs(learned: SourceReliability) -> None:
    """Only realisations change a weight: between two closes it is constant, whatever the wall-clock gap."""
    a, b = day(100) + CLOSE, day(101) + CLOSE - timedelta(microseconds=1)
    assert learned.get("good", a) == learned.get("good", b)
    assert learned.get("good", a).n == 100 * 20
    assert learned.get("good", day(101) + CLOSE).n == 101 * 20


def test_pickle_round_trip(learned: SourceReliability) -> None:
    learned.weights(day(50))  # fill the cache: it is not pickled
    copy = pickle.loads(pickle.dumps(learned))
    assert copy._cache == {}
    assert copy.weights() == learned.weights()
    assert copy.get("good", day(50)) == learned.get("good", day(50))
    # both continue identically
    fresh = pickle.loads(pickle.dumps(learned))
    for rel in (copy, fresh):
        rel.update_value("noise", "S0", day(300), 1.0)
        rel.update_return("S0", day(301) + CLOSE, 0.05)
    assert copy.get("noise") == fresh.get("noise")


def test_shrinkage_with_few_pairs() -> None:
    def run(prior: float, n: int) -> SourceReliability:
        rel = SourceReliability(ReliabilityConfig(prior_pairs=prior, half_life_s=1e12))
        for i in range(n):
            rel.update_value("tw", "X", day(i), float(i))
            rel.update_return("X", day(i + 1) + CLOSE, 0.001 * i, start=day(i) + CLOSE)
        return rel

    few = run(400.0, 5).get("tw")
    assert few.ic == pytest.approx(1.0)  # perfectly ordered...
    assert few.shrunk_ic == pytest.approx(5 / 405, rel=1e-6)  # ...but only 5 pairs: shrunk to about 0.012
    assert few.weight == pytest.approx(0.01 + 5 / 405, rel=1e-6)
    assert run(0.0, 5).get("tw").shrunk_ic == pytest.approx(1.0)
    many = run(400.0, 2000).get("tw")
    assert many.shrunk_ic == pytest.approx(2000 / 2400, rel=1e-3)


def test_negative_ic_gets_the_floor() -> None:
    rel = SourceReliability(ReliabilityConfig(prior_pairs=0.0))
    for i in range(50):
        rel.update_value("contrarian", "X", day(i), float(i % 7))
        rel.update_return("X", day(i + 1) + CLOSE, -float(i % 7), start=day(i) + CLOSE)
    s = rel.get("contrarian")
    assert s.ic == pytest.approx(-1.0)
    assert s.weight == rel.config.floor


def test_spearman_and_pearson_match_the_unweighted_definitions() -> None:
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=300), 1)  # ties on purpose
    y = x + rng.standard_t(2, size=300)  # fat tails
    out = {}
    for method in ("spearman", "pearson"):
        rel = SourceReliability(ReliabilityConfig(method=method, half_life_s=1e15, prior_pairs=0.0))
        for i, (a, b) in enumerate(zip(x, y, strict=True)):
            rel.update_value("s", "X", day(i), float(a))
            rel.update_return("X", day(i + 1) + CLOSE, float(b), start=day(i) + CLOSE)
        out[method] = rel.get("s").ic
    frame = pd.DataFrame({"x": x, "y": y})
    assert out["spearman"] == pytest.approx(frame.corr(method="spearman").iloc[0, 1], abs=1e-6)
    assert out["pearson"] == pytest.approx(frame.corr().iloc[0, 1], abs=1e-6)


def test_decay_favours_recent_pairs() -> None:
    """Old pairs say 'good', recent ones 'bad': a short half-life follows the recent ones."""
    for half_life_days, positive in ((10_000.0, True), (5.0, False)):
        rel = SourceReliability(ReliabilityConfig(half_life_s=half_life_days * 86_400.0, prior_pairs=0.0))
        for i in range(200):
            sign = 1.0 if i < 150 else -1.0
            rel.update_value("s", "X", day(i), float(i % 5))
            rel.update_return("X", day(i + 1) + CLOSE, sign * (i % 5), start=day(i) + CLOSE)
        assert (rel.get("s").ic > 0) is positive


# -- pairing ------------------------------------------------------------------------------------------------------


def test_pairing_uses_the_previous_periods_posts_only() -> None:
    rel = SourceReliability()
    fri, sat, sun, mon = day(4), day(5), day(6), day(7)
    rel.update_value("tw", "X", fri + timedelta(hours=9), 0.2, weight=1.0)
    rel.update_value("tw", "X", sat + timedelta(hours=9), 0.8, weight=3.0)
    rel.update_value("tw", "X", sun + timedelta(hours=23), -0.4, weight=1.0)
    rel.update_value("tw", "X", mon + timedelta(hours=10), 0.9)  # the return's own day: not in this pair
    assert rel.update_return("X", fri + CLOSE, 0.01, start=day(3) + CLOSE) == 0  # Friday's posts are not before it
    assert rel.update_return("X", mon + CLOSE, -0.02) == 1  # start = Friday's close (the previous return)
    p = rel.pairs("tw")
    assert len(p) == 1
    row = p.iloc[0]
    assert row["sentiment"] == pytest.approx((0.2 + 3 * 0.8 - 0.4) / 5)
    assert (row["ret"], row["posts"], row["symbol"]) == (-0.02, 3, "X")
    assert row["first"] == pd.Timestamp(fri) and row["ts"] == pd.Timestamp(mon + CLOSE)
    # Monday's post pairs with Tuesday's return; a post for a paired day arriving now is late and dropped
    rel.update_value("tw", "X", sat, 1.0)
    assert rel.state.late == 1
    assert rel.update_return("X", day(8) + CLOSE, 0.03) == 1
    assert rel.pairs("tw")["sentiment"].tolist()[-1] == pytest.approx(0.9)


def test_returns_out_of_order_and_unpaired_posts() -> None:
    rel = SourceReliability()
    rel.update_value("tw", "X", day(0), 0.5)  # before the return's start bucket: never paired
    rel.update_value("tw", "X", day(2), 0.5)
    assert rel.update_return("X", day(3) + CLOSE, 0.01, start=day(2) + CLOSE) == 1
    assert rel.state.unpaired == 1
    assert rel.update_return("X", day(3) + CLOSE, 0.02) == 0  # not newer than the last one: ignored
    assert rel.state.stale_returns == 1
    rel.update_value("tw", "X", day(3), math.nan)  # non-finite polarity ignored
    assert rel.update_return("X", day(4) + CLOSE, 0.01) == 0


def test_bar_interval_buckets() -> None:
    rel = SourceReliability(ReliabilityConfig(interval_s=300.0, half_life_s=3_600.0))
    t = datetime(2024, 3, 1, 14, 30, tzinfo=UTC)
    rel.update_value("tw", "X", t + timedelta(minutes=1), 0.3)
    rel.update_value("tw", "X", t + timedelta(minutes=6), -0.3)  # next bar: next return
    assert rel.update_return("X", t + timedelta(minutes=5), 0.001, start=t) == 0
    assert rel.update_return("X", t + timedelta(minutes=10), 0.001) == 1
    assert rel.pairs("tw")["sentiment"].tolist() == [pytest.approx(0.3)]
    assert rel.bucket(t) == int(t.timestamp()) // 300
    # a return ending on a bucket boundary closes the bucket before it: its own bar's posts are not paired
    assert rel.update_return("X", t + timedelta(minutes=15), 0.002) == 1
    assert rel.pairs("tw")["sentiment"].tolist()[-1] == pytest.approx(-0.3)


def test_memory_bounds() -> None:
    rel = SourceReliability(ReliabilityConfig(max_pairs=10, max_pending=3, horizon_half_lives=None))
    for i in range(30):
        rel.update_value("tw", "X", day(i), 0.1 * (i % 3))
        rel.update_return("X", day(i + 1) + CLOSE, 0.01, start=day(i) + CLOSE)
    assert len(rel.pairs("tw")) == 10
    for i in range(10):
        rel.update_value("tw", "Y", day(i), 0.1)  # Y never gets a return
    assert len(rel.state.pending["Y"]["tw"]) == 3
    horizon = SourceReliability(ReliabilityConfig(half_life_s=86_400.0, horizon_half_lives=5.0))
    for i in range(30):
        horizon.update_value("tw", "X", day(i), 0.1)
        horizon.update_return("X", day(i + 1) + CLOSE, 0.01, start=day(i) + CLOSE)
    assert len(horizon.pairs("tw")) == 6  # pairs within 5 days of the newest


def test_t_distribution_p_value() -> None:
    assert _t_two_sided(0.0, 10) == pytest.approx(1.0)
    assert _t_two_sided(1.959964, 1e7) == pytest.approx(0.05, abs=1e-5)
    for t in (0.3, 1.0, 2.5, 12.0):
        assert _t_two_sided(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-9)  # Cauchy
        assert _t_two_sided(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-9)
    stats = pytest.importorskip("scipy.stats")
    for t, df in ((2.1, 5), (0.7, 30), (3.3, 998), (-1.5, 12)):
        assert _t_two_sided(t, df) == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-8)


# -- aggregator -----------------------------------------------------------------------------------------------------


def post(source: str, polarity: float, ts: datetime, symbol: str = "S0") -> SentimentScore:
    return SentimentScore(
        ts=ts,
        symbol=symbol,
        source=source,
        model="lexicon",
        polarity=polarity,
        intensity=abs(polarity),
        probs={"negative": max(-polarity, 0.0), "neutral": 1 - abs(polarity), "positive": max(polarity, 0.0)},
    )


def test_aggregator_uses_reliability(learned: SourceReliability) -> None:
    cfg = AggregateConfig(source_weights={"good": 1.0, "noise": 1.0})
    at = day(260)
    items = [(post("good", 0.8, at), 1.0), (post("noise", -0.8, at), 1.0)]
    plain, weighted = SentimentAggregator(cfg), SentimentAggregator(cfg, reliability=learned)
    for a in (plain, weighted):
        a.update_many(items)
    base, mixed = plain.get("S0", at), weighted.get("S0", at)
    assert base is not None and mixed is not None
    assert base.polarity == pytest.approx(0.0)
    w = learned.weights(at)
    expected = (w["good"] * 0.8 - w["noise"] * 0.8) / (w["good"] + w["noise"])
    assert mixed.polarity == pytest.approx(expected)
    assert mixed.polarity > 0.5  # towards the reliable source
    assert mixed.probs["positive"] > base.probs["positive"]
    assert (mixed.count, mixed.weight) == (base.count, base.weight)
    # per-source aggregates are untouched
    assert weighted.get("S0", at, source="noise") == plain.get("S0", at, source="noise")


def test_aggregator_reliability_respects_its_time(learned: SourceReliability) -> None:
    """Asked at a time before any pair was realised, the reliability is the floor for all: the configured mix."""
    cfg = AggregateConfig(source_weights={"good": 1.0, "noise": 3.0})
    early = day(0) + timedelta(hours=13)
    a = SentimentAggregator(cfg, reliability=learned)
    b = SentimentAggregator(cfg)
    for agg in (a, b):
        agg.update_many([(post("good", 0.8, early), 1.0), (post("noise", -0.4, early), 1.0)])
    got, want = a.get("S0", early), b.get("S0", early)
    assert got is not None and want is not None
    assert got.polarity == pytest.approx(want.polarity)


def test_aggregator_unchanged_without_reliability() -> None:
    rng = np.random.default_rng(7)
    items = [
        (
            post(
                str(rng.choice(["news", "twitter", "reddit", "other"])),
                float(rng.uniform(-1, 1)),
                day(0) + i * DAY / 97,
            ),
            1.0,
        )
        for i in range(60)
    ]
    a, b = SentimentAggregator(), SentimentAggregator(reliability=None)
    a.update_many(items)
    b.update_many(items)
    at = day(0) + 61 * DAY / 97
    assert a.get("S0", at) == b.get("S0", at)
    assert a.emit() == b.emit()
    old = SentimentAggregator()  # an aggregator unpickled from before the attribute existed
    del old.__dict__["reliability"]
    old.update_many(items)
    assert old.get("S0", at) == a.get("S0", at)
    events, _ = aggregate_scores(items, reliability=None)
    assert events[-1].source == "all"


def test_aggregate_scores_passes_reliability(learned: SourceReliability) -> None:
    at = day(260)
    items = [(post("good", 0.8, at), 1.0), (post("noise", -0.8, at), 1.0)]
    cfg = AggregateConfig(source_weights={"good": 1.0, "noise": 1.0})
    plain, _ = aggregate_scores(items, config=cfg)
    weighted, _ = aggregate_scores(items, config=cfg, reliability=learned)
    assert plain[-1].polarity == pytest.approx(0.0)
    assert weighted[-1].polarity > 0.5


# -- offline learner ------------------------------------------------------------------------------------------------


class NumberModel(SentimentModel):
    """Polarity = the number written as the text's first token (a stand-in for any SentimentModel)."""

    name = "number"

    def score(self, texts: Sequence[str]) -> list[Score]:
        out = []
        for t in texts:
            p = max(-1.0, min(1.0, float(t.split()[0])))
            out.append(Score(max(-p, 0), 1 - abs(p), max(p, 0), p, abs(p)))
        return out


def write_folders(root: Path, seed: int = 0) -> tuple[Path, Path]:
    """A StockNet folder whose tweets anticipate the next day's move and a StockEmotions folder of noise posts,
    over the same tickers and business days of 2020."""
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2020-01-01", "2020-12-31")
    tickers = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
    sn, se = root / "stocknet", root / "stockemotions"
    (sn / "price" / "raw").mkdir(parents=True)
    (sn / "tweet" / "preprocessed").mkdir(parents=True)
    (se / "price").mkdir(parents=True)
    (se / "tweet").mkdir(parents=True)
    rows: list[dict[str, object]] = []
    for t in tickers:
        ret = rng.normal(0, 0.02, len(days))
        adj = 100 * np.cumprod(1 + ret)
        prices = pd.DataFrame(
            {"Date": days.strftime("%Y-%m-%d"), "Open": adj, "High": adj, "Low": adj, "Close": adj, "Adj Close": adj}
        ).assign(Volume=1000)
        prices.to_csv(sn / "price" / "raw" / f"{t}.csv", index=False)
        prices.to_csv(se / "price" / f"{t}.csv", index=False)
        lines = []
        for i in range(len(days) - 1):
            signal = float(np.tanh(20 * ret[i + 1]) + rng.normal(0, 0.5))
            lines.append(json.dumps({"date": str(days[i].date()), "text": [f"{signal:.4f}", "words"]}))
            rows.append(
                {
                    "id": len(rows),
                    "date": str(days[i].date()),
                    "ticker": t,
                    "emo_label": "belief",
                    "senti_label": "bullish",
                    "original": f"{rng.uniform(-1, 1):.4f} noise",
                    "processed": "x",
                }
            )
        (sn / "tweet" / "preprocessed" / f"{t}.jsonl.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
    pd.DataFrame(rows).to_csv(se / "tweet" / "train_stockemo.csv", index=False)
    return sn, se


def test_learner_on_overlapping_synthetic_sources(tmp_path: Path) -> None:
    sn, se = write_folders(tmp_path)
    splits = {STOCKNET_SOURCE: "2020-09-01", STOCKTWITS_SOURCE: "2020-09-01"}
    report = learn_reliability(sn, se, model=NumberModel(), splits=splits)
    json.dumps(report, allow_nan=False)
    assert report["model"] == "number"
    good, noise = report["sources"][STOCKNET_SOURCE], report["sources"][STOCKTWITS_SOURCE]
    for src in (good, noise):
        assert src["train"]["realised_to"] < "2020-09-01" <= src["test"]["sentiment_from"]
        assert src["train"]["n"] + src["test"]["n"] + src["embargo"] == 6 * (
            len(pd.bdate_range("2020-01-01", "2020-12-31")) - 1
        )
    assert good["train"]["ic"] > 0.3 and good["test"]["ic"] > 0.3 and good["test"]["p_value"] < 1e-6
    assert abs(noise["test"]["ic"]) < 0.15
    assert good["learned"]["at_split"]["weight"] > 5 * noise["learned"]["at_split"]["weight"]
    combined = report["combined_test"]
    assert combined["multi_source"] == combined["n"] > 0
    assert combined["ic_reliability_frozen"] > combined["ic_equal"] + 0.02
    assert combined["improved"] is True and combined["improved_online"] is True


def test_learner_needs_a_folder(tmp_path: Path) -> None:
    from marketpulse.errors import ConfigError

    with pytest.raises(ConfigError, match="needs"):
        learn_reliability()
    with pytest.raises(ConfigError, match="not a StockEmotions folder"):
        learn_reliability(stockemotions=tmp_path)
