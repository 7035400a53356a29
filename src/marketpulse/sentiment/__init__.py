"""Sentiment: the ``SentimentModel`` seam, the embedded lexicon model, per-symbol aggregation and evaluation.

Models are chosen by name (``lexicon``: VADER + Loughran–McDonald, the embedded default) through
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


def _transformer(**options: Any) -> SentimentModel:
    from marketpulse.sentiment.transformer import build

    return build(**options)


def _auto(**options: Any) -> SentimentModel:
    """The engine's default: the lexicon until the calibrated lexicon + transformer ensemble lands (the transformer
    alone is available as ``transformer``)."""
    return _lexicon(**options)


MODELS: dict[str, Callable[..., SentimentModel]] = {"lexicon": _lexicon, "transformer": _transformer, "auto": _auto}
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


__all__ = ["LABELS", "MODELS", "Score", "SentimentModel", "build_sentiment_model"]
