"""Sources (market, social, news), validation and the format detection used by ``marketpulse replay``."""

from __future__ import annotations

from pathlib import Path

from marketpulse.errors import SourceError
from marketpulse.ingest.base import Kind, MarketSource, TextSource


def open_source(
    path: Path, kind: Kind, *, symbol: str | None = None, naive_tz: str = "UTC"
) -> MarketSource | TextSource:
    """Pick the reader for ``path`` and ``kind`` from the file name, layout and header.

    bars/ticks: CSV (plain or .gz), Parquet, a StockNet folder (bars), a LOBSTER message file (ticks).
    posts: JSONL, a StockNet folder (tweets), a StockEmotions CSV. news: JSONL, a Benzinga headlines CSV.
    """
    from marketpulse.ingest import market, news, social

    path = Path(path)
    if not path.exists():
        raise SourceError(f"{path}: no such file or directory")
    name = path.name.lower()
    if kind in ("bars", "ticks"):
        if path.is_dir():
            raise SourceError(f"{path}: is a directory; replay one price file (e.g. price/raw/AAPL.csv.gz)")
        if "_message_" in name:
            if kind != "ticks":
                raise SourceError(f"{path}: a LOBSTER message file holds ticks, not {kind}")
            return market.LobsterTickSource(path)
        if name.endswith(".parquet"):
            return market.ParquetMarketSource(path, kind, symbol=symbol, naive_tz=naive_tz)
        return market.CsvMarketSource(path, kind, symbol=symbol, naive_tz=naive_tz)
    if path.is_dir():
        if kind == "posts":
            return social.StockNetTweetSource(path, [symbol] if symbol else None)
        raise SourceError(f"{path}: is a directory; news is read from a JSONL or Benzinga CSV file")
    if ".jsonl" in name or name.endswith(".json"):
        return social.JsonlTextSource(path, "news" if kind == "news" else "posts")
    with social.open_text(path) as fh:
        header = fh.readline().strip().lower()
    if kind == "news" and {"title", "date", "stock"} <= set(header.split(",")):
        return news.BenzingaSource(path)
    if kind == "posts" and {"ticker", "original"} <= set(header.split(",")):
        return social.StockEmotionsSource(path)
    raise SourceError(
        f"{path}: unknown {kind} format (header {header[:80]!r}); expected JSONL with id,created_at,text,source"
        + (", a Benzinga CSV (id,title,date,stock)" if kind == "news" else ", a StockEmotions CSV or a StockNet folder")
    )
