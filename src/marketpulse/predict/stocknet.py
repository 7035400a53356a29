"""The StockNet benchmark (Xu & Cohen, ACL 2018): daily up/down movement from a 5-day lag of prices and tweets.

**Layout** (the shared copy, or any folder laid out the same): ``price/raw/<T>.csv[.gz]`` (Yahoo daily CSV
``Date,Open,High,Low,Close,Adj Close,Volume``; rows holding ``null`` are skipped), ``tweet/preprocessed/<T>.jsonl[.gz]``
(JSON lines ``date``, ``text`` token list, ``created_at``, ``user_id_str``) or the original one-file-per-day
``tweet/preprocessed/<T>/<YYYY-MM-DD>``, and an optional ``StockTable.tsv`` (sector, ``$SYMBOL``, company).

**Labels.** The movement of trading day ``d`` is ``AdjClose_d / AdjClose_{d-1} - 1`` (the *Adj Close* column,
so dividends and splits do not fake moves), rounded to 1e-6 as in StockNet's preprocessed files; ``<= -0.5 %`` is
0 (down), ``> 0.55 %`` is 1 (up), anything in between is dropped (:data:`DOWN`, :data:`UP`).

**Lag window.** The sample of target day ``d`` holds the :data:`LAG` = 5 trading days ``d-5 .. d-1`` (oldest first).
A tweet is assigned to the last trading day on or before its ``date`` (weekend and holiday tweets go to the
trading day before them), so the slot of day ``d-k`` holds the tweets dated from trading day ``d-k`` up to the day
before trading day ``d-k+1``: the window of target ``d`` holds every tweet dated before ``d`` (the weekend's
included for a Monday) and none dated ``d`` itself. The label spans ``AdjClose_{d-1} → AdjClose_d``; text known
before day ``d`` begins is the StockNet setting. ``ts`` is day ``d`` at 00:00 UTC; ``prev`` is the label of day
``d-1`` (-1 when that move is in the dropped band or unknown). Samples whose window holds a NaN (the first trading
days of a ticker) are dropped.

**Features per lag day** ``t`` (``t-1`` = the ticker's previous trading day; O/H/L/C scaled by the day's
``Adj Close / Close`` so that every ratio is free of splits and dividends: ``adjX_t = X_t * AdjClose_t / Close_t``):

- ``movement`` — ``AdjClose_t / AdjClose_{t-1} - 1`` (unrounded);
- ``open_rel``, ``high_rel``, ``low_rel`` — ``adjOpen_t / AdjClose_{t-1} - 1`` (same for high, low);
- ``close_open`` — ``Close_t / Open_t - 1`` (the day's close-to-open range);
- ``log_volume_change`` — ``log1p(Volume_t) - log1p(Volume_{t-1})``;
- ``rvol_5`` — realised volatility ``sqrt(mean(r^2))`` of the 5 daily log returns ``log(AdjClose)`` ending at ``t``;
- text (``text=True``): ``tweets_log1p`` = ``log1p(count)``, ``polarity_mean``, ``intensity_mean`` (means of the
  sentiment model's polarity and intensity on the tokens joined by spaces: the ``lexicon`` by default, any
  :mod:`marketpulse.sentiment` model through ``load_stocknet(sentiment_model=…)``, scores kept by
  :func:`~marketpulse.predict.text_scores.text_scores`), ``positive_share``, ``negative_share`` (share of tweets
  whose most probable label is positive / negative); all 0 for a slot without tweets.

**Schema** = the first 16 hex digits of ``sha256`` over ``{version, lag, feature names, thresholds, label column}``
and the sentiment model when it is not the lexicon (:func:`stocknet_schema`): prices-only and prices+text samples
have different schemas, and so do text features of different sentiment models.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from marketpulse.errors import ConfigError
from marketpulse.predict.base import Samples
from marketpulse.predict.text_scores import text_scores
from marketpulse.sentiment import MODELS

VERSION = 1
LAG = 5
DOWN = -0.005
"""A move ``<= DOWN`` is labelled 0 (down)."""
UP = 0.0055
"""A move ``> UP`` is labelled 1 (up); moves in ``(DOWN, UP]`` are dropped."""
STOCKNET_SPLITS: dict[str, tuple[str, str]] = {
    "train": ("2014-01-01", "2015-08-01"),
    "dev": ("2015-08-01", "2015-10-01"),
    "test": ("2015-10-01", "2016-01-01"),
}
"""The paper's temporal split of target days, ``start <= d < end``; ``all`` is their union."""
PRICE_FEATURES = ("movement", "open_rel", "high_rel", "low_rel", "close_open", "log_volume_change", "rvol_5")
TEXT_FEATURES = ("tweets_log1p", "polarity_mean", "intensity_mean", "positive_share", "negative_share")
PRICE_COLUMNS = ("Date", "Open", "High", "Low", "Close", "Adj Close", "Volume")
DAY_NS = 86_400 * 10**9


