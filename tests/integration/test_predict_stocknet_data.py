"""StockNet samples on the real shared folder (79 tickers): split counts, class balance, windows, labels.

Skipped with the reason when ``../shared/data/stocknet`` is absent. The counts per split are printed (``-s``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from marketpulse.predict.base import Samples
from marketpulse.predict.stocknet import (
    LAG,
    PRICE_FEATURES,
    STOCKNET_SPLITS,
    TEXT_FEATURES,
    StockNetData,
    load_stocknet,
    stocknet_labels,
    stocknet_samples,
)

pytestmark = pytest.mark.integration

STOCKNET = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "stocknet"


@pytest.fixture(scope="module")
def data() -> StockNetData:
    if not (STOCKNET / "price" / "raw").is_dir():
        pytest.skip(f"StockNet folder not found at {STOCKNET} (../shared/data next to the checkout)")
    return load_stocknet(STOCKNET)


@pytest.fixture(scope="module")
def splits(data: StockNetData) -> dict[str, Samples]:
    return {name: stocknet_samples(data, name) for name in STOCKNET_SPLITS}


def test_loaded_folder(data: StockNetData) -> None:
    assert len(data.tickers) == 79 and data.tweets is not None
    assert data.tweets["symbol"].nunique() == 78  # GMRE has no tweets
    assert len(data.tweets) == 93_274
    assert data.prices["PTR"]["date"].is_monotonic_increasing  # its null row is skipped
    assert pd.Timestamp("2016-06-29") not in set(data.prices["PTR"]["date"])


def test_split_counts_balance_and_windows(splits: dict[str, Samples]) -> None:
    for name, s in splits.items():
        lo, hi = (int(pd.Timestamp(b).value) for b in STOCKNET_SPLITS[name])
        print(f"stocknet {name}: n={len(s)} balance={s.balance()} tickers={s.info['tickers']} "
              f"with_tweets={s.info['with_tweets']} dropped_middle={s.info['dropped_middle_band']} "
              f"{s.info['from']}..{s.info['to']}")  # fmt: skip
        assert len(s) > 1000
        assert s.X.shape == (len(s), LAG, len(PRICE_FEATURES) + len(TEXT_FEATURES)) and s.X.dtype == np.float32
        assert np.isfinite(s.X).all()
        assert 0.4 < s.balance()["up"] < 0.6  # StockNet's thresholds keep the classes near 50/50
        assert ((s.ts >= lo) & (s.ts < hi)).all() and np.all(np.diff(s.ts) >= 0)
        assert set(np.unique(s.prev).tolist()) <= {-1, 0, 1} and set(np.unique(s.y).tolist()) == {0, 1}
        assert s.info["with_tweets"] > 0.5 * len(s)  # most windows hold tweets
    assert splits["train"].ts.max() < splits["dev"].ts.min() <= splits["dev"].ts.max() < splits["test"].ts.min()


def test_prices_only_matches(data: StockNetData, splits: dict[str, Samples]) -> None:
    prices = stocknet_samples(data, "test", text=False)
    test = splits["test"]
    assert prices.X.shape == (len(test), LAG, len(PRICE_FEATURES)) and prices.schema != test.schema
    np.testing.assert_array_equal(prices.y, test.y)
    np.testing.assert_array_equal(prices.X, test.X[:, :, : len(PRICE_FEATURES)])


def test_labels_agree_with_stocknet_preprocessed(data: StockNetData, splits: dict[str, Samples]) -> None:
    """Our Adj-Close labels equal the labels of StockNet's own preprocessed movement column on every target day."""
    folder = STOCKNET / "price" / "preprocessed"
    if not folder.is_dir():
        pytest.skip(f"{folder} not found")
    ours = pd.concat(
        pd.DataFrame({"symbol": s.symbol, "day": s.ts.view("datetime64[ns]"), "y": s.y}) for s in splits.values()
    )
    checked = 0
    for ticker, rows in ours.groupby("symbol"):
        pre = pd.read_csv(folder / f"{ticker}.txt.gz", sep="\t", header=None)
        theirs = pd.Series(stocknet_labels(pre[1].to_numpy()), index=pd.to_datetime(pre[0]).to_numpy("datetime64[ns]"))
        np.testing.assert_array_equal(rows["y"].to_numpy(), theirs.reindex(rows["day"].to_numpy()).to_numpy())
        checked += len(rows)
    assert checked == sum(len(s) for s in splits.values())
