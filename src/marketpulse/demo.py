"""The sources of ``marketpulse run``: the bundled StockNet sample, made lively.

Real daily bars and real tweets at their real times, plus ticks synthesised inside each real daily bar
(a Brownian bridge that honours the day's open, high, low and close; published marked ``synthetic`` and never
stored as history), all merged by event time.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from marketpulse.datasets.bundled import DEMO_SYMBOLS, sample_path
from marketpulse.errors import SourceError
from marketpulse.ingest.base import MarketSource, TextSource
from marketpulse.ingest.market import CsvMarketSource, FrameMarketSource, stocknet_price_files, symbol_from_path
from marketpulse.ingest.simulate import bridge_ticks
from marketpulse.ingest.social import StockNetTweetSource


def demo_sources(
    symbols: list[str] | None = None, root: Path | None = None, ticks_per_day: int = 390, seed: int = 7
) -> list[MarketSource | TextSource]:
    """Bars per symbol, synthetic ticks inside them and the symbols' tweets, from the bundled sample."""
    root = root or sample_path() / "stocknet"
    chosen = [s.upper() for s in symbols] if symbols else list(DEMO_SYMBOLS)
    files = stocknet_price_files(root, chosen)
    found = {symbol_from_path(p) for p in files}
    unknown = sorted(set(chosen) - found)
    if unknown:
        raise SourceError(f"no demo data for {', '.join(unknown)}; the sample has {', '.join(sorted(DEMO_SYMBOLS))}")
    sources: list[MarketSource | TextSource] = [CsvMarketSource(p, "bars") for p in files]
    daily = []
    for p in files:
        frame = pd.read_csv(p).rename(columns=str.lower)
        frame = frame.dropna(subset=["open", "high", "low", "close"])
        daily.append(
            pd.DataFrame(
                {
                    "timestamp": pd.to_datetime(frame["date"]),
                    "symbol": symbol_from_path(p),
                    "open": frame["open"],
                    "high": frame["high"],
                    "low": frame["low"],
                    "close": frame["close"],
                    "volume": frame["volume"],
                }
            )
        )
    ticks = bridge_ticks(pd.concat(daily, ignore_index=True), ticks_per_day=ticks_per_day, seed=seed)
    ticks = ticks.sort_values("timestamp", kind="stable").reset_index(drop=True)
    sources.append(
        FrameMarketSource("demo:bridge-ticks", "ticks", ticks[["timestamp", "symbol", "price", "size"]], synthetic=True)
    )
    sources.append(StockNetTweetSource(root, chosen))
    return sources