@dataclass
class StockNetData:
    """A loaded StockNet folder: per-ticker daily prices and the tweets (``None`` without a tweet folder)."""

    path: Path
    tickers: tuple[str, ...]
    prices: dict[str, pd.DataFrame]
    """Per ticker: ``date`` (datetime64, ascending, unique), ``open, high, low, close, adj_close, volume``."""
    tweets: pd.DataFrame | None
    """``symbol, date, text`` (tokens joined by spaces); ``None`` when ``tweet/preprocessed`` is missing."""
    table: pd.DataFrame
    """``symbol, sector, company`` from ``StockTable.tsv`` (empty without it)."""
    sentiment_model: str = "lexicon"
    """The :mod:`marketpulse.sentiment` model that scores the tweets."""
    cache_dir: Path | None = None
    """Where slow models' tweet scores are kept between runs (None: in memory only)."""
    _text_days: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict, init=False, repr=False)


def stocknet_schema(text: bool = True, sentiment_model: str = "lexicon") -> str:
    """The schema hash of StockNet samples with or without the text features (see the module docstring)."""
    spec: dict[str, Any] = {
        "dataset": "stocknet",
        "version": VERSION,
        "lag": LAG,
        "features": list(_names(text)),
        "thresholds": [DOWN, UP],
        "label": "Adj Close",
    }
    if text and sentiment_model != "lexicon":
        spec["sentiment"] = sentiment_model
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def stocknet_labels(movement: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """StockNet labels of daily moves: ``<= -0.5 %`` → 0, ``> 0.55 %`` → 1, else (and NaN) -1 (dropped); the
    move is rounded to 1e-6 first (StockNet's preprocessed precision, and exact decimal boundaries)."""
    m = np.round(np.asarray(movement, dtype=np.float64), 6)
    with np.errstate(invalid="ignore"):
        return np.where(m <= DOWN, 0, np.where(m > UP, 1, -1)).astype(np.int64)


def load_stocknet(
    path: Path,
    tickers: Sequence[str] | None = None,
    sentiment_model: str = "lexicon",
    cache_dir: Path | None = None,
) -> StockNetData:
    """Read the StockNet folder ``path`` (all tickers with a price file, or ``tickers``); the tweets are scored by
    ``sentiment_model`` when text features are first asked for (``cache_dir``: see :attr:`StockNetData.cache_dir`).

    Raises a one-line :class:`ConfigError` for a missing folder, no ``price/raw`` or no price file in it, an
    unknown ticker, a price file without a required column or without a usable row, or an unreadable tweet line.
    A missing tweet folder is not an error here (only :func:`stocknet_samples` with ``text=True`` needs it).
    """
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"StockNet folder {path} does not exist")
    raw = path / "price" / "raw"
    if not raw.is_dir():
        raise ConfigError(f"{path} has no price/raw folder (expected the StockNet layout price/raw/<T>.csv[.gz])")
    files = {_ticker_of(f.name): f for f in sorted(raw.iterdir()) if f.name.endswith((".csv", ".csv.gz"))}
    if not files:
        raise ConfigError(f"{raw} holds no price files (<T>.csv or <T>.csv.gz)")
    chosen = tuple(files) if tickers is None else tuple(dict.fromkeys(tickers))
    for t in chosen:
        if t not in files:
            raise ConfigError(f"ticker {t!r} has no price file in {raw} ({len(files)} tickers available)")
    prices = {t: _read_prices(files[t]) for t in chosen}
    tweet_dir = path / "tweet" / "preprocessed"
    tweets = _read_tweets(tweet_dir, chosen) if tweet_dir.is_dir() else None
    if sentiment_model not in MODELS:
        raise ConfigError(f"sentiment model {sentiment_model!r}: expected one of {', '.join(sorted(MODELS))}")
    table = _read_table(path / "StockTable.tsv")
    return StockNetData(path, chosen, prices, tweets, table, sentiment_model, cache_dir)


