"""Fit the ensemble's stacker from the transformer's out-of-fold logits and write ``minilm_fin_ensemble.json``.

Called at the end of :func:`marketpulse.sentiment.train.train` (same process, same sets), or alone by
``marketpulse train sentiment --ensemble-only`` (:func:`refit`), which reloads the training sets the head's card
names, checks them against the saved out-of-fold file text by text, and fits again — seconds, not the hour the
transformer's cross-validation takes. See :mod:`marketpulse.sentiment.ensemble` for the model and the protocol.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from marketpulse.errors import ConfigError, SourceError
from marketpulse.sentiment.base import LABELS
from marketpulse.sentiment.ensemble import (
    ENSEMBLE_FORMAT,
    ENSEMBLE_JSON,
    FEATURES,
    calibration,
    features,
    fit_ensemble,
    softmax,
)
from marketpulse.sentiment.train import (
    OOF_FILE,
    LabelledSet,
    OutOfFold,
    _allagree_report,
    _portable,
    _set_report,
    load_training_sets,
    text_keys,
)
from marketpulse.sentiment.transformer import CARD_JSON, HEAD_FILE, file_sha256

STACKER_C = 1.0
"""Inverse L2 strength of the stacker (scikit-learn's ``C``): 7 features, ~15,000 rows — barely binding."""


def write_ensemble(
    sets: Sequence[LabelledSet], held_out: OutOfFold, out: Path, allagree: Path | None = None
) -> dict[str, Any]:
    """Fit the stacker on ``held_out`` (rows of the pooled ``sets``, in order), write ``out/ENSEMBLE_JSON`` for the
    head in ``out``; returns the file's content (figures of lexicon, transformer and ensemble side by side)."""
    from marketpulse.sentiment.lexicon import LexiconModel

    started = time.perf_counter()
    texts = [t for s in sets for t in s.texts]
    if len(texts) != len(held_out.labels) or not np.array_equal(text_keys(texts), held_out.keys):
        raise SourceError(
            "the training texts differ from the ones the out-of-fold file was made from: retrain, or pass the same "
            "data, sets and --stockemotions-max as the head's card records"
        )
    lexicon = LexiconModel().score(texts)
    x = features(lexicon, held_out.logits)
    y = held_out.labels
    usable = (held_out.fold >= 0) & ~np.isnan(held_out.logits).any(axis=1)
    fold = np.where(usable, held_out.fold, -1)
    final, per_fold, oof = fit_ensemble(x, y, fold, STACKER_C)
    lex_p = np.array([(s.negative, s.neutral, s.positive) for s in lexicon])
    models = {"lexicon": np.log(np.clip(lex_p, 1e-12, 1)), "transformer": held_out.logits, "ensemble": np.log(oof)}
    datasets: dict[str, Any] = {}
    for k, s in enumerate(sets):
        rows = np.flatnonzero((held_out.owner == k) & usable)
        if not len(rows):
            continue
        entry: dict[str, Any] = {"n": len(rows), "source": _portable(s.source)}
        for name, scores in models.items():
            entry[name] = _set_report(s, y[rows], scores[rows])
        datasets[s.name] = entry
        if s.name == "phrasebank" and allagree is not None and Path(allagree).is_file():
            pb: dict[str, Any] = {"source": _portable(str(allagree))}
            for name, scores in models.items():
                report = _allagree_report(s, y[rows], scores[rows], Path(allagree), 0)
                pb["n"] = report["n"]
                pb[name] = {k2: v for k2, v in report.items() if k2 not in ("source", "evaluation")}
            datasets["phrasebank_allagree"] = pb
    head = out / HEAD_FILE
    content: dict[str, Any] = {
        "format": ENSEMBLE_FORMAT,
        "model": "marketpulse ensemble sentiment (name 'ensemble'): lexicon + transformer through a stacker",
        "head_file": HEAD_FILE,
        "head_sha256": file_sha256(head) if head.is_file() else "",
        "features": list(FEATURES),
        "labels": list(LABELS),
        "stacker": final.to_json(),
        "fold_stackers": {str(k): v.to_json() for k, v in per_fold.items()},
        "regularisation": {"C": STACKER_C, "penalty": "l2"},
        "protocol": (
            "transformer features are out-of-fold logits (the fold run that never saw the text); the shipped stacker "
            "is fitted on all of them; the ensemble's figures are nested out-of-fold: fold k scored by a stacker "
            "fitted on the other folds' rows; the lexicon is not trained, its figures are plain"
        ),
        "rows": int(usable.sum()),
        "calibration": {
            "transformer": calibration(softmax(held_out.logits[usable]), y[usable]),
            "ensemble": calibration(oof[usable], y[usable]),
            "note": "top-label ECE (15 bins), mean log-loss and Brier score over all out-of-fold rows",
        },
        "metrics": datasets,
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / ENSEMBLE_JSON).write_text(json.dumps(content, indent=1) + "\n", encoding="utf-8")
    return content


_SET_TO_INCLUDE = {"phrasebank": "phrasebank", "twitter": "twitter", "fiqa_posts": "fiqa",
                   "semeval_headlines": "fiqa", "stockemotions": "stockemotions"}  # fmt: skip


def refit(data: Path, out: Path, paths: dict[str, Path] | None = None) -> dict[str, Any]:
    """Refit the stacker of the head in ``out`` from its saved out-of-fold file and the training sets under
    ``data`` (the card's sets, sample size and seed). ``paths`` overrides set locations as in training."""
    paths = paths or {}
    out = Path(out)
    oof_path, card_path = out / OOF_FILE, out / CARD_JSON
    for p in (oof_path, card_path):
        if not p.is_file():
            raise ConfigError(f"{p}: missing; --ensemble-only needs a head trained with cross-validation (--folds ≥ 2)")
    held_out = OutOfFold.load(oof_path)
    card = json.loads(card_path.read_text(encoding="utf-8"))
    hp = card.get("hyper_parameters", {})
    include = tuple(dict.fromkeys(_SET_TO_INCLUDE[name] for name in held_out.sets))
    sets = load_training_sets(Path(data), paths, include, hp.get("stockemotions_max"), int(hp.get("seed", 2024)))
    if [s.name for s in sets] != held_out.sets:
        raise SourceError(f"training sets {[s.name for s in sets]} differ from the out-of-fold file's {held_out.sets}")
    return write_ensemble(sets, held_out, out, paths.get("phrasebank_allagree"))


__all__ = ["STACKER_C", "refit", "write_ensemble"]
