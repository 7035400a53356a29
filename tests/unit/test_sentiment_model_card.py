"""The shipped model cards are portable: they name data by relative path, never the machine that trained them."""

from __future__ import annotations

import pytest

from marketpulse.sentiment.transformer import model_card


@pytest.mark.parametrize("variant", ["accurate", "fast"])
def test_the_card_names_no_absolute_paths(variant: str) -> None:
    card = model_card(variant)
    assert card["training_sets"], "the card lists what trained the head"
    assert all(not str(s["source"]).startswith("/") for s in card["training_sets"])
    assert all(not str(v).startswith("/") for v in card.get("hyper_parameters", {}).values())
