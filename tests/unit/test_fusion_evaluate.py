"""The walk-forward fusion never uses an outcome before its day has closed."""

from __future__ import annotations

import numpy as np
import pytest

from marketpulse.errors import ConfigError
from marketpulse.fusion.ensemble import FusionConfig
from marketpulse.fusion.evaluate import verdict, walk_forward_fusion

DAY = 86_400 * 10**9


def _walk(y: np.ndarray, price: np.ndarray, sentiment: np.ndarray, per_day: int = 4) -> np.ndarray:
    ts = np.repeat(np.arange(len(y) // per_day), per_day).astype(np.int64) * DAY
    result = walk_forward_fusion(
        ts, y, {"price": price, "sentiment": sentiment}, np.ones(len(y), dtype=bool), FusionConfig(eta=1.0)
    )
    return result.probability


def test_changing_future_outcomes_never_changes_past_predictions() -> None:
    rng = np.random.default_rng(1)
    n = 200
    y = rng.integers(0, 2, n)
    price, sentiment = rng.random(n), np.where(rng.random(n) < 0.3, np.nan, rng.random(n))
    base = _walk(y, price, sentiment)
    for cut_day in (5, 20, 40):
        cut = cut_day * 4
        flipped = y.copy()
        flipped[cut:] = 1 - flipped[cut:]
        again = _walk(flipped, price, sentiment)
        assert np.array_equal(again[: cut + 4], base[: cut + 4]), "day cut_day itself is predicted before its outcomes"
        assert not np.array_equal(again[cut + 4 :], base[cut + 4 :]), "later days do learn from the changed outcomes"


def test_the_informative_input_takes_over() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    y = rng.integers(0, 2, n)
    good = np.where(y == 1, 0.65, 0.35)
    ts = np.repeat(np.arange(n // 4), 4).astype(np.int64) * DAY
    result = walk_forward_fusion(
        ts, y, {"price": rng.random(n), "sentiment": good}, np.ones(n, dtype=bool), FusionConfig()
    )
    assert result.final["weights"]["sentiment"] > 0.9
    assert result.history[0][1] != result.history[-1][1] and len(result.history) == n // 4
    with pytest.raises(ConfigError, match="sorted"):
        walk_forward_fusion(
            ts[::-1].copy(), y, {"price": good}, np.ones(n, dtype=bool), FusionConfig(inputs=("price",))
        )


def test_the_verdict_says_plainly_when_fusion_loses() -> None:
    def r(mcc: float) -> dict[str, object]:
        return {"mcc": mcc, "std": {"mcc": 0.01}}

    lost = verdict({"n": 3354, "fused": r(0.01), "price_only": r(0.03), "sentiment_only": r(0.02)})
    assert "does not beat" in lost and "within 2 standard errors" in lost and "0.017" in lost
    strong = verdict({"n": 10_000, "fused": r(0.08), "price_only": r(0.05), "sentiment_only": r(0.0)})
    assert "≥ the better input" in strong and "within" not in strong
    assert "≥ the better input (price_only" in verdict(
        {"fused": r(0.04), "price_only": r(0.03), "sentiment_only": r(0.0)}
    )