def stocknet_samples(data: StockNetData, split: str, text: bool = True, middle_band: bool = False) -> Samples:
    """The samples of ``split`` (``train``, ``dev``, ``test`` or ``all``), ordered by ``(ts, symbol)``.

    ``middle_band=True`` also keeps the target days whose move is in the dropped band, with ``y = -1`` — for a
    backtest, which trades every day; never for classification figures (StockNet's protocol drops them).

    ``X`` is ``(n, 5, F)`` float32 with the features of the module docstring (text ones only with ``text=True``,
    which needs tweets: a one-line :class:`ConfigError` when the folder has none). ``info`` carries the date range,
    counts, ``horizon_ns`` (one day) and ``typical_move`` (mean absolute move of the labelled days).
    """
    if split == "all":
        lo, hi = min(b[0] for b in STOCKNET_SPLITS.values()), max(b[1] for b in STOCKNET_SPLITS.values())
    elif split in STOCKNET_SPLITS:
        lo, hi = STOCKNET_SPLITS[split]
    else:
        raise ConfigError(f"split {split!r}: allowed values are {', '.join(STOCKNET_SPLITS)}, all")
    if text and (data.tweets is None or data.tweets.empty):
        where = data.path / "tweet" / "preprocessed"
        raise ConfigError(f"no tweets under {where}: text features need them (use prices only, text=False)")
    start, end = np.datetime64(lo, "ns"), np.datetime64(hi, "ns")
    names = _names(text)
    parts: list[tuple[Any, ...]] = []
    dropped = 0
    for t in data.tickers:
        days = data.prices[t]["date"].to_numpy("datetime64[ns]")
        feats = _price_features(data.prices[t])
        if text:
            feats = np.hstack((feats, _text_features(data, t)))
        move = feats[:, 0]
        label = stocknet_labels(move)
        target = np.arange(LAG, len(days))
        if target.size == 0:
            continue
        X = feats[target[:, None] + np.arange(-LAG, 0)[None, :]]
        in_range = (days[target] >= start) & (days[target] < end)
        labelled = label[target] >= 0
        if middle_band:
            labelled |= np.isfinite(move[target])
        keep = in_range & labelled & np.isfinite(X).all(axis=(1, 2))
        dropped += int((in_range & ~labelled).sum())
        rows = target[keep]
        parts.append((X[keep], label[rows], days[rows], label[rows - 1], np.abs(move[rows]), t))
    if parts:
        X = np.concatenate([p[0] for p in parts]).astype(np.float32)
        y = np.concatenate([p[1] for p in parts])
        ts = np.concatenate([p[2] for p in parts]).view(np.int64)
        prev = np.concatenate([p[3] for p in parts])
        absmove = np.concatenate([p[4] for p in parts])
        symbol = np.concatenate([np.full(len(p[1]), p[5]) for p in parts]).astype(np.str_)
    else:
        X = np.zeros((0, LAG, len(names)), np.float32)
        y, ts, prev = (np.zeros(0, np.int64) for _ in range(3))
        absmove, symbol = np.zeros(0), np.zeros(0, dtype=np.str_)
    order = np.lexsort((symbol, ts))
    info: dict[str, Any] = {
        "dataset": "stocknet",
        "path": str(data.path),
        "split": split,
        "bounds": [lo, hi],
        "lag": LAG,
        "text": text,
        **({"sentiment_model": data.sentiment_model} if text else {}),
        "n": len(y),
        "tickers": len(set(symbol.tolist())),
        "dropped_middle_band": dropped,
        "horizon_ns": DAY_NS,
        "typical_move": float(absmove.mean()) if len(absmove) else 0.0,
    }
    if len(y):
        info["from"], info["to"] = _day(ts.min()), _day(ts.max())
    if text and len(y):
        info["with_tweets"] = int((X[:, :, names.index("tweets_log1p")] > 0).any(axis=1).sum())
    return Samples(
        X[order],
        y[order],
        ts[order],
        symbol[order],
        prev[order],
        names,
        stocknet_schema(text, data.sentiment_model),
        2,
        info,
    )


