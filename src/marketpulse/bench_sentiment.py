"""Benchmark of the text → sentiment path: figures, never assertions (see docs/performance.md).

``bench_sentiment`` measures, on one core, texts/s of the lexicon model (:class:`LexiconModel.score`) over real
financial text — Financial PhraseBank 50Agree sentences repeated up to ``n`` (``../shared/data``), or, when that
folder is absent, the bundled StockNet sample tweets — next to a reference measured in the same run on the same
texts: VADER's own ``SentimentIntensityAnalyzer.polarity_scores`` alone (``ratio`` = ours / VADER; ours does VADER's
work plus Loughran–McDonald and the blend). It also gives texts/s of :func:`~marketpulse.features.text.process_posts`
(cleaning, tickers, language, dedupe) over the distinct texts, one fresh state per pass so duplicates of the
repetition are not what is measured. Best of ``repeat`` runs (the machine is shared; the best run is the least
disturbed); warm-up first (the analyzers load once per process; LM's token memo is warm, as in a long run).
"""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from marketpulse.bench_stats import p50_p99
from marketpulse.events import Post

DEFAULT_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PHRASEBANK = Path("financial_phrasebank") / "Sentences_50Agree.txt"


def bench_texts(data: Path | None = None) -> tuple[list[str], str]:
    """The distinct texts of the benchmark and where they come from."""
    path = (data or DEFAULT_DATA) / PHRASEBANK
    if path.is_file():
        lines = path.read_text(encoding="latin-1").splitlines()
        return [line.rpartition("@")[0].strip() for line in lines if "@" in line], str(path)
    from marketpulse.datasets.bundled import sample_path

    folder = sample_path() / "stocknet" / "tweet" / "preprocessed"
    texts: list[str] = []
    for file in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(file, "rt", encoding="utf-8") as fh:
            texts.extend(" ".join(json.loads(line)["text"]) for line in fh if line.strip())
    return texts, str(folder)


def _best(fn: Any, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_sentiment(n: int = 20_000, repeat: int = 3, data: Path | None = None) -> dict[str, Any]:
    """Texts/s of the lexicon model, of VADER alone (reference) and of ``process_posts``; see the module doc."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # type: ignore[import-untyped]

    from marketpulse.features.text import TextState, process_posts
    from marketpulse.sentiment.lexicon import LexiconModel

    distinct, source = bench_texts(data)
    texts = (distinct * (n // max(len(distinct), 1) + 1))[:n]
    model = LexiconModel()
    vader = SentimentIntensityAnalyzer()
    model.score(distinct[:2_000])  # warm-up
    ours_s = _best(lambda: model.score(texts), repeat)

    def reference() -> None:
        for text in texts:
            vader.polarity_scores(text)

    vader_s = _best(reference, repeat)

    t0 = datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
    posts = [
        Post(ts=t0 + timedelta(seconds=i), id=str(i), text=text, source="news", author=f"a{i % 97}", symbols=("AAPL",))
        for i, text in enumerate(distinct)
    ]
    process_posts(posts[:500], TextState())  # warm-up (symbol table, emoji table)
    counts: Counter[str] = Counter()

    def text_stage() -> None:
        counts.clear()
        done = 0
        while done < n:
            chunk = posts[: n - done]
            _, _, state = process_posts(chunk, TextState())
            done += len(chunk)
            counts.update(state.counts)

    text_s = _best(text_stage, repeat)
    return {
        "n": n,
        "distinct_texts": len(distinct),
        "source": source,
        "repeat": repeat,
        "lexicon_texts_per_s": n / ours_s,
        "vader_texts_per_s": n / vader_s,
        "ratio_vs_vader": vader_s / ours_s,
        "process_posts_texts_per_s": n / text_s,
        "process_posts_counts": dict(counts),
    }


TWITTER = Path("twitter_financial_news_sentiment") / "sent_train.csv"


def bench_transformer(
    n: int = 3_000,
    batch: int = 64,
    batches: int = 40,
    data: Path | None = None,
    precision: str | None = None,
    model: str = "transformer",
) -> dict[str, Any]:
    """A trained model (``transformer``, ``transformer-fast`` or ``ensemble``) on tweet-length texts (the Twitter
    financial news set when present, else the bench texts): bulk texts/s over ``n`` texts in one call, and p50/p99
    latency of ``batches`` calls of ``batch`` texts — beside the lexicon model on the same texts in the same run.
    ``precision`` (default: the model's own) other than fp32 also reports how many of the first 1,000 texts get the
    same label as in fp32."""
    import time

    import numpy as np

    from marketpulse.sentiment import build_sentiment_model
    from marketpulse.sentiment.lexicon import LexiconModel
    from marketpulse.sentiment.transformer import usable_cpus

    path = (data or DEFAULT_DATA) / TWITTER
    if path.is_file():
        from marketpulse.sentiment.evaluate import load_labelled

        distinct, source = load_labelled(path)[0], str(path.name)
    else:
        distinct, source = bench_texts(data)
    texts = (distinct * (n // max(len(distinct), 1) + 1))[:n]
    options = {} if precision is None else {"precision": precision}
    scorer = build_sentiment_model(model, **options)
    inner = getattr(scorer, "transformer", scorer)
    resolved = str(getattr(inner, "precision", precision or "fp32"))
    lexicon = LexiconModel()
    scorer.score(texts[:batch])  # warm-up (weights, kernels)
    start = time.perf_counter()
    scores = scorer.score(texts)
    bulk = time.perf_counter() - start
    lex = _best(lambda: lexicon.score(texts), 2)
    lat = []
    for i in range(batches):
        chunk = texts[(i * batch) % len(texts) :][:batch]
        t0 = time.perf_counter()
        scorer.score(chunk)
        lat.append(time.perf_counter() - t0)
    ms = np.array(lat) * 1e3
    report: dict[str, Any] = {
        "benchmark": "sentiment-transformer",
        "model": model,
        "texts": n,
        "source": source,
        "precision": resolved,
        "threads": usable_cpus(),
        "transformer_texts_per_s": round(n / bulk),
        "lexicon_texts_per_s": round(n / lex),
        "ratio_vs_lexicon": round(lex / bulk, 4),
        "batch": batch,
        **p50_p99("batch_ms", ms, 2),
    }
    if resolved != "fp32":
        check = texts[:1_000]
        exact = build_sentiment_model(model, precision="fp32").predict(check)
        report["labels_agree_with_fp32"] = round(
            sum(a == s.label for a, s in zip(exact, scores[: len(check)], strict=True)) / len(check), 4
        )
    return report
