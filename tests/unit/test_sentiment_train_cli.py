"""`marketpulse train sentiment`: its defaults are the shipped head's recipe, and model cards print real options."""

from __future__ import annotations

import click
import typer

from marketpulse.sentiment.cli import DEFAULT_SETS, train_sentiment
from marketpulse.sentiment.train import DEFAULT_INCLUDE, TrainConfig, reproduce_command
from marketpulse.sentiment.transformer import model_card


def _options() -> dict[str, click.Parameter]:
    app = typer.Typer()
    app.command()(train_sentiment)
    return {p.name: p for p in typer.main.get_command(app).params if p.name}


def test_cli_defaults_are_the_train_config_defaults() -> None:
    defaults = TrainConfig()
    options = _options()
    for name in ("encoder_layers", "finetune_layers", "epochs", "lr", "head_lr", "bf16", "seed", "stockemotions_max"):
        assert options[name].default == getattr(defaults, name), name
    assert DEFAULT_SETS == DEFAULT_INCLUDE


def test_reproduce_command_names_only_changed_options_and_real_flags() -> None:
    base = TrainConfig().model_dump(mode="json")
    assert reproduce_command(base, [{"name": s} for s in ("phrasebank", "twitter", "fiqa_posts")]) == (
        "marketpulse train sentiment --data ../shared/data"
    )
    changed = {**base, "finetune_layers": 2, "head_lr": 0.001, "bf16": not base["bf16"], "encoder_layers": 3}
    command = reproduce_command(changed, [{"name": "phrasebank"}], folds=5)
    assert "--include phrasebank" in command and "--finetune-layers 2" in command and "--head-lr 0.001" in command
    assert (
        "--encoder-layers 3" in command
        and "--folds 5" in command
        and ("--fp32" if base["bf16"] else "--bf16") in command
    )
    flags = {opt for p in _options().values() for opt in (*p.opts, *getattr(p, "secondary_opts", []))}
    assert {word for word in command.split() if word.startswith("--")} <= flags


def test_shipped_cards_reproduce_with_todays_options() -> None:
    for variant in ("accurate", "fast"):
        card = model_card(variant)
        command = reproduce_command(card["hyper_parameters"], card["training_sets"])
        assert card["reproduce"].split(" --out ")[0] == command, variant
    bare = "marketpulse train sentiment --data ../shared/data"
    assert model_card()["reproduce"] in (bare, bare + " --bf16"), "defaults = the shipped head (bf16 is opt-in)"
