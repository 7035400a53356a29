"""The demo sample shipped in the package: present, small, complete, and an unchanged subset of StockNet."""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest

from marketpulse.datasets.bundled import DEMO_SYMBOLS, sample_path

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
SHARED_STOCKNET = SHARED / "stocknet"
needs_shared = pytest.mark.skipif(
    not (SHARED_STOCKNET / "price" / "raw").is_dir(),
    reason="the shared data folder (../shared/data/stocknet next to the repository) is not present",
)


def _lines(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).splitlines(keepends=True)


def _stocknet() -> Path:
    return sample_path() / "stocknet"


def test_sample_exists_and_is_small() -> None:
    root = sample_path()
    assert root.is_dir() and (root / "README.md").is_file()
    total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert 0 < total < 2_000_000


def test_sample_holds_exactly_the_demo_symbols() -> None:
    prices = {p.name.removesuffix(".csv.gz") for p in (_stocknet() / "price" / "raw").iterdir()}
    tweets = {p.name.removesuffix(".jsonl.gz") for p in (_stocknet() / "tweet" / "preprocessed").iterdir()}
    assert prices == set(DEMO_SYMBOLS) == tweets
    table = pd.read_csv(_stocknet() / "StockTable.tsv", sep="\t")
    assert sorted(table["Symbol"].str.lstrip("$")) == sorted(DEMO_SYMBOLS)


@pytest.mark.parametrize("symbol", DEMO_SYMBOLS)
def test_prices_are_yahoo_daily_bars_over_about_three_months(symbol: str) -> None:
    bars = pd.read_csv(_stocknet() / "price" / "raw" / f"{symbol}.csv.gz")
    assert list(bars.columns) == ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]
    dates = pd.to_datetime(bars["Date"])
    assert dates.is_monotonic_increasing and dates.is_unique
    assert 40 <= len(bars) <= 80
    assert pd.Timedelta(days=60) <= dates.iloc[-1] - dates.iloc[0] <= pd.Timedelta(days=120)
    assert (bars["Low"] <= bars[["Open", "Close"]].min(axis=1)).all()
    assert (bars["High"] >= bars[["Open", "Close"]].max(axis=1)).all()


@pytest.mark.parametrize("symbol", DEMO_SYMBOLS)
def test_tweets_are_stocknet_preprocessed_inside_the_window(symbol: str) -> None:
    bars = pd.read_csv(_stocknet() / "price" / "raw" / f"{symbol}.csv.gz")
    tweets = [json.loads(line) for line in _lines(_stocknet() / "tweet" / "preprocessed" / f"{symbol}.jsonl.gz")]
    assert len(tweets) >= 100
    for tweet in tweets[:50]:
        assert set(tweet) == {"date", "text", "created_at", "user_id_str"}
        assert isinstance(tweet["text"], list)
    days = sorted(t["date"] for t in tweets)
    assert bars["Date"].iloc[0][:7] <= days[0][:7] and days[-1][:7] <= bars["Date"].iloc[-1][:7]


def test_readme_credits_the_source_and_names_no_local_path() -> None:
    text = (sample_path() / "README.md").read_text(encoding="utf-8")
    for needle in ("StockNet", "MIT", "Yumo Xu", "Twitter", "Yahoo Finance", "make_demo_sample.py"):
        assert needle in text
    assert not re.search(r"(?<![.\w])/(work|home|Users|tmp|root)/", text)
    for symbol in DEMO_SYMBOLS:
        assert f"| {symbol} |" in text


@needs_shared
@pytest.mark.integration
@pytest.mark.parametrize("symbol", DEMO_SYMBOLS)
def test_sample_rows_are_an_unchanged_contiguous_subset_of_the_originals(symbol: str) -> None:
    for sub in (("price", "raw", f"{symbol}.csv.gz"), ("tweet", "preprocessed", f"{symbol}.jsonl.gz")):
        sample = _lines(_stocknet().joinpath(*sub))
        original = _lines(SHARED_STOCKNET.joinpath(*sub))
        body = sample[1:] if sub[0] == "price" else sample
        if sub[0] == "price":
            assert sample[0] == original[0]
        start = original.index(body[0])
        assert original[start : start + len(body)] == body  # same bytes, nothing skipped inside the window


def _load_builder(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    path = REPO / "scripts" / "make_demo_sample.py"
    spec = importlib.util.spec_from_file_location("make_demo_sample", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@needs_shared
@pytest.mark.integration
def test_builder_reproduces_the_bundled_sample_byte_for_byte(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builder = _load_builder(monkeypatch)
    assert tuple(sorted(builder.DEFAULT_TICKERS)) == tuple(sorted(DEMO_SYMBOLS))
    builder.main([str(SHARED), "--out", str(tmp_path)])
    bundled = {p.relative_to(sample_path()): p.read_bytes() for p in sample_path().rglob("*") if p.is_file()}
    rebuilt = {p.relative_to(tmp_path): p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert rebuilt.keys() == bundled.keys()
    for name, data in rebuilt.items():
        assert data == bundled[name], name