def stocknet_moves(data: StockNetData, samples: Samples) -> npt.NDArray[np.float64]:
    """The move of each sample's target day, ``AdjClose_d / AdjClose_{d-1} - 1`` (unrounded): what a position
    taken for day ``d`` earns (the label's source; known only after day ``d`` closes)."""
    out = np.full(len(samples), np.nan)
    for t in np.unique(samples.symbol).tolist():
        prices = data.prices[t]
        days = prices["date"].to_numpy("datetime64[ns]").view(np.int64)
        adj = prices["adj_close"].to_numpy(np.float64)
        move = np.concatenate([[np.nan], adj[1:] / adj[:-1] - 1.0])
        rows = np.flatnonzero(samples.symbol == t)
        at = np.searchsorted(days, samples.ts[rows])
        found = (at < len(days)) & (days[np.minimum(at, len(days) - 1)] == samples.ts[rows])
        out[rows[found]] = move[at[found]]
    return out


def _day(ns: np.int64) -> str:
    return str(np.datetime64(int(ns), "ns").astype("datetime64[D]"))


def _names(text: bool) -> tuple[str, ...]:
    return (*PRICE_FEATURES, *TEXT_FEATURES) if text else PRICE_FEATURES


def _ticker_of(name: str) -> str:
    return name.removesuffix(".gz").removesuffix(".csv")


def _read_prices(file: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(file, na_values=["null"], keep_default_na=True)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"price file {file} cannot be read: {str(e).splitlines()[0] if str(e) else e}") from None
    for col in PRICE_COLUMNS:
        if col not in frame.columns:
            raise ConfigError(f"price file {file} has no {col!r} column (expected {','.join(PRICE_COLUMNS)})")
    out = pd.DataFrame({"date": pd.to_datetime(frame["Date"], format="%Y-%m-%d", errors="coerce")})
    for col in PRICE_COLUMNS[1:]:
        out[col.lower().replace(" ", "_")] = pd.to_numeric(frame[col], errors="coerce")
    values = out.iloc[:, 1:6]
    usable = out.notna().all(axis=1) & (values > 0).all(axis=1) & (out["volume"] >= 0)
    out = out[usable].drop_duplicates("date", keep="last").sort_values("date", ignore_index=True)
    if out.empty:
        raise ConfigError(f"price file {file} has no usable rows (every row has a null, missing or non-positive value)")
    return out


def _tweet_lines(tweet_dir: Path, ticker: str) -> Iterator[tuple[Path, int, str, str | None]]:
    """``(file, line number, line, date from the file name or None)`` of a ticker's tweets, any layout."""
    for name in (f"{ticker}.jsonl.gz", f"{ticker}.jsonl"):
        file = tweet_dir / name
        if file.is_file():
            content = file.read_bytes()
            content = gzip.decompress(content) if name.endswith(".gz") else content
            for i, line in enumerate(content.decode("utf-8").splitlines(), 1):
                yield file, i, line, None
            return
    folder = tweet_dir / ticker
    if folder.is_dir():
        for file in sorted(folder.iterdir()):
            for i, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
                yield file, i, line, file.name


