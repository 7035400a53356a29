"""Dataset text scores: each unique text scored once per model, slow models' scores kept on disk by fingerprint."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from marketpulse.predict import text_scores as ts
from marketpulse.sentiment import MODELS, Score, SentimentModel


class Counting(SentimentModel):
    """Polarity = 0.8 × (len(text) % 3 - 1): deterministic, and every call is counted."""

    name = "counting"
    calls: ClassVar[list[int]] = []

    def __init__(self, precision: str = "fp32") -> None:
        self.precision = precision

    def score(self, texts: Sequence[str]) -> list[Score]:
        Counting.calls.append(len(texts))
        out = []
        for t in texts:
            pol = 0.8 * (len(t) % 3 - 1)
            pos, neg = max(pol, 0.0), max(-pol, 0.0)
            out.append(Score(neg, 1.0 - pos - neg, pos, pol, pos + neg))
        return out


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> type[Counting]:
    monkeypatch.setitem(MODELS, "counting", lambda **o: Counting(**o))
    monkeypatch.setitem(ts._MEMORY, "counting", {})
    Counting.calls = []
    return Counting


def test_unique_texts_are_scored_once_and_in_order(counting: Any) -> None:
    texts = ["a", "bb", "a", "ccc", "bb"]
    got = ts.text_scores(texts, "counting")
    assert counting.calls == [3], "one batch of the 3 unique texts"
    expected = np.array([[0.0, 0.0, 0], [0.8, 0.8, 1], [0.0, 0.0, 0], [-0.8, 0.8, -1], [0.8, 0.8, 1]])
    np.testing.assert_allclose(got, expected)
    again = ts.text_scores(["ccc", "a"], "counting")
    assert counting.calls == [3] and again.tolist() == [expected[3].tolist(), expected[0].tolist()]
    assert ts.text_scores([], "counting").shape == (0, 3)


def test_scores_are_kept_on_disk_per_fingerprint(
    counting: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ts.text_scores(["up", "down", "flat"], "counting", tmp_path)
    [saved] = (tmp_path / "text-scores").iterdir()
    assert saved.name == f"counting-{ts.fingerprint(Counting())}.npz"
    ts._MEMORY["counting"].clear()  # a new process: only the disk remains
    again = ts.text_scores(["flat", "up", "new"], "counting", tmp_path)
    assert counting.calls == [3, 1], "only the text never seen is scored"
    assert again[:2].tolist() == [first[2].tolist(), first[0].tolist()]
    monkeypatch.setitem(MODELS, "counting", lambda **o: Counting(precision="bf16"))
    ts._MEMORY["counting"].clear()
    ts.text_scores(["up"], "counting", tmp_path)
    assert counting.calls == [3, 1, 1], "another precision is another fingerprint: nothing reused"
    assert len(list((tmp_path / "text-scores").iterdir())) == 2
    assert not [p for p in (tmp_path / "text-scores").iterdir() if p.name.startswith(".")], "no temporary files left"


def test_the_lexicon_is_never_written_to_disk(tmp_path: Path) -> None:
    scores = ts.text_scores(
        ["Profit rose sharply, a great quarter.", "Shares plunged after the fraud lawsuit."], "lexicon", tmp_path
    )
    assert scores[0, 0] > 0 > scores[1, 0]
    assert not (tmp_path / "text-scores").exists()
