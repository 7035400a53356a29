"""Evaluating the transformer on data that trained it reports the card's cross-validated figures beside, and says so."""

from __future__ import annotations

from pathlib import Path

from marketpulse.sentiment.evaluate import trained_on
from marketpulse.sentiment.transformer import model_card


def test_training_files_map_to_their_cross_validated_figures(tmp_path: Path) -> None:
    card = model_card()
    pb = trained_on(Path("../shared/data/financial_phrasebank/Sentences_50Agree.txt"))
    assert pb is not None and pb == card["metrics"]["phrasebank"] and "cross-validated" in pb["evaluation"]
    allagree = trained_on(Path("x/financial_phrasebank/Sentences_AllAgree.txt"))
    assert allagree is not None and allagree["n"] == card["metrics"]["phrasebank_allagree"]["n"]
    trained_sets = {s["name"] for s in card["training_sets"]}
    stockemotions = trained_on(Path("x/stockemotions/tweet/train_stockemo.csv"))
    assert (stockemotions is not None) == ("stockemotions" in trained_sets)
    assert trained_on(Path("x/stockemotions/tweet/test_stockemo.csv")) is None, "held-out test file: out of sample"
    assert trained_on(tmp_path / "mine.csv") is None


def test_the_card_names_no_absolute_paths() -> None:
    card = model_card()
    assert all(not str(s["source"]).startswith("/") for s in card["training_sets"])
