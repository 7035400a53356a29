"""Build the demo sample bundled in ``src/marketpulse/datasets/sample/`` from the StockNet data folder.

Usage (from the repository root)::

    python scripts/make_demo_sample.py [DATA_DIR]   # DATA_DIR defaults to ../shared/data

DATA_DIR holds ``stocknet/`` in the shared layout: ``price/raw/<T>.csv.gz`` (Yahoo daily CSV),
``tweet/preprocessed/<T>.jsonl.gz`` (one tweet per line with a ``date`` key) and ``StockTable.tsv``.
The sample keeps the same layout and formats, so one StockNet reader reads both. Rows are subset only:
each kept price line and tweet line is copied byte for byte. Output is reproducible (gzip without file
name or time stamp), and ``README.md`` with the counts is regenerated from what was written.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"
DEFAULT_OUT = REPO_ROOT / "src" / "marketpulse" / "datasets" / "sample"
# Five mega-caps with the most tweets in StockNet plus one liquid bank (sector diversity).
DEFAULT_TICKERS = ("AAPL", "AMZN", "BAC", "FB", "GOOG", "MSFT")
# Three months with the most tweets for these tickers in 2014-2015 (after GOOG's April 2014 share split).
DEFAULT_START, DEFAULT_END = date(2014, 5, 1), date(2014, 7, 31)
SIZE_BUDGET = 1_500_000

log = logging.getLogger("make_demo_sample")


@dataclass(frozen=True)
class TickerCounts:
    ticker: str
    price_rows: int
    tweets: int
    first_day: str
    last_day: str


def write_gzip(path: Path, data: bytes) -> None:
    """Write ``data`` gzipped, with no file name and a zero mtime, so rebuilds are byte-identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    path.write_bytes(buffer.getvalue())


def subset_prices(src: Path, start: date, end: date) -> tuple[bytes, int, str, str]:
    """Header plus the lines whose ``Date`` lies in [start, end], bytes unchanged."""
    lines = gzip.decompress(src.read_bytes()).splitlines(keepends=True)
    if not lines or not lines[0].startswith(b"Date,"):
        raise SystemExit(f"{src.name}: not a Yahoo daily CSV (header {lines[:1]!r})")
    kept = [ln for ln in lines[1:] if start.isoformat() <= ln[:10].decode("ascii") <= end.isoformat()]
    if not kept:
        raise SystemExit(f"{src.name}: no price rows between {start} and {end}")
    return b"".join([lines[0], *kept]), len(kept), kept[0][:10].decode(), kept[-1][:10].decode()


def subset_tweets(src: Path, start: date, end: date) -> tuple[bytes, int]:
    """The lines whose ``date`` key lies in [start, end], bytes unchanged (file order kept)."""
    kept = []
    for line in gzip.decompress(src.read_bytes()).splitlines(keepends=True):
        day = json.loads(line)["date"]
        if start.isoformat() <= day <= end.isoformat():
            kept.append(line)
    return b"".join(kept), len(kept)


def subset_stock_table(src: Path, tickers: tuple[str, ...]) -> bytes:
    lines = src.read_bytes().splitlines(keepends=True)
    wanted = {f"${t}".encode() for t in tickers}
    return b"".join([lines[0], *(ln for ln in lines[1:] if ln.split(b"\t")[1] in wanted)])


