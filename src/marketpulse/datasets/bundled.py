"""The small demo sample shipped inside the package (a StockNet subset; see ``sample/README.md``).

The sample lives in ``marketpulse/datasets/sample/stocknet`` in the StockNet layout of the shared data
folder (``price/raw/<T>.csv.gz``, ``tweet/preprocessed/<T>.jsonl.gz``, ``StockTable.tsv``), so the StockNet
reader reads it unchanged. Rebuild it with ``python scripts/make_demo_sample.py <data folder>``.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from marketpulse.errors import SourceError

DEMO_SYMBOLS: tuple[str, ...] = ("AAPL", "AMZN", "BAC", "FB", "GOOG", "MSFT")
"""Tickers in the sample (window 2014-05-01 .. 2014-07-31, prices and tweets)."""


def sample_path() -> Path:
    """The bundled sample folder as a real filesystem path (it holds ``stocknet/`` and ``README.md``).

    Raises :class:`~marketpulse.errors.SourceError` when the package is installed in a form with no
    directory on disk (e.g. imported from a zip) or the sample data was not installed.
    """
    resource = files("marketpulse.datasets") / "sample"
    if not isinstance(resource, Path):
        raise SourceError(f"the bundled sample is not on the filesystem ({resource!r}): install marketpulse unzipped")
    path = resource.resolve()
    if not (path / "stocknet").is_dir():
        raise SourceError(f"the bundled sample is missing at {path}: reinstall marketpulse with its package data")
    return path
