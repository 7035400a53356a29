"""``marketpulse train price`` and ``marketpulse evaluate price`` (registered in :mod:`marketpulse.cli`).

Known failures (a bad data folder, an unknown model or dataset) print one line on stderr and exit 2 (usage or
data) or 1, without a traceback. ``--json`` prints exactly one JSON object.
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

train_app = typer.Typer(no_args_is_help=True, help="Train models (registered with a model card under the data dir).")
out = Console()

Dataset = Annotated[str, typer.Option("--dataset", help="stocknet | spy | lobster")]
DataPath = Annotated[Path, typer.Option("--path", help="the dataset folder (or the SPY CSV file)")]
AsJson = Annotated[bool, typer.Option("--json", help="print one JSON object")]


def _registry() -> Any:
    from marketpulse.cli import state
    from marketpulse.predict.registry import Registry

    return Registry(state.settings().data_dir / "models")


def _params(items: list[str] | None) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param {item!r}: expected key=value")
        try:
            params[key] = json.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def _fail(error: Exception) -> None:
    sys.stderr.write(f"error: {error}\n")
    raise typer.Exit(2 if isinstance(error, ConfigError) else 1)


def _table(title: str, report: dict[str, Any]) -> Table:
    table = Table(title=title)
    for col in ("model", "accuracy", "mcc", "f1", "brier", "auc"):
        table.add_column(col, justify="right" if col != "model" else "left")

    def cell(r: dict[str, Any], k: str) -> str:
        v, sd = r.get(k), r.get("std", {}).get(k)
        if v is None:
            return "-"
        return f"{v:.4f} ± {sd:.4f}" if sd is not None else f"{v:.4f}"

    keys = ("accuracy", "mcc", "f1", "brier", "auc")
    table.add_row(f"ours ({report.get('seeds', 1)} seeds)", *(cell(report, k) for k in keys))
    if "ensemble" in report:
        table.add_row("ours, seed ensemble", *(cell(report["ensemble"], k) for k in keys))
    for name, r in report.get("baselines", {}).items():
        table.add_row(name, *(cell(r, k) for k in keys))
    table.caption = f"n = {report.get('n')}; balance {report.get('balance')}"
    return table


@train_app.command("price")
def train_price(
    dataset: Dataset,
    path: DataPath,
    model: Annotated[str, typer.Option("--model", help="lstm|gru|alstm|transformer|tcn|logreg|lgbm")] = "lstm",
    seeds: Annotated[int, typer.Option("--seeds", help="models trained with seeds 0..N-1")] = 5,
    name: Annotated[str | None, typer.Option("--name", help="registry name (default dataset-model-time)")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="hyper-parameter key=value (repeat)")] = None,
    no_text: Annotated[bool, typer.Option("--no-text", help="StockNet: prices only, no tweets")] = False,
    window: Annotated[int, typer.Option("--window", help="intraday: bars per input window")] = 30,
    horizon: Annotated[int, typer.Option("--horizon", help="intraday: bars ahead of the predicted move")] = 5,
    as_json: AsJson = False,
) -> None:
    """Train a price-movement model, print dev/test figures beside the baselines, register it."""
    from marketpulse.predict.train import DataOptions
    from marketpulse.predict.train import train_price as run

    try:
        options = DataOptions(text=not no_text, window=window, horizon=horizon)
        card = run(dataset, path, model, _registry(), seeds, name, _params(param), options)
    except (MarketPulseError, OSError) as e:
        _fail(e)
        return
    if as_json:
        print(json.dumps({"command": "train price", **card}, default=str))
        return
    out.print(
        f"registered [bold]{card['name']}[/] (version {card['version']}, {card['seeds']} seeds, "
        f"{card['train_seconds']} s)"
    )
    for split in ("dev", "test"):
        out.print(_table(f"{dataset} {split}", card["metrics"][split]))


def evaluate_price(
    dataset: Dataset,
    path: DataPath,
    model: Annotated[str, typer.Option("--model", help="registered name, or 'latest'")] = "latest",
    split: Annotated[str, typer.Option("--split", help="train | dev | test")] = "test",
    walk_forward: Annotated[
        int, typer.Option("--walk-forward", help="instead: K expanding-window folds, a fresh --kind model per fold")
    ] = 0,
    kind: Annotated[str, typer.Option("--kind", help="model kind for --walk-forward")] = "lgbm",
    seeds: Annotated[int, typer.Option("--seeds", help="seeds for --walk-forward")] = 3,
    as_json: AsJson = False,
) -> None:
    """Evaluate a registered model on any folder in the dataset's layout (figures over seeds, baselines beside);
    or, with --walk-forward, retrain per fold."""
    from marketpulse.predict.train import DataOptions, evaluate_registered, load_samples

    try:
        if walk_forward:
            from marketpulse.predict.evaluate import walk_forward_report
            from marketpulse.predict.train import KINDS

            if kind not in KINDS:
                raise ConfigError(f"--kind {kind!r}: allowed values are {', '.join(KINDS)}")
            whole = load_samples(dataset, path, DataOptions())
            report = {"model": kind, "dataset": dataset, "path": str(path), "split": "walk-forward"}
            report.update(walk_forward_report(whole, kind, walk_forward, seeds))
        else:
            registry = _registry()
            name = registry.latest() if model == "latest" else model
            if name is None:
                raise ConfigError(
                    f"no registered model under {registry.root}; train one with `marketpulse train price`"
                )
            report = evaluate_registered(registry, name, dataset, path, split)
    except (MarketPulseError, OSError) as e:
        _fail(e)
        return
    if as_json:
        print(json.dumps({"command": "evaluate price", **report}, default=str))
    else:
        out.print(_table(f"{report['model']} on {dataset} {report['split']}", report))
    sys.stdout.flush()