README = """\
# Bundled demo sample (StockNet subset)

A small, unchanged subset of the StockNet dataset so that `marketpulse` demos and tests run without
the full data folder. Layout and formats are those of the shared StockNet folder (`<data folder>/stocknet`),
so the same reader reads both.

- **Source:** StockNet dataset, repository `yumoxu/stocknet-dataset` (GitHub), via the shared data folder
  (`../shared/data/stocknet`: raw prices gzipped unchanged, preprocessed tweets concatenated per ticker
  into JSON Lines with an extra `date` key = the original day-file name).
- **Citation:** Yumo Xu and Shay B. Cohen. 2018. *Stock Movement Prediction from Tweets and Historical
  Prices.* ACL 2018 (P18-1183).
- **Licence:** MIT License, Copyright (c) 2018 Yumo Xu. Tweets originate from Twitter, prices from
  Yahoo Finance.

## Subset

- Tickers: {tickers}.
- Window: {start} .. {end} (inclusive; trading days for prices, StockNet `date` for tweets).
- Rows are copied byte for byte; nothing is recomputed or re-serialised.

| ticker | price rows | first | last | tweets |
| --- | ---: | --- | --- | ---: |
{table}
| **total** | **{price_total}** | | | **{tweet_total}** |

## Files

| path | content |
| --- | --- |
| `stocknet/StockTable.tsv` | sector / `$SYMBOL` / company rows of these tickers (original rows) |
| `stocknet/price/raw/<T>.csv.gz` | Yahoo daily CSV, ascending dates |
| `stocknet/tweet/preprocessed/<T>.jsonl.gz` | preprocessed tweets, one JSON object per line |

Price columns: `Date,Open,High,Low,Close,Adj Close,Volume`. Tweet keys: `date` (StockNet day file),
`text` (lower-cased tokens), `created_at` (Twitter UTC time), `user_id_str`.

Size of `stocknet/`: {size_kb} kB (gzipped).

## Rebuild

```
python scripts/make_demo_sample.py <data folder>   # default: ../shared/data relative to the repository
```

The script is deterministic: the same input gives byte-identical files.
"""


def build(data: Path, out: Path, tickers: tuple[str, ...], start: date, end: date) -> list[TickerCounts]:
    stocknet = data / "stocknet"
    if not (stocknet / "price" / "raw").is_dir():
        raise SystemExit(f"no StockNet folder under {data} (expected stocknet/price/raw)")
    target = out / "stocknet"
    if target.exists():
        shutil.rmtree(target)
    counts = []
    for ticker in tickers:
        prices, n_rows, first, last = subset_prices(stocknet / "price" / "raw" / f"{ticker}.csv.gz", start, end)
        tweets, n_tweets = subset_tweets(stocknet / "tweet" / "preprocessed" / f"{ticker}.jsonl.gz", start, end)
        write_gzip(target / "price" / "raw" / f"{ticker}.csv.gz", prices)
        write_gzip(target / "tweet" / "preprocessed" / f"{ticker}.jsonl.gz", tweets)
        counts.append(TickerCounts(ticker, n_rows, n_tweets, first, last))
        log.info("%s: %d price rows (%s..%s), %d tweets", ticker, n_rows, first, last, n_tweets)
    (target / "StockTable.tsv").write_bytes(subset_stock_table(stocknet / "StockTable.tsv", tickers))
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    table = "\n".join(f"| {c.ticker} | {c.price_rows} | {c.first_day} | {c.last_day} | {c.tweets} |" for c in counts)
    readme = README.format(
        tickers=", ".join(tickers),
        start=start,
        end=end,
        table=table,
        price_total=sum(c.price_rows for c in counts),
        tweet_total=sum(c.tweets for c in counts),
        size_kb=round(size / 1000),
    )
    (out / "README.md").write_text(readme, encoding="utf-8")
    if size > SIZE_BUDGET:
        raise SystemExit(f"sample is {size} bytes, over the {SIZE_BUDGET} byte budget: narrow the window")
    log.info("wrote %s (%d bytes)", out, size)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="data folder holding stocknet/")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="sample folder to (re)write")
    parser.add_argument("--tickers", default=",".join(DEFAULT_TICKERS), help="comma-separated tickers")
    parser.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START)
    parser.add_argument("--end", type=date.fromisoformat, default=DEFAULT_END)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    tickers = tuple(t.strip().upper() for t in args.tickers.split(",") if t.strip())
    build(args.data, args.out, tickers, args.start, args.end)


if __name__ == "__main__":
    main()
