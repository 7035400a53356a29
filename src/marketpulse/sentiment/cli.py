"""``marketpulse train sentiment``: the command function, registered by :mod:`marketpulse.cli`
(``train_app.command("sentiment")(train_sentiment)``).

Known failures (a missing data file, an unknown set, no ``ml`` extra) print one line on stderr and exit 2 (usage or
configuration) or 1, without a traceback. ``--json`` prints exactly one JSON object; progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from marketpulse.errors import ConfigError, MarketPulseError

out = Console()
err = Console(stderr=True)

SETS = ("phrasebank", "twitter", "fiqa", "stockemotions")
DEFAULT_SETS = ("phrasebank", "twitter", "fiqa")  # = train.DEFAULT_INCLUDE (not imported: torch-free CLI import)


def _fail(error: Exception) -> None:
    sys.stderr.write(f"error: {error}\n")
    raise typer.Exit(2 if isinstance(error, ConfigError) else 1)


def train_sentiment(
    data: Annotated[Path, typer.Option("--data", help="shared data root; the paths below default under it")] = Path(
        "../shared/data"
    ),
    phrasebank: Annotated[
        Path | None, typer.Option(help="PhraseBank 50Agree file [default: DATA/financial_phrasebank/…50Agree.txt]")
    ] = None,
    allagree: Annotated[
        Path | None, typer.Option(help="PhraseBank AllAgree file, scored from the 50Agree CV (not trained on again)")
    ] = None,
    twitter: Annotated[
        Path | None, typer.Option(help="twitter financial news sent_train.csv [default under DATA]")
    ] = None,
    fiqa: Annotated[
        Path | None, typer.Option(help="folder with FiQA_post.json and SemEval2017Task5Headlines.json")
    ] = None,
    stockemotions: Annotated[
        Path | None, typer.Option(help="folder with train_stockemo.csv and val_stockemo.csv")
    ] = None,
    include: Annotated[
        str, typer.Option(help="comma-separated training sets: phrasebank,twitter,fiqa,stockemotions")
    ] = ",".join(DEFAULT_SETS),
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="where the head and model card go [default: the package assets]")
    ] = None,
    encoder: Annotated[
        Path | None, typer.Option(help="local Hugging Face model folder [default: bundled all-MiniLM-L6-v2]")
    ] = None,
    folds: Annotated[int, typer.Option(help="cross-validation folds (0 = skip CV, just train)")] = 10,
    encoder_layers: Annotated[
        int | None, typer.Option(help="keep the encoder's first k layers only (faster model) [default: all]")
    ] = None,
    finetune_layers: Annotated[int, typer.Option(help="top encoder layers fine-tuned (0 = linear head only)")] = 6,
    epochs: Annotated[int, typer.Option(help="epochs per training run")] = 3,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = 1e-4,
    head_lr: Annotated[float | None, typer.Option(help="peak learning rate of the linear head [default: --lr]")] = None,
    bf16: Annotated[
        bool, typer.Option("--bf16/--fp32", help="bf16 autocast in training (~1.6x faster on CPUs with native bf16)")
    ] = False,
    stockemotions_max: Annotated[int, typer.Option(help="StockEmotions posts sampled (-1 = all)")] = 2000,
    seed: Annotated[int, typer.Option(help="seed of sampling, folds and training")] = 2024,
    threads: Annotated[int | None, typer.Option(help="torch threads per training job [default: CPUs/workers]")] = None,
    workers: Annotated[int | None, typer.Option(help="training jobs run at once [default: min(2, CPUs)]")] = None,
    ensemble_only: Annotated[
        bool,
        typer.Option(
            "--ensemble-only",
            help="only refit the lexicon + transformer stacker of the head in --out from its saved out-of-fold logits",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Train the transformer sentiment head on financial text, cross-validate it, write head + model card, and fit
    the calibrated lexicon + transformer ensemble on the out-of-fold logits."""
    try:
        from marketpulse.sentiment.train import DEFAULT_PATHS, TrainConfig, train

        names = tuple(s.strip() for s in include.split(",") if s.strip())
        unknown = sorted(set(names) - set(SETS))
        if unknown or not names:
            raise ConfigError(f"--include {include!r}: expected a comma-separated subset of {', '.join(SETS)}")
        if folds == 1 or folds < 0:
            raise ConfigError(f"--folds {folds}: expected 0 (no CV) or at least 2")
        config = TrainConfig(
            encoder=encoder,
            encoder_layers=encoder_layers,
            finetune_layers=finetune_layers,
            epochs=epochs,
            lr=lr,
            head_lr=head_lr,
            bf16=bf16,
            seed=seed,
            threads=threads,
            workers=workers,
            stockemotions_max=None if stockemotions_max < 0 else stockemotions_max,
        )
        paths = {
            key: value
            for key, value in {
                "phrasebank": phrasebank,
                "phrasebank_allagree": allagree or data / DEFAULT_PATHS["phrasebank_allagree"],
                "twitter": twitter,
                "fiqa": fiqa,
                "stockemotions": stockemotions,
            }.items()
            if value is not None
        }
        if ensemble_only:
            from marketpulse.sentiment.train_ensemble import refit
            from marketpulse.sentiment.transformer import assets_dir

            fitted = refit(data, out_dir or assets_dir(), paths)
            _print_ensemble(fitted, as_json)
            return
        result = train(
            data,
            out_dir,
            config,
            folds=folds,
            include=names,
            paths=paths,
            progress=lambda message: err.print(f"[dim]{message}[/]", highlight=False),
        )
    except ValueError as e:  # pydantic validation of the options
        _fail(ConfigError(str(e)))
        return
    except (MarketPulseError, OSError) as e:
        _fail(e)
        return
    report = result.report
    if as_json:
        sys.stdout.write(json.dumps({"command": "train sentiment", **report}, default=str) + "\n")
        sys.stdout.flush()
        return
    out.print(f"wrote [bold]{result.head}[/] ({report['head_bytes']:,} bytes) and {result.card}")
    cv = report.get("cross_validation")
    if cv:
        table = Table(title=f"{cv['folds']}-fold cross-validated")
        for col in ("dataset", "n", "accuracy", "macro F1", "weighted F1"):
            table.add_column(col, justify="left" if col == "dataset" else "right")
        for name, m in cv["datasets"].items():
            figures = (m["accuracy"], m["macro_f1"], m["weighted_f1"])
            table.add_row(name, f"{m['n']:,}", *(f"{v:.4f}" for v in figures))
        out.print(table)
    out.print(f"seconds: {report['seconds']}")
    if report.get("ensemble"):
        _print_ensemble({"metrics": report["ensemble"]}, False)


def _print_ensemble(fitted: dict[str, object], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"command": "train sentiment --ensemble-only", **fitted}, default=str) + "\n")
        sys.stdout.flush()
        return
    metrics = fitted["metrics"]
    assert isinstance(metrics, dict)
    table = Table(title="accuracy, out of fold (ensemble: nested)")
    for col in ("dataset", "n", "lexicon", "transformer", "ensemble"):
        table.add_column(col, justify="left" if col == "dataset" else "right")
    for name, m in metrics.items():
        table.add_row(name, f"{m['n']:,}", *(f"{m[k]['accuracy']:.4f}" for k in ("lexicon", "transformer", "ensemble")))
    out.print(table)


__all__ = ["train_sentiment"]
