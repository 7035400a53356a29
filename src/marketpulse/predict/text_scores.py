"""Per-text sentiment scores for dataset text features, scored once per model and kept.

:func:`text_scores` returns ``(n, 3)`` = polarity, intensity, label code (1 positive, -1 negative, 0 neutral) for
any :mod:`marketpulse.sentiment` model by name. Unique texts are scored once, in one batch; scores are kept in
memory per model (bounded) and, for the slow models (anything but ``lexicon``) when a ``cache_dir`` is given, in
``<cache_dir>/text-scores/<model>-<fingerprint>.npz``. The fingerprint covers what decides a score: the model's
name and precision and the sha256 of its head and stacker files, so a retrained head never reads stale scores.
Texts are keyed by the sha1 of their UTF-8 bytes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from marketpulse.sentiment import SentimentModel, build_sentiment_model

_MEMORY: dict[str, dict[str, tuple[float, float, int]]] = {}
"""Model name → text → scores, shared by all loads of the process."""
_MEMORY_LIMIT = 1_000_000
_CODES = {"positive": 1, "negative": -1, "neutral": 0}


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()


def fingerprint(model: SentimentModel) -> str:
    """16 hex digits identifying what decides ``model``'s scores (name, precision, head and stacker files)."""
    from marketpulse.sentiment.ensemble import ENSEMBLE_JSON, EnsembleSentiment
    from marketpulse.sentiment.evaluate import trained_head
    from marketpulse.sentiment.transformer import file_sha256

    parts = [model.name, str(getattr(model, "precision", ""))]
    head = trained_head(model)
    if head is not None:
        parts.append(file_sha256(head))
        if isinstance(model, EnsembleSentiment):
            parts.append(str(getattr(model.transformer, "precision", "")))
            stacker = model.config.stacker or head.parent / ENSEMBLE_JSON
            parts.append(file_sha256(Path(stacker)))
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _disk(cache_dir: Path, name: str, model: SentimentModel) -> Path:
    return cache_dir / "text-scores" / f"{name}-{fingerprint(model)}.npz"


def _load(path: Path, memory: dict[str, tuple[float, float, int]]) -> None:
    if not path.is_file():
        return
    with np.load(path) as saved:
        for key, row in zip(saved["keys"].tolist(), saved["scores"].tolist(), strict=True):
            memory[str(key)] = (float(row[0]), float(row[1]), int(row[2]))


def _save(path: Path, memory: dict[str, tuple[float, float, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, keys=np.array(list(memory), dtype="U40"), scores=np.array(list(memory.values()), dtype=np.float64))
    tmp.replace(path)  # atomic: a reader sees the old file or the new one


def text_scores(texts: Sequence[str], model: str = "lexicon", cache_dir: Path | None = None) -> npt.NDArray[np.float64]:
    """``(n, 3)`` polarity, intensity, label code per text (see the module docstring)."""
    memory = _MEMORY.setdefault(model, {})
    keys = [_key(t) for t in texts]
    missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in memory}
    if missing:
        scorer = build_sentiment_model(model)
        disk = _disk(cache_dir, model, scorer) if cache_dir is not None and model != "lexicon" else None
        if disk is not None:
            _load(disk, memory)
            missing = {k: t for k, t in missing.items() if k not in memory}
        if len(memory) + len(missing) > _MEMORY_LIMIT:
            memory.clear()  # bounded; this call's texts are all rescored
            missing = dict(zip(keys, texts, strict=True))
        if missing:
            for key, s in zip(missing, scorer.score(list(missing.values())), strict=True):
                memory[key] = (s.polarity, s.intensity, _CODES[s.label])
            if disk is not None:
                _save(disk, memory)
    return np.array([memory[k] for k in keys], dtype=np.float64).reshape(len(texts), 3)


__all__ = ["fingerprint", "text_scores"]
