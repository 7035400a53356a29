"""What every source yields, before validation.

A *source* reads one input (a file, a folder in a known layout, a live feed) and yields batches in source
order. It never raises for a bad record: a record it cannot parse becomes a :class:`RowError` with its
position, and is counted in ``read``. It raises :class:`~marketpulse.errors.SourceError` only when the input
cannot be read at all (missing file, no header, unknown layout), before yielding anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd

MarketKind = Literal["bars", "ticks"]
TextKind = Literal["posts", "news"]
Kind = Literal["bars", "ticks", "posts", "news"]


@dataclass(frozen=True, slots=True)
class RowError:
    """A record that failed before validation: ``line`` is 1-based in the source, ``field`` the column
    (``"*"`` for the whole row), ``record`` the raw text."""

    line: int
    field: str
    reason: str
    record: str
    detail: str = ""
    file: str = ""  # a file inside a folder source (StockNet), named in the position


@dataclass
class MarketBatch:
    """Parsed market rows, columnar.

    ``frame`` has ``ts`` (datetime64[ns, UTC], NaT where unparsable), ``symbol`` and the numeric columns of
    the kind (NaN where unparsable). ``bad`` maps a column to a boolean mask of cells that could not be parsed
    (reason ``bad_number`` / ``bad_timestamp`` / ``missing_value`` in ``bad_reason``). ``lines`` gives each row's
    1-based line. ``errors`` holds rows that never made it into ``frame``. ``read = len(frame) + len(errors)``.
    """

    source: str
    kind: MarketKind
    frame: pd.DataFrame
    lines: np.ndarray
    raw_line: Callable[[int], str]
    errors: list[RowError] = field(default_factory=list)
    bad: dict[str, np.ndarray] = field(default_factory=dict)
    bad_reason: dict[str, str] = field(default_factory=dict)
    interval_s: int = 60
    synthetic: bool = False
    distinct: bool = False  # every row is a distinct event (LOBSTER messages): equal ticks are not duplicates

    @property
    def read(self) -> int:
        return len(self.frame) + len(self.errors)


@dataclass
class TextBatch:
    """Raw text records (posts or news): ``records`` are ``(line, fields)`` with fields as read (strings,
    lists, numbers) under the canonical names ``id, created_at, text, source, author, symbols, engagement,
    url, title``. ``read = len(records) + len(errors)``."""

    source: str
    kind: TextKind
    records: list[tuple[int, dict[str, Any]]]
    errors: list[RowError] = field(default_factory=list)

    @property
    def read(self) -> int:
        return len(self.records) + len(self.errors)


class MarketSource(Protocol):
    kind: MarketKind
    name: str

    def batches(self) -> Iterator[MarketBatch]: ...


class TextSource(Protocol):
    kind: TextKind
    name: str

    def batches(self) -> Iterator[TextBatch]: ...