def _read_tweets(tweet_dir: Path, tickers: Sequence[str]) -> pd.DataFrame:
    symbols: list[str] = []
    dates: list[str] = []
    texts: list[str] = []
    for t in tickers:
        try:
            for file, i, line, file_date in _tweet_lines(tweet_dir, t):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                    date, tokens = obj.get("date", file_date), obj["text"]
                except (ValueError, KeyError, TypeError, AttributeError):
                    raise ConfigError(f"tweet file {file} line {i}: not a JSON object with 'text' and 'date'") from None
                if date is None:
                    raise ConfigError(f"tweet file {file} line {i}: no 'date'")
                symbols.append(t)
                dates.append(str(date))
                texts.append(" ".join(map(str, tokens)) if isinstance(tokens, list) else str(tokens))
        except (OSError, UnicodeDecodeError, EOFError) as e:
            raise ConfigError(f"tweet files of {t} under {tweet_dir} cannot be read: {e}") from None
    parsed = pd.to_datetime(pd.Series(dates, dtype=object), format="%Y-%m-%d", errors="coerce")
    if parsed.isna().any():
        bad = dates[int(np.flatnonzero(parsed.isna().to_numpy())[0])]
        raise ConfigError(f"tweets under {tweet_dir}: date {bad!r} is not YYYY-MM-DD")
    return pd.DataFrame({"symbol": symbols, "date": parsed.to_numpy("datetime64[ns]"), "text": texts})


def _read_table(file: Path) -> pd.DataFrame:
    if not file.is_file():
        return pd.DataFrame(columns=["symbol", "sector", "company"])
    try:
        table = pd.read_csv(file, sep="\t", dtype=str)
        return pd.DataFrame(
            {"symbol": table["Symbol"].str.lstrip("$"), "sector": table["Sector"], "company": table["Company"]}
        )
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"{file} is not a StockTable (Sector, Symbol, Company columns): {e}") from None


def _price_features(p: pd.DataFrame) -> npt.NDArray[np.float64]:
    """``(days, 7)`` price features of the module docstring, NaN where the history is too short."""
    adj, close = p["adj_close"].to_numpy(float), p["close"].to_numpy(float)
    factor = adj / close
    prev_adj = np.concatenate(([np.nan], adj[:-1]))
    lv = np.log1p(p["volume"].to_numpy(float))
    logret = np.log(adj / prev_adj)
    rvol = np.sqrt(pd.Series(logret**2).rolling(5, min_periods=5).mean().to_numpy())
    cols = [
        adj / prev_adj - 1.0,
        *(p[c].to_numpy(float) * factor / prev_adj - 1.0 for c in ("open", "high", "low")),
        close / p["open"].to_numpy(float) - 1.0,
        lv - np.concatenate(([np.nan], lv[:-1])),
        rvol,
    ]
    return np.column_stack(cols)


def _text_features(data: StockNetData, ticker: str) -> npt.NDArray[np.float64]:
    """``(days, 5)`` text features of ``ticker``'s trading days (cached on ``data``; tweets scored once)."""
    cached = data._text_days.get(ticker)
    if cached is not None:
        return cached
    assert data.tweets is not None
    days = data.prices[ticker]["date"].to_numpy("datetime64[ns]")
    own = data.tweets[data.tweets["symbol"] == ticker]
    n = len(days)
    out = np.zeros((n, len(TEXT_FEATURES)))
    if len(own):
        slot = np.searchsorted(days, own["date"].to_numpy("datetime64[ns]"), side="right") - 1
        ok = slot >= 0  # tweets before the first trading day have no slot
        scores = text_scores(own["text"].tolist(), data.sentiment_model, data.cache_dir)[ok]
        slot = slot[ok]
        count = np.bincount(slot, minlength=n).astype(float)
        denom = np.maximum(count, 1.0)
        out[:, 0] = np.log1p(count)
        out[:, 1] = np.bincount(slot, scores[:, 0], n) / denom
        out[:, 2] = np.bincount(slot, scores[:, 1], n) / denom
        out[:, 3] = np.bincount(slot, scores[:, 2] == 1, n) / denom
        out[:, 4] = np.bincount(slot, scores[:, 2] == -1, n) / denom
    data._text_days[ticker] = out
    return out


__all__ = [
    "DOWN",
    "LAG",
    "PRICE_FEATURES",
    "STOCKNET_SPLITS",
    "TEXT_FEATURES",
    "UP",
    "StockNetData",
    "load_stocknet",
    "stocknet_labels",
    "stocknet_samples",
    "stocknet_schema",
]
