"""Social-post sources: JSONL, the StockNet tweet layout and StockEmotions (StockTwits) CSV.

Every source yields :class:`~marketpulse.ingest.base.TextBatch` records under the canonical field names
(``id, created_at, text, source, author, symbols, engagement, url, title``) with their 1-based line, in event
time order where the input is not (StockNet files are per ticker: they are merged by time).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from marketpulse.errors import SourceError
from marketpulse.ingest.base import RowError, TextBatch, TextKind
from marketpulse.ingest.timeparse import parse_one

CANONICAL = ("id", "created_at", "text", "source", "author", "symbols", "engagement", "url", "title")
BATCH = 5_000


def open_text(path: Path) -> IO[str]:
    """Open a text file, gunzipping when needed; :class:`SourceError` when it cannot be opened."""
    try:
        with path.open("rb") as probe:
            gz = probe.read(2) == b"\x1f\x8b"
        return gzip.open(path, "rt", encoding="utf-8") if gz else path.open("r", encoding="utf-8", newline="")
    except FileNotFoundError as e:
        raise SourceError(f"{path}: no such file") from e
    except IsADirectoryError as e:
        raise SourceError(f"{path}: is a directory, expected a file") from e
    except OSError as e:
        raise SourceError(f"{path}: cannot read ({e.strerror or e})") from e


def batched(source: str, kind: TextKind, items: Iterator[tuple[int, dict[str, Any] | RowError]]) -> Iterator[TextBatch]:
    """Group ``(line, record-or-error)`` items into batches of :data:`BATCH`."""
    batch = TextBatch(source, kind, [], [])
    for line, item in items:
        if isinstance(item, RowError):
            batch.errors.append(item)
        else:
            batch.records.append((line, item))
        if batch.read >= BATCH:
            yield batch
            batch = TextBatch(source, kind, [], [])
    if batch.read:
        yield batch


class JsonlTextSource:
    """One JSON object per line with the canonical fields (extra fields are ignored)."""

    def __init__(self, path: Path, kind: TextKind = "posts", default_source: str | None = None) -> None:
        self.path, self.kind, self.name = Path(path), kind, str(path)
        self.default_source = default_source
        self._fh = open_text(self.path)

    def batches(self) -> Iterator[TextBatch]:
        return batched(self.name, self.kind, self._items())

    def _items(self) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
        with self._fh:
            # lines are decoded one by one, so a line that is not UTF-8 is one bad record, not a failed file
            for line_no, raw in enumerate(self._fh.buffer, start=1):  # type: ignore[attr-defined]
                try:
                    text = raw.decode("utf-8").strip()
                except UnicodeDecodeError as e:
                    record = raw.decode("utf-8", "replace").strip()[:2000]
                    yield line_no, RowError(line_no, "*", "bad_row", record, f"not UTF-8 text ({e.reason})")
                    continue
                if not text:
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as e:
                    yield line_no, RowError(line_no, "*", "bad_json", text[:2000], e.msg)
                    continue
                if not isinstance(obj, dict):
                    yield line_no, RowError(line_no, "*", "bad_row", text[:2000], "expected a JSON object")
                    continue
                rec = {k: obj[k] for k in CANONICAL if k in obj}
                if self.default_source and not rec.get("source"):
                    rec["source"] = self.default_source
                yield line_no, rec


def _tweet_id(symbol: str, created_at: str, user: str, text: str) -> str:
    digest = hashlib.blake2b(f"{created_at}|{user}|{text}".encode(), digest_size=8).hexdigest()
    return f"{symbol}-{digest}"


class StockNetTweetSource:
    """StockNet preprocessed tweets, merged across tickers in posting time order.

    Reads ``<root>/tweet/preprocessed/<T>.jsonl.gz`` (one file per ticker) or the original layout
    ``<root>/tweet/preprocessed/<T>/<YYYY-MM-DD>``. Tokens are joined by spaces; the id is derived from
    (time, user, text) and the ticker because the dataset has none; positions are ``file:line``.
    """

    kind: TextKind = "posts"

    def __init__(self, root: Path, symbols: list[str] | None = None) -> None:
        root = Path(root)
        base = root / "tweet" / "preprocessed" if (root / "tweet" / "preprocessed").is_dir() else root
        if not base.is_dir():
            raise SourceError(f"{root}: not a StockNet folder (tweet/preprocessed/ missing)")
        wanted = {s.upper() for s in symbols} if symbols else None
        self.files: list[tuple[str, Path]] = []
        for p in sorted(base.iterdir()):
            ticker = p.name.split(".")[0].upper()
            if wanted and ticker not in wanted:
                continue
            if p.is_dir():
                self.files.extend((ticker, day) for day in sorted(p.iterdir()) if day.is_file())
            elif p.name.endswith((".jsonl", ".jsonl.gz")):
                self.files.append((ticker, p))
        if not self.files:
            raise SourceError(f"{root}: no StockNet tweet files under {base}")
        self.name = str(root)

    def batches(self) -> Iterator[TextBatch]:
        items: list[tuple[float, str, int, dict[str, Any] | RowError]] = []
        for ticker, path in self.files:
            # the position names the file from the root (``tweet/preprocessed/FB/2014-01-01:3``): a day file's
            # own name does not say which ticker it belongs to
            where = path.relative_to(self.name).as_posix()
            with open_text(path) as fh:
                for line_no, line in enumerate(fh, start=1):
                    text = line.strip()
                    if not text:
                        continue
                    try:
                        obj = json.loads(text)
                        tokens, created, user = obj["text"], obj["created_at"], obj.get("user_id_str")
                    except (json.JSONDecodeError, KeyError, TypeError) as e:
                        err = RowError(line_no, "*", "bad_row", text, str(e), file=where)
                        items.append((float("inf"), where, line_no, err))
                        continue
                    body = " ".join(tokens) if isinstance(tokens, list) else tokens
                    rec = {
                        "id": _tweet_id(ticker, str(created), str(user), str(body)),
                        "created_at": created,
                        "text": body,
                        "source": "twitter",
                        "author": user,
                        "symbols": [ticker],
                    }
                    ts = parse_one(created)
                    items.append((ts.timestamp() if ts else float("-inf"), where, line_no, rec))
        items.sort(key=lambda item: item[0])
        return self._emit(items)

    def _emit(self, items: list[tuple[float, str, int, dict[str, Any] | RowError]]) -> Iterator[TextBatch]:
        # positions name the file inside the folder: ``<root>/tweet/preprocessed/AAPL.jsonl.gz:12``
        for start in range(0, len(items), BATCH):
            batch = TextBatch(self.name, self.kind, [], [])
            for _, file, line_no, item in items[start : start + BATCH]:
                if isinstance(item, RowError):
                    batch.errors.append(item)
                else:
                    batch.records.append((line_no, {**item, "_file": file}))
            yield batch


class StockEmotionsSource:
    """StockEmotions CSV (``id,date,ticker,emo_label,senti_label,original,processed``).

    Posts carry only a date: they are stamped at 23:59:59 US/Eastern of that day, the latest moment they could
    have been seen, so nothing is used before it was available.
    """

    kind: TextKind = "posts"

    def __init__(self, path: Path) -> None:
        self.path, self.name = Path(path), str(path)
        self._fh = open_text(self.path)

    def batches(self) -> Iterator[TextBatch]:
        import csv

        def items() -> Iterator[tuple[int, dict[str, Any] | RowError]]:
            with self._fh:
                reader = csv.DictReader(self._fh)
                needed = {"id", "date", "ticker", "original"}
                if not needed <= set(reader.fieldnames or ()):
                    raise SourceError(f"{self.path}: not a StockEmotions CSV (needs {', '.join(sorted(needed))})")
                for row in reader:
                    line = reader.line_num
                    date = (row.get("date") or "").strip()
                    yield (
                        line,
                        {
                            "id": row.get("id"),
                            "created_at": f"{date}T23:59:59-05:00" if date else None,
                            "text": row.get("original"),
                            "source": "stocktwits",
                            "symbols": [row["ticker"]] if row.get("ticker") else [],
                        },
                    )

        return batched(self.name, self.kind, items())
