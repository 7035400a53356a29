"""``marketpulse evaluate fusion`` and ``marketpulse backtest`` (registered in :mod:`marketpulse.cli`).

Known failures (a bad data folder, an unknown split, kind or dataset, a missing extra) print one line on stderr and
exit 2 (usage or configuration) or 1, without a traceback. ``--json`` prints exactly one JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from marketpulse.errors import ConfigError, MarketPulseError
from marketpulse.predict.cli import AsJson, DataPath, _fail, _params

out = Console()

Dataset = Annotated[str, typer.Option("--dataset", help="stocknet (prices and tweets)")]
Split = Annotated[str, typer.Option("--split", help="dev | test (train fits the inputs)")]
Kind = Annotated[str, typer.Option("--kind", help="price model kind (lgbm, logreg, lstm, …)")]
Seeds = Annotated[int, typer.Option("--seeds", help="price-model seeds (figures are mean ± std over them)")]
Params = Annotated[list[str] | None, typer.Option("--param", help="price-model hyper-parameter key=value")]
Tickers = Annotated[str | None, typer.Option("--tickers", help="comma-separated subset of the dataset's tickers")]
Method = Annotated[str, typer.Option("--method", help="hedge (linear pool) | stacking (online logistic on logits)")]
FusionParams = Annotated[
    list[str] | None,
    typer.Option("--fusion-param", help="fusion setting key=value (eta, decay, lr, prior, …; see docs/fusion.md)"),
]
SentimentModelOpt = Annotated[
    str,
    typer.Option(
        "--sentiment-model", help="scores the tweets: lexicon | transformer | transformer-fast | ensemble (cached)"
    ),
]


def _check(dataset: str, seeds: int) -> None:
    if dataset != "stocknet":
        raise ConfigError(f"--dataset {dataset!r}: allowed values are stocknet (fusion needs prices and text)")
    if seeds < 1:
        raise ConfigError(f"--seeds {seeds}: expected at least 1")


def _fusion(method: str, items: list[str] | None) -> Any:
    from pydantic import ValidationError

    from marketpulse.config_errors import format_validation_error
    from marketpulse.fusion.ensemble import FusionConfig
    from marketpulse.fusion.evaluate import INPUTS

    if method not in ("hedge", "stacking"):
        raise ConfigError(f"--method {method!r}: allowed values are hedge, stacking")
    try:
        return FusionConfig.model_validate({"inputs": INPUTS, **_params(items), "method": method})
    except ValidationError as e:
        raise ConfigError(
            format_validation_error(e, FusionConfig, "--fusion-param").replace("config error: ", "")
        ) from e


def _text(sentiment_model: str) -> Any:
    from marketpulse.cli import state
    from marketpulse.fusion.evaluate import TextOptions
    from marketpulse.services.base import default_cache_dir

    return TextOptions(sentiment_model, default_cache_dir(state.settings()))


def _tickers(raw: str | None) -> list[str] | None:
    return [t.strip() for t in raw.split(",") if t.strip()] if raw else None


def _emit(command: str, report: dict[str, Any], as_json: bool, table: Table) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"command": command, **report}, default=str) + "\n")
    else:
        out.print(table)
    sys.stdout.flush()


def evaluate_fusion(
    dataset: Dataset = "stocknet",
    path: DataPath = Path("../shared/data/stocknet"),
    split: Split = "test",
    kind: Kind = "lgbm",
    seeds: Seeds = 3,
    param: Params = None,
    tickers: Tickers = None,
    method: Method = "hedge",
    fusion_param: FusionParams = None,
    sentiment_model: SentimentModelOpt = "lexicon",
    as_json: AsJson = False,
) -> None:
    """MCC and accuracy of price-only, sentiment-only and the fused signal on a time-ordered split, over seeds."""
    try:
        _check(dataset, seeds)
        from marketpulse.fusion.evaluate import fusion_report

        report = fusion_report(
            path,
            split,
            kind,
            seeds,
            _params(param),
            config=_fusion(method, fusion_param),
            tickers=_tickers(tickers),
            text=_text(sentiment_model),
        )
    except (MarketPulseError, OSError) as e:
        _fail(e)
        return
    title = f"{method} fusion on {dataset} {split} ({report['n']} samples, {seeds} seeds, {sentiment_model} tweets)"
    table = Table(title=title)
    for col in ("signal", "accuracy", "mcc", "brier"):
        table.add_column(col, justify="left" if col == "signal" else "right")
    for name in ("price_only", "sentiment_only", "fused"):
        r = report[name]
        table.add_row(name, *(f"{r[k]:.4f} ± {r['std'][k]:.4f}" for k in ("accuracy", "mcc", "brier")))
    for name, r in report["baselines"].items():
        table.add_row(name, *(f"{r[k]:.4f}" for k in ("accuracy", "mcc", "brier")))
    table.caption = report["verdict"]
    _emit("evaluate fusion", report, as_json, table)


def backtest_command(
    dataset: Dataset = "stocknet",
    path: DataPath = Path("../shared/data/stocknet"),
    split: Split = "test",
    kind: Kind = "lgbm",
    seeds: Seeds = 3,
    param: Params = None,
    tickers: Tickers = None,
    method: Method = "hedge",
    fusion_param: FusionParams = None,
    sentiment_model: SentimentModelOpt = "lexicon",
    cost_bps: Annotated[float, typer.Option("--cost-bps", help="costs per unit traded, basis points")] = 5.0,
    slippage_bps: Annotated[float, typer.Option("--slippage-bps", help="slippage per unit traded, bps")] = 0.0,
    long_above: Annotated[float, typer.Option("--long-above", help="long when p(up) >= this")] = 0.55,
    short_below: Annotated[float, typer.Option("--short-below", help="short when p(up) <= this")] = 0.45,
    long_only: Annotated[bool, typer.Option("--long-only", help="never short (flat instead)")] = False,
    plot: Annotated[Path | None, typer.Option("--plot", help="write the equity curves to this PNG")] = None,
    as_json: AsJson = False,
) -> None:
    """Walk-forward backtest of price-only, sentiment-only and fused signals with costs, beside buy-and-hold."""
    try:
        _check(dataset, seeds)
        from marketpulse.fusion.backtest import BacktestConfig
        from marketpulse.fusion.evaluate import backtest_report

        try:
            costs = BacktestConfig(
                cost_bps=cost_bps,
                slippage_bps=slippage_bps,
                long_above=long_above,
                short_below=short_below,
                allow_short=not long_only,
            )
        except ValueError as e:
            raise ConfigError(f"backtest options: {e}") from e
        report = backtest_report(
            path,
            split,
            kind,
            seeds,
            _params(param),
            config=_fusion(method, fusion_param),
            costs=costs,
            tickers=_tickers(tickers),
            text=_text(sentiment_model),
        )
        equity = report.pop("equity")
        if plot is not None:
            from marketpulse.fusion.plot import plot_equity

            title = f"{dataset} {split}: equity net of {cost_bps + slippage_bps:g} bps per unit traded"
            report["plot"] = str(plot_equity(equity, plot, title))
    except (MarketPulseError, OSError) as e:
        _fail(e)
        return
    table = Table(title=f"backtest on {dataset} {split} ({report['days']} days, {report['tickers']} tickers)")
    keys = ("total_return", "annualised_return", "sharpe", "max_drawdown", "hit_rate", "turnover_per_year")
    table.add_column("strategy")
    for k in keys:
        table.add_column(k, justify="right")
    for name, r in report["strategies"].items():
        table.add_row(name, *("-" if r[k] is None else f"{r[k]:.4f}" for k in keys))
    _emit("backtest", report, as_json, table)


__all__ = ["backtest_command", "evaluate_fusion"]
