"""Source reliability learned on real data: StockNet tweets (a subset of tickers) and StockEmotions' StockTwits posts,
scored by the lexicon model, against next-day Adj Close returns.

Checks the report's structure, that train and test periods do not overlap and that nothing after a source's split
entered its learned weight. It does not assert the sign or size of any IC: the figures are printed (``-s``) and are
whatever the data say. Skipped with the reason when ``../shared/data`` is absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from marketpulse.sentiment.reliability_report import (
    DEFAULT_SPLITS,
    STOCKNET_SOURCE,
    STOCKTWITS_SOURCE,
    learn_reliability,
)

pytestmark = pytest.mark.integration

TICKERS = ("AAPL", "AMZN", "BAC", "GE", "XOM", "KO", "PFE", "DIS")


@pytest.fixture(scope="module")
def report(shared_data: Path) -> dict[str, Any]:
    stocknet, stockemotions = shared_data / "stocknet", shared_data / "stockemotions"
    for folder in (stocknet, stockemotions):
        if not folder.is_dir():
            pytest.skip(f"{folder} not found")
    return learn_reliability(stocknet, stockemotions, stocknet_tickers=TICKERS)


def test_report_is_json(report: dict[str, Any]) -> None:
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    assert report["model"] == "lexicon"
    assert set(report) >= {"sources", "combined_test", "config", "inputs_dropped", "alignment", "seconds"}
    assert set(report["sources"]) == {STOCKNET_SOURCE, STOCKTWITS_SOURCE}


@pytest.mark.parametrize("source", [STOCKNET_SOURCE, STOCKTWITS_SOURCE])
def test_periods_and_stats(report: dict[str, Any], source: str) -> None:
    src = report["sources"][source]
    split = DEFAULT_SPLITS[source]
    assert src["split"] == split
    train, test = src["train"], src["test"]
    for period in (train, test):
        assert period["n"] > 100
        assert period["posts"] >= period["n"]
        assert -1 <= period["ic"] <= 1 and -1 <= period["ic_pearson"] <= 1
        assert 0 <= period["p_value"] <= 1 and 0 <= period["hit_rate"] <= 1 and 0 <= period["hit_rate_p_value"] <= 1
        assert period["n_hit"] <= period["n"]
        assert period["sentiment_from"] <= period["sentiment_to"] < period["realised_to"]
    # disjoint in time: every train return realised before the split, every test post on or after it
    assert train["sentiment_to"] < train["realised_to"] < split <= test["sentiment_from"] < test["realised_from"]
    assert src["embargo"] >= 0
    if source == STOCKNET_SOURCE:
        assert train["symbols"] <= len(TICKERS) and src["tickers"] == len(TICKERS)
    # the weight learned at the split saw exactly the train pairs, nothing later
    at_split, at_end = src["learned"]["at_split"], src["learned"]["at_end"]
    assert at_split["n"] == train["n"]
    assert at_split["last"] < split
    assert at_end["n"] == train["n"] + src["embargo"] + test["n"]
    floor = report["config"]["floor"]
    for learned in (at_split, at_end):
        assert learned["weight"] == pytest.approx(floor + max(0.0, learned["shrunk_ic"]), abs=2e-6)
    print(
        f"\n{source}: train n={train['n']} IC={train['ic']:+.4f} (t={train['t_stat']:+.2f}, p={train['p_value']:.3f}, "
        f"hit={train['hit_rate']:.3f}) | test n={test['n']} IC={test['ic']:+.4f} (t={test['t_stat']:+.2f}, "
        f"p={test['p_value']:.3f}, hit={test['hit_rate']:.3f}) | weight at split {at_split['weight']:.4f}"
    )


def test_combined(report: dict[str, Any]) -> None:
    combined = report["combined_test"]
    n_test = sum(s["test"]["n"] for s in report["sources"].values())
    assert combined["n"] == n_test  # the two datasets never share a (symbol, return day)
    assert combined["multi_source"] == 0
    assert combined["improved"] is None and "more than one source" in combined["note"]
    assert combined["delta_frozen"] == 0.0 and combined["delta_online"] == 0.0
    print(f"\ncombined test: {combined}")
