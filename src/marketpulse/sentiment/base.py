"""The ``SentimentModel`` seam: texts in, label probabilities + polarity + intensity out.

Contract of every implementation (checked by :func:`check_model`, run over each one in the tests):

- ``score(texts)`` returns exactly one :class:`Score` per text, in order; an empty sequence gives ``[]``;
- ``negative + neutral + positive == 1`` (within 1e-6), each in [0, 1]; ``polarity`` in [-1, 1];
  ``intensity`` in [0, 1]; no NaN;
- it never raises on a text's content (empty, huge, emoji, lone surrogates): such a text gets a score, usually
  neutral; the same texts give the same scores (deterministic, no state between calls);
- ``name`` is the short model name recorded on every :class:`~marketpulse.events.SentimentScore`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import msgspec

from marketpulse.errors import MarketPulseError

LABELS: tuple[str, str, str] = ("negative", "neutral", "positive")
"""Label order used everywhere (probabilities, confusion matrices)."""


def safe_text(text: Any, max_chars: int) -> str:
    """``text`` as a ``str`` every model can read: ``None`` → ``""``, other non-strings through ``str``, cut to
    ``max_chars``, lone surrogates (not encodable as UTF-8) replaced by ``?``."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    text = text[:max_chars]
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "replace").decode("utf-8")
    return text


class SentimentError(MarketPulseError):
    """Root of sentiment failures (a model that cannot be built or loaded)."""


class Score(msgspec.Struct, frozen=True, gc=False):
    """One text's sentiment: label probabilities, polarity in [-1, 1] (sign = direction) and intensity in [0, 1]
    (how much sentiment there is at all, whatever its sign: a mixed text has high intensity, low polarity)."""

    negative: float
    neutral: float
    positive: float
    polarity: float
    intensity: float

    @property
    def probs(self) -> dict[str, float]:
        return {"negative": self.negative, "neutral": self.neutral, "positive": self.positive}

    @property
    def label(self) -> str:
        """The most probable label (ties: neutral, then positive)."""
        best = max(self.neutral, self.positive, self.negative)
        if self.neutral == best:
            return "neutral"
        return "positive" if self.positive == best else "negative"


class SentimentModel(ABC):
    """Scores batches of texts. Implementations are cheap to call repeatedly: load once, score many."""

    name: str = "base"

    @abstractmethod
    def score(self, texts: Sequence[str]) -> list[Score]:
        """One :class:`Score` per text, in order (see the module contract)."""

    def score_one(self, text: str) -> Score:
        return self.score([text])[0]

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most probable label of each text."""
        return [s.label for s in self.score(texts)]


def check_model(model: SentimentModel, texts: Sequence[str] | None = None) -> None:
    """Assert the seam's contract on ``texts`` (hostile defaults when ``None``); raises ``AssertionError``."""
    probe = list(texts) if texts is not None else [
        "", " ", "Profit rose sharply and the outlook is excellent.", "Shares plunged after the fraud lawsuit.",
        "The company is based in Helsinki.", "🚀🚀🚀", "\ud800 lone surrogate", "x" * 200_000, "\x00\x01\x02",
        "not bad, but not good either", "GREAT!!! :)",
    ]  # fmt: skip
    assert isinstance(model.name, str) and model.name, "a model has a non-empty name"
    assert model.score([]) == [], "an empty batch gives []"
    scores = model.score(probe)
    assert len(scores) == len(probe), f"{len(scores)} scores for {len(probe)} texts"
    for text, s in zip(probe, scores, strict=True):
        values = (s.negative, s.neutral, s.positive, s.polarity, s.intensity)
        assert all(math.isfinite(v) for v in values), f"non-finite score {s} for {text[:40]!r}"
        assert abs(s.negative + s.neutral + s.positive - 1.0) < 1e-6, f"probabilities do not sum to 1: {s}"
        assert all(0.0 <= p <= 1.0 for p in (s.negative, s.neutral, s.positive)), f"probability outside [0, 1]: {s}"
        assert -1.0 <= s.polarity <= 1.0, f"polarity outside [-1, 1]: {s}"
        assert 0.0 <= s.intensity <= 1.0, f"intensity outside [0, 1]: {s}"
    assert model.score(probe) == scores, "scores are deterministic"
