"""Sentiment evaluation: the file formats, the metrics, and the lexicon model on the shared labelled sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from marketpulse.errors import SourceError
from marketpulse.sentiment.base import LABELS, Score, SentimentModel
from marketpulse.sentiment.evaluate import evaluate, load_labelled, run_evaluate

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PHRASEBANK_50 = SHARED / "financial_phrasebank" / "Sentences_50Agree.txt"
TWITTER = SHARED / "twitter_financial_news_sentiment" / "sent_train.csv"
STOCKEMOTIONS = SHARED / "stockemotions" / "tweet" / "val_stockemo.csv"


def needs(path: Path) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not path.is_file(), reason=f"shared data file not found: {path}")


class Fixed(SentimentModel):
    """Predicts a fixed label per text (from a lookup), to check the metrics by hand."""

    name = "fixed"

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def score(self, texts: object) -> list[Score]:
        one_hot = {"negative": (1.0, 0.0, 0.0), "neutral": (0.0, 1.0, 0.0), "positive": (0.0, 0.0, 1.0)}
        out = []
        for t in texts:  # type: ignore[attr-defined]
            n, u, p = one_hot[self.answers[t]]
            out.append(Score(n, u, p, p - n, n + p))
        return out


# ---------------------------------------------------------------------------------------------- formats


def test_phrasebank_format_latin1_last_at(tmp_path: Path) -> None:
    f = tmp_path / "pb.txt"
    f.write_bytes("Sepp\xe4l\xe4 sold it @ EUR 5 .@positive\nNothing here .@neutral\n\n".encode("latin-1"))
    texts, labels = load_labelled(f)
    assert texts == ["Seppälä sold it @ EUR 5 .", "Nothing here ."]
    assert labels == ["positive", "neutral"]


def test_csv_with_label_names_and_twitter_codes(tmp_path: Path) -> None:
    names = tmp_path / "names.csv"
    names.write_text('text,label\n"a, b",Positive\nc,neutral\nd,negative\n', encoding="utf-8")
    assert load_labelled(names) == (["a, b", "c", "d"], ["positive", "neutral", "negative"])
    codes = tmp_path / "codes.csv"
    codes.write_text("text,label\n$X down,0\n$Y up,1\n$Z flat,2\n", encoding="utf-8")
    assert load_labelled(codes)[1] == ["negative", "positive", "neutral"]  # 0 Bearish, 1 Bullish, 2 Neutral


def test_stockemotions_format(tmp_path: Path) -> None:
    f = tmp_path / "emo.csv"
    f.write_text(
        'id,date,ticker,emo_label,senti_label,original,processed\n1,2020-01-01,AMZN,excitement,bullish,"up\nup 🥳",x\n'
        "2,2020-01-02,TSLA,panic,bearish,down,y\n",
        encoding="utf-8",
    )
    assert load_labelled(f) == (["up\nup 🥳", "down"], ["positive", "negative"])


def test_bad_rows_name_file_and_line(tmp_path: Path) -> None:
    pb = tmp_path / "pb.txt"
    pb.write_text("fine .@neutral\nno label here\n", encoding="latin-1")
    with pytest.raises(SourceError, match=r"pb\.txt:2: field label"):
        load_labelled(pb)
    csv_file = tmp_path / "bad.csv"
    csv_file.write_text("text,label\na,positive\nb,bullish\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r"bad\.csv:3: field label: unknown label 'bullish'"):
        load_labelled(csv_file)
    with pytest.raises(SourceError, match="no such file"):
        load_labelled(tmp_path / "missing.txt")


# ---------------------------------------------------------------------------------------------- metrics


def test_metrics_by_hand() -> None:
    texts = ["a", "b", "c", "d", "e", "f"]
    truth = ["positive", "positive", "neutral", "neutral", "neutral", "negative"]
    model = Fixed(dict(zip(texts, ["positive", "neutral", "neutral", "neutral", "positive", "positive"], strict=True)))
    r = evaluate(model, texts, truth)
    assert r["n"] == 6 and r["model"] == "fixed"
    assert r["accuracy"] == pytest.approx(3 / 6)
    assert r["confusion"]["labels"] == list(LABELS)
    assert r["confusion"]["matrix"] == [[0, 0, 1], [0, 2, 1], [0, 1, 1]]  # rows true, columns predicted
    pc = r["per_class"]
    assert (pc["positive"]["precision"], pc["positive"]["recall"]) == pytest.approx((1 / 3, 1 / 2))
    assert pc["positive"]["f1"] == pytest.approx(0.4)
    assert pc["neutral"]["f1"] == pytest.approx(2 / 3)
    assert pc["negative"]["f1"] == 0.0 and pc["negative"]["support"] == 1
    assert r["macro_f1"] == pytest.approx((0.4 + 2 / 3 + 0.0) / 3)
    assert r["baseline"]["label"] == "neutral"
    assert r["baseline"]["accuracy"] == pytest.approx(0.5)
    assert r["baseline"]["macro_f1"] == pytest.approx((0 + 2 * 0.5 * 1 / 1.5 + 0) / 3)


def test_evaluate_refuses_mismatched_input() -> None:
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        evaluate(Fixed({}), ["a", "b"], ["neutral"])
    with pytest.raises(ValueError, match="unknown labels"):
        evaluate(Fixed({"a": "neutral"}), ["a"], ["bullish"])


# ---------------------------------------------------------------------------------------------- shared data


@pytest.mark.integration
@needs(PHRASEBANK_50)
def test_lexicon_on_phrasebank_50agree_beats_the_majority_baseline() -> None:
    r = run_evaluate(PHRASEBANK_50, "lexicon")
    assert r["n"] == 3876
    assert r["label_counts"] == {"negative": 483, "neutral": 2302, "positive": 1091}
    assert 0.0 < r["accuracy"] <= 1.0
    assert r["macro_f1"] > r["baseline"]["macro_f1"] + 0.1
    assert r["baseline"]["label"] == "neutral"
    assert r["baseline"]["accuracy"] == pytest.approx(2302 / 3876)
    assert sum(map(sum, r["confusion"]["matrix"])) == 3876


@pytest.mark.integration
@needs(TWITTER)
def test_lexicon_on_twitter_financial_news() -> None:
    r = run_evaluate(TWITTER, "lexicon")
    assert r["label_counts"] == {"negative": 1442, "neutral": 6178, "positive": 1923}
    assert r["macro_f1"] > r["baseline"]["macro_f1"]


@pytest.mark.integration
@needs(STOCKEMOTIONS)
def test_stockemotions_has_no_neutral_truth() -> None:
    r = run_evaluate(STOCKEMOTIONS, "lexicon")
    assert r["label_counts"]["neutral"] == 0 and r["n"] == 1000
    assert r["confusion"]["matrix"][1] == [0, 0, 0]


def test_bench_sentiment_smoke() -> None:
    from marketpulse.bench_sentiment import bench_sentiment

    r = bench_sentiment(n=300, repeat=1)
    assert r["n"] == 300
    for key in ("lexicon_texts_per_s", "vader_texts_per_s", "ratio_vs_vader", "process_posts_texts_per_s"):
        assert r[key] > 0
    assert r["process_posts_counts"]["seen"] == 300


FIQA = SHARED / "fiqa_semeval2017_financial_sentiment"


@needs(FIQA / "FiQA_post.json")
def test_fiqa_and_semeval_json_are_read_with_the_documented_thresholds() -> None:
    texts, labels = load_labelled(FIQA / "FiQA_post.json")
    assert len(texts) == len(labels) == 675 and set(labels) == set(LABELS)
    heads, head_labels = load_labelled(FIQA / "SemEval2017Task5Headlines.json")
    assert len(heads) == len(head_labels) > 1000 and set(head_labels) == set(LABELS)
    report = run_evaluate(FIQA / "SemEval2017Task5Headlines.json", "lexicon")
    assert {"accuracy", "macro_f1", "weighted_f1", "per_class"} <= set(report)
