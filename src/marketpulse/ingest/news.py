"""News sources: the Benzinga headlines CSV and JSONL articles (see :mod:`marketpulse.ingest.social`)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from marketpulse.errors import SourceError
from marketpulse.ingest.base import RowError, TextBatch, TextKind
from marketpulse.ingest.social import batched, open_text
from marketpulse.ingest.timeparse import parse_one


class BenzingaSource:
    """Benzinga headlines (``id,title,date,stock``; dates US/Eastern with offset), replayed oldest first.

    The file is ordered by ticker then date descending; records are sorted by publication time (stable) so a
    replay moves forward in time. Positions keep the original line numbers.
    """

    kind: TextKind = "news"

    def __init__(self, path: Path) -> None:
        self.path, self.name = Path(path), str(path)
        self._fh = open_text(self.path)

    def batches(self) -> Iterator[TextBatch]:
        with self._fh:
            reader = csv.DictReader(self._fh)
            needed = {"title", "date", "stock"}
            if not needed <= set(reader.fieldnames or ()):
                raise SourceError(f"{self.path}: not a Benzinga headlines CSV (needs {', '.join(sorted(needed))})")
            rows: list[tuple[float, int, dict[str, Any] | RowError]] = []
            for row in reader:
                line = reader.line_num
                if None in row:  # more fields than the header
                    rows.append((float("-inf"), line, RowError(line, "*", "bad_row", str(row), "too many fields")))
                    continue
                rec = {
                    "id": row.get("id") or f"line{line}",
                    "created_at": row.get("date"),
                    "text": row.get("title"),
                    "title": row.get("title"),
                    "source": "benzinga",
                    "symbols": [row["stock"]] if row.get("stock") else [],
                }
                ts = parse_one(row.get("date"))
                rows.append((ts.timestamp() if ts else float("-inf"), line, rec))
        rows.sort(key=lambda r: r[0])
        return batched(self.name, self.kind, ((line, item) for _, line, item in rows))
