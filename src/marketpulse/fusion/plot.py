"""The equity-curve picture of a backtest (PNG), drawn with matplotlib (the ``report`` extra)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from marketpulse.errors import MissingDependencyError


def plot_equity(equity: pd.DataFrame, path: Path, title: str = "Equity (net of costs)") -> Path:
    """Write one line per strategy column of ``equity`` (indexed by time, starting at 1) to the PNG ``path``."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display: files only
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise MissingDependencyError("matplotlib", "report") from e
    fig, ax = plt.subplots(figsize=(10, 5), dpi=100)
    try:
        for name in equity.columns:
            ax.plot(equity.index, equity[name], label=str(name), linewidth=2.0 if name == "fused" else 1.2)
        ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
        ax.set_title(title)
        ax.set_ylabel("growth of 1")
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        fig.autofmt_xdate()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, format="png")
    finally:
        plt.close(fig)
    return path
