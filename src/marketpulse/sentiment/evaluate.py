"""Evaluate a sentiment model on labelled text, next to a majority-class baseline (honest numbers).

Formats read by :func:`load_labelled` (chosen from the content, not the file name):

- **Financial PhraseBank** ``sentence@label`` lines, ISO-8859-1 (split on the last ``@``);
- **CSV** ``text,label`` (UTF-8) with label names ``negative|neutral|positive`` or the Twitter Financial News
  codes ``0`` = Bearish → negative, ``1`` = Bullish → positive, ``2`` = Neutral → neutral (the dataset card's map;
  codes are assumed when every label is 0, 1 or 2);
- **StockEmotions** CSV (``original``, ``senti_label``): ``bullish`` → positive, ``bearish`` → negative. The data has
  no neutral class (users tag every post bullish or bearish), so a model's "neutral" is always counted wrong there:
  expect lower numbers than on three-class sets; the confusion matrix shows how many.

A row with an unknown label raises :class:`~marketpulse.errors.SourceError` naming file and line: nothing is
silently dropped. Metrics (:func:`evaluate`): accuracy, macro-F1 (mean of per-class F1 over the labels in the truth
or the predictions), per-class precision/recall/F1/support, the confusion matrix (rows = true, columns = predicted,
label order :data:`~marketpulse.sentiment.base.LABELS`: negative, neutral, positive), ``n``, and the same accuracy
and macro-F1 for the majority-class baseline (always predicting the most frequent true label of the set).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from marketpulse.errors import SourceError
from marketpulse.sentiment.base import LABELS, SentimentModel
from marketpulse.sentiment.transformer import CARD_JSON, OOF_FILE

TWITTER_CODES = {"0": "negative", "1": "positive", "2": "neutral"}
STOCKEMOTIONS = {"bullish": "positive", "bearish": "negative"}


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise SourceError(f"{path}: no such file") from e
    except IsADirectoryError as e:
        raise SourceError(f"{path}: is a directory, expected a labelled file") from e
    except OSError as e:
        raise SourceError(f"{path}: cannot read ({e.strerror or e})") from e


def load_labelled(path: Path) -> tuple[list[str], list[str]]:
    """``(texts, labels)`` from a PhraseBank, ``text,label`` or StockEmotions file, or the FiQA posts / SemEval-2017
    headlines JSON (scores → labels at ±0.1, as the transformer's training; see the module docstring)."""
    path = Path(path)
    raw = _read(path)
    if raw.lstrip()[:1] in (b"{", b"["):  # FiQA posts ({id: {...}}) or SemEval-2017 headlines ([{...}]) JSON
        from marketpulse.sentiment.train import load_fiqa_posts, load_semeval_headlines

        loaded = load_fiqa_posts(path) if raw.lstrip()[:1] == b"{" else load_semeval_headlines(path)
        return list(loaded.texts), list(loaded.labels)
    first = raw.split(b"\n", 1)[0].strip().lower()
    header = [h.strip().strip('"') for h in first.decode("latin-1").split(",")]
    if "text" in header and "label" in header:
        return _load_csv(path, raw, "text", "label")
    if "original" in header and "senti_label" in header:
        return _load_csv(path, raw, "original", "senti_label")
    return _load_phrasebank(path, raw)


def _load_phrasebank(path: Path, raw: bytes) -> tuple[list[str], list[str]]:
    texts: list[str] = []
    labels: list[str] = []
    for line_no, line in enumerate(raw.decode("latin-1").splitlines(), start=1):
        if not line.strip():
            continue
        text, sep, label = line.rpartition("@")
        label = label.strip().lower()
        if not sep or label not in LABELS:
            raise SourceError(
                f"{path}:{line_no}: field label: expected 'sentence@negative|neutral|positive', got {line[-40:]!r}"
            )
        texts.append(text.strip())
        labels.append(label)
    if not texts:
        raise SourceError(f"{path}: no labelled sentences")
    return texts, labels


def _load_csv(path: Path, raw: bytes, text_col: str, label_col: str) -> tuple[list[str], list[str]]:
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise SourceError(f"{path}: not UTF-8 ({e.reason} at byte {e.start})") from e
    reader = csv.DictReader(io.StringIO(content, newline=""))
    reader.fieldnames = [f.strip().lower() for f in reader.fieldnames or ()]
    rows = [(reader.line_num, row) for row in reader]
    values = {(row.get(label_col) or "").strip().lower() for _, row in rows}
    if label_col == "senti_label":
        mapping = STOCKEMOTIONS
    elif values and values <= set(TWITTER_CODES):
        mapping = TWITTER_CODES
    else:
        mapping = {label: label for label in LABELS}
    texts: list[str] = []
    labels: list[str] = []
    for line_no, row in rows:
        value = (row.get(label_col) or "").strip().lower()
        if value not in mapping:
            known = ", ".join(sorted(mapping))
            raise SourceError(f"{path}:{line_no}: field {label_col}: unknown label {value!r} (known: {known})")
        texts.append(row.get(text_col) or "")
        labels.append(mapping[value])
    if not texts:
        raise SourceError(f"{path}: no labelled rows")
    return texts, labels


def _metrics(truth: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    index = {label: i for i, label in enumerate(LABELS)}
    matrix = [[0] * len(LABELS) for _ in LABELS]
    for t, p in zip(truth, predicted, strict=True):
        matrix[index[t]][index[p]] += 1
    present = [label for label in LABELS if label in set(truth) | set(predicted)]
    per_class: dict[str, dict[str, float]] = {}
    for label in LABELS:
        i = index[label]
        tp = matrix[i][i]
        predicted_n = sum(row[i] for row in matrix)
        support = sum(matrix[i])
        precision = tp / predicted_n if predicted_n else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": support}
    n = len(truth)
    return {
        "accuracy": sum(matrix[i][i] for i in range(len(LABELS))) / n if n else 0.0,
        "macro_f1": sum(per_class[label]["f1"] for label in present) / len(present) if present else 0.0,
        "weighted_f1": sum(per_class[lab]["f1"] * per_class[lab]["support"] for lab in LABELS) / n if n else 0.0,
        "per_class": per_class,
        "confusion": {"labels": list(LABELS), "rows": "true", "columns": "predicted", "matrix": matrix},
    }


def evaluate(
    model: SentimentModel,
    texts: Sequence[str],
    labels: Sequence[str],
    predicted: Sequence[str] | None = None,
    elapsed: float | None = None,
) -> dict[str, Any]:
    """Score ``texts`` with ``model`` (or take ``predicted``, scored in ``elapsed`` seconds) and compare with
    ``labels`` (see the module docstring for the metrics; also ``weighted_f1``: per-class F1 weighted by true
    support, as scikit-learn's ``average="weighted"``). ``texts_per_s`` is None when ``predicted`` comes without
    ``elapsed``."""
    if len(texts) != len(labels):
        raise ValueError(f"{len(texts)} texts but {len(labels)} labels")
    unknown = set(labels) - set(LABELS)
    if unknown:
        raise ValueError(f"unknown labels {sorted(unknown)}: expected {', '.join(LABELS)}")
    if predicted is None:
        start = time.perf_counter()
        predicted = model.predict(texts)
        elapsed = time.perf_counter() - start
    result: dict[str, Any] = {"model": model.name, "n": len(texts), **_metrics(labels, predicted)}
    counts = Counter(labels)
    majority = max(LABELS, key=lambda label: (counts[label], label == "neutral")) if labels else "neutral"
    baseline = _metrics(labels, [majority] * len(labels))
    result["baseline"] = {
        "name": "majority",
        "label": majority,
        "accuracy": baseline["accuracy"],
        "macro_f1": baseline["macro_f1"],
        "weighted_f1": baseline["weighted_f1"],
    }
    result["label_counts"] = {label: counts[label] for label in LABELS}
    result["texts_per_s"] = len(texts) / elapsed if elapsed else None
    return result


def run_evaluate(data: Path, model: str = "lexicon") -> dict[str, Any]:
    """Load ``data``, build the model called ``model``, evaluate; the dict the CLI prints (``--json``).

    For a trained model (``transformer``, ``transformer-fast``, ``ensemble``, shipped or a user's head trained by
    ``marketpulse train sentiment``) every text of ``data`` that trained the head is predicted **out of fold**
    (:func:`held_out_predictions`: by the cross-validation run that held it out), the others by the model itself;
    ``evaluation`` says how many of each, and ``in_sample`` keeps the model's own figures on the whole file for
    comparison. ``texts_per_s`` is the model's own speed over the whole file."""
    from marketpulse.sentiment import build_sentiment_model

    texts, labels = load_labelled(Path(data))
    built = build_sentiment_model(model)
    start = time.perf_counter()
    predicted = built.predict(texts)
    elapsed = time.perf_counter() - start
    held = held_out_predictions(built, texts)
    n_cv = sum(p is not None for p in held) if held is not None else 0
    mixed = [h if h is not None else p for h, p in zip(held, predicted, strict=True)] if n_cv and held else predicted
    out = {"data": str(data), **evaluate(built, texts, labels, mixed, elapsed)}
    if n_cv:
        inside = _metrics(labels, predicted)
        out["evaluation"] = (
            f"{n_cv} of {len(texts)} texts trained the model: they are predicted out of fold (cross-validated, "
            f"the model retrained without them); the other {len(texts) - n_cv} are out-of-sample"
        )
        out["cross_validated_texts"] = n_cv
        out["in_sample"] = {k: inside[k] for k in ("accuracy", "macro_f1", "weighted_f1")}
    elif held is not None:
        out["evaluation"] = "out-of-sample: no text of this file trained the model"
    elif built.name.startswith(("transformer", "ensemble")):
        out["evaluation"] = (
            "out-of-sample unless this data trained the head: no out-of-fold record beside the head to check "
            f"({OOF_FILE} with a model card of the same head)"
        )
    return out


def trained_head(model: SentimentModel) -> Path | None:
    """The head file a ``transformer`` / ``ensemble`` model runs (shipped or configured); None for other models."""
    from marketpulse.sentiment.ensemble import EnsembleSentiment
    from marketpulse.sentiment.transformer import TransformerSentiment

    if isinstance(model, EnsembleSentiment):
        model = model.transformer
    return model.head_path if isinstance(model, TransformerSentiment) else None


def held_out_predictions(model: SentimentModel, texts: Sequence[str]) -> list[str | None] | None:
    """Per text, the label ``model`` (a ``transformer`` or ``ensemble``) gives it **out of fold** when the text
    trained its head (``None`` for the other texts). The record is the out-of-fold file beside the head, used only
    when the model card beside it names this very head (sha256); ``None`` overall for other models and heads
    without such a record."""
    import numpy as np

    from marketpulse.sentiment.ensemble import EnsembleSentiment
    from marketpulse.sentiment.train import OutOfFold, text_keys
    from marketpulse.sentiment.transformer import file_sha256

    head = trained_head(model)
    if head is None or not (head.parent / OOF_FILE).is_file() or not (head.parent / CARD_JSON).is_file():
        return None
    try:
        card = json.loads((head.parent / CARD_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if card.get("head_sha256") != file_sha256(head):
        return None
    oof = OutOfFold.load(head.parent / OOF_FILE)
    row_of = {int(k): i for i, k in enumerate(oof.keys.tolist())}
    rows = np.array([row_of.get(int(k), -1) for k in text_keys(texts).tolist()], dtype=np.int64)
    usable = rows >= 0
    usable[usable] = (oof.fold[rows[usable]] >= 0) & np.isfinite(oof.logits[rows[usable]]).all(axis=1)
    out: list[str | None] = [None] * len(texts)
    if isinstance(model, EnsembleSentiment):
        fold_of = np.where(usable, oof.fold[np.maximum(rows, 0)], -1)
        for k in sorted(set(fold_of[usable].tolist()) & set(model.stackers.folds)):
            idx = np.flatnonzero(fold_of == k)
            p = model.probabilities([texts[i] for i in idx.tolist()], logits=oof.logits[rows[idx]], fold=int(k))
            for i, label in zip(idx.tolist(), p.argmax(axis=1).tolist(), strict=True):
                out[i] = LABELS[label]
    else:
        for i in np.flatnonzero(usable).tolist():
            out[i] = LABELS[int(oof.logits[rows[i]].argmax())]
    return out
