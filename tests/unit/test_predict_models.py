"""Tests of the price models (deep nets and baselines) behind the PriceModel contract, and of their registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from marketpulse.errors import ConfigError
from marketpulse.predict.base import PriceModel, Samples
from marketpulse.predict.baselines import MajorityModel, PreviousMoveModel
from marketpulse.predict.metrics import classification_report
from marketpulse.predict.models import ALL_KINDS, DEEP_KINDS, KINDS, create, load_model, predict_samples
from marketpulse.predict.torch_model import GRUModel, LSTMModel, tail_split

pytest.importorskip("torch")

LEARNERS = ("logreg", "lgbm", *DEEP_KINDS)
FAST = {"epochs": 12, "batch_size": 128}  # small budget: the whole file must stay well under a minute


def params(kind: str, **extra: object) -> dict[str, object]:
    return {**(FAST if kind in DEEP_KINDS else {}), **extra}


def make_samples(
    n: int, *, window: int = 5, features: int = 6, noise: bool = False, classes: int = 2, seed: int = 0
) -> Samples:
    """Time-ordered samples; the label is the sign of a noisy copy of feature 0 at the last step (Bayes
    accuracy ≈ 0.85), or independent coin flips when ``noise``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, window, features)).astype(np.float32)
    score = X[:, -1, 0] + 0.5 * rng.normal(size=n)
    if noise:
        y = rng.integers(0, classes, size=n)
    elif classes == 2:
        y = (score > 0).astype(np.int64)
    else:  # 0 down, 1 up, 2 flat
        y = np.where(score > 0.5, 1, np.where(score < -0.5, 0, 2))
    prev = rng.integers(-1, classes, size=n)
    names = tuple(f"f{i}" for i in range(features))
    return Samples(
        X,
        y.astype(np.int64),
        np.arange(n, dtype=np.int64) * 60_000_000_000,
        np.array(["AAA"] * n),
        prev.astype(np.int64),
        names,
        "schema-test",
        classes,
    )


def split(s: Samples, share: float = 0.8) -> tuple[Samples, Samples]:
    cut = int(len(s) * share)
    return s.take(np.arange(cut)), s.take(np.arange(cut, len(s)))


@pytest.fixture(scope="module")
def learnable() -> tuple[Samples, Samples]:
    return split(make_samples(3000))


@pytest.fixture(scope="module")
def fitted(learnable: tuple[Samples, Samples]) -> dict[str, PriceModel]:
    train, _ = learnable
    return {kind: create(kind, **params(kind)).fit(train, seed=3) for kind in ALL_KINDS}


# ----------------------------------------------------------------------------------------------- learning


@pytest.mark.parametrize("kind", LEARNERS)
def test_learns_a_learnable_signal(
    kind: str, fitted: dict[str, PriceModel], learnable: tuple[Samples, Samples]
) -> None:
    _, test = learnable
    proba = predict_samples(fitted[kind], test)
    assert proba.shape == (len(test), 2) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert classification_report(test.y, proba)["accuracy"] > 0.7


@pytest.mark.parametrize("kind", LEARNERS)
def test_pure_noise_is_not_learned(kind: str) -> None:
    train, test = split(make_samples(3000, noise=True, seed=5))
    model = create(kind, **params(kind)).fit(train, seed=0)
    report = classification_report(test.y, model.predict_proba(test.X))
    assert abs(report["mcc"]) < 0.15, report


@pytest.mark.parametrize("kind", LEARNERS)
def test_balanced_loss_keeps_the_minority_class(kind: str) -> None:
    """With ~16 % up moves and a weak signal, a class-weighted model still catches most up moves (an unweighted
    one predicts up for ~6 % of samples and recalls < 0.35 of them)."""
    s = make_samples(3000, seed=9)
    y = (s.X[:, -1, 0] + np.random.default_rng(1).normal(size=len(s)) > 1.4).astype(np.int64)
    train, test = split(Samples(s.X, y, s.ts, s.symbol, s.prev, s.feature_names, s.schema))
    pred = create(kind, **params(kind)).fit(train, seed=0).predict_proba(test.X).argmax(axis=1)
    assert np.mean(train.y) < 0.2
    assert np.mean(pred[test.y == 1] == 1) > (0.45 if kind == "lgbm" else 0.6)


# ------------------------------------------------------------------------------------------ determinism


@pytest.mark.parametrize("kind", DEEP_KINDS)
def test_same_seed_same_probabilities_other_seed_other(kind: str) -> None:
    import torch

    train, test = split(make_samples(600, seed=2))
    torch.manual_seed(1)  # the global RNG state before a fit must not matter
    a = create(kind, epochs=3).fit(train, seed=7).predict_proba(test.X)
    torch.manual_seed(2)
    b = create(kind, epochs=3).fit(train, seed=7).predict_proba(test.X)
    c = create(kind, epochs=3).fit(train, seed=8).predict_proba(test.X)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("kind", ["logreg", "lgbm"])
def test_baselines_are_deterministic(kind: str) -> None:
    train, test = split(make_samples(600, seed=2))
    a = create(kind).fit(train, seed=7).predict_proba(test.X)
    np.testing.assert_array_equal(a, create(kind).fit(train, seed=7).predict_proba(test.X))


def test_fit_leaves_the_global_torch_rng_alone() -> None:
    import torch

    train, _ = split(make_samples(300))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    create("lstm", epochs=1).fit(train, seed=0)
    assert torch.equal(torch.rand(3), expected)


# ----------------------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_save_load_round_trip(
    kind: str, fitted: dict[str, PriceModel], learnable: tuple[Samples, Samples], tmp_path: Path
) -> None:
    _, test = learnable
    model = fitted[kind]
    model.save(tmp_path / kind)
    loaded = load_model(tmp_path / kind)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(predict_samples(loaded, test), predict_samples(model, test))
    assert loaded.meta == json.loads(json.dumps(model.meta))
    assert loaded.meta["schema"] == "schema-test" and loaded.meta["seed"] == 3
    assert loaded.meta["features"] == list(test.feature_names) and loaded.meta["kind"] == kind
    assert loaded.params == model.params


def test_load_refuses_another_kind(fitted: dict[str, PriceModel], tmp_path: Path) -> None:
    fitted["gru"].save(tmp_path / "m")
    with pytest.raises(ConfigError, match="gru"):
        LSTMModel.load(tmp_path / "m")
    assert isinstance(GRUModel.load(tmp_path / "m"), GRUModel)


def test_load_model_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_model(tmp_path / "absent")
    (tmp_path / "meta.json").write_text(json.dumps({"kind": "oracle"}))
    with pytest.raises(ConfigError, match="oracle"):
        load_model(tmp_path)


def test_deep_meta_records_training(fitted: dict[str, PriceModel], learnable: tuple[Samples, Samples]) -> None:
    train, _ = learnable
    meta = fitted["lstm"].meta
    assert 1 <= meta["best_epoch"] <= meta["epochs"] <= FAST["epochs"]
    assert meta["best_dev_loss"] > 0 and meta["train_seconds"] > 0
    assert meta["holdout_samples"] == round(0.1 * len(train)) == 240
    assert meta["fit_samples"] + meta["holdout_samples"] == len(train)
    assert meta["params"]["hidden"] == 32 and meta["params"]["epochs"] == FAST["epochs"]


# ----------------------------------------------------------------------------------------- time order


def test_tail_split_holds_out_the_latest_samples() -> None:
    s = make_samples(1000)
    part, hold = tail_split(s, 0.1)
    assert hold is not None and len(hold) == 100 and len(part) == 900
    assert part.ts.max() < hold.ts.min()
    assert tail_split(make_samples(4), 0.1)[1] is None


def test_scaler_is_fitted_on_the_training_part_only() -> None:
    s = make_samples(1000)
    s.X[900:] += 100.0  # the holdout tail is far off: it must not move the scaler
    model = create("lstm", epochs=1).fit(s, seed=0)
    assert isinstance(model, LSTMModel) and model.mean is not None
    np.testing.assert_allclose(model.mean.numpy(), s.X[:900].reshape(-1, 6).mean(axis=0), atol=1e-5)


def test_dev_is_used_for_early_stopping() -> None:
    train, dev = split(make_samples(1500))
    model = create("gru", epochs=40, patience=2).fit(train, dev, seed=0)
    assert model.meta["holdout_samples"] == len(dev) and model.meta["fit_samples"] == len(train)
    assert model.meta["epochs"] < 40 and model.meta["best_epoch"] == model.meta["epochs"] - 2


# ------------------------------------------------------------------------------------------- 3 classes


@pytest.mark.parametrize("kind", LEARNERS)
def test_three_classes(kind: str) -> None:
    train, test = split(make_samples(1500, classes=3, seed=4))
    model = create(kind, **params(kind)).fit(train, seed=0)
    proba = model.predict_proba(test.X)
    assert proba.shape == (len(test), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    assert classification_report(test.y, proba)["accuracy"] > 0.5  # chance ≈ 0.33–0.4


# ------------------------------------------------------------------------------------- simple baselines


def hand_made(y: list[int], prev: list[int], classes: int = 2) -> Samples:
    n = len(y)
    return Samples(
        np.zeros((n, 2, 1), np.float32),
        np.array(y, np.int64),
        np.arange(n, dtype=np.int64),
        np.array(["A"] * n),
        np.array(prev, np.int64),
        ("x",),
        "s",
        classes,
    )


def test_majority_predicts_train_frequencies() -> None:
    model = MajorityModel().fit(hand_made([1, 1, 1, 0], [-1] * 4))
    proba = model.predict_proba(np.zeros((3, 2, 1), np.float32))
    np.testing.assert_array_equal(proba, [[0.25, 0.75]] * 3)
    three = MajorityModel().fit(hand_made([2, 2, 0, 1, 2], [-1] * 5, classes=3))
    assert three.predict_proba(np.zeros((1, 2, 1), np.float32)).argmax() == 2


def test_previous_move_repeats_prev_and_falls_back_to_majority() -> None:
    model = PreviousMoveModel().fit(hand_made([0, 0, 0, 1], [1, 1, 0, 0]))
    test = hand_made([0, 0, 0, 0], [1, 0, -1, 1])
    np.testing.assert_array_equal(predict_samples(model, test), [[0, 1], [1, 0], [1, 0], [0, 1]])
    up = PreviousMoveModel().fit(hand_made([1, 1, 0], [0, 0, 0]))
    np.testing.assert_array_equal(predict_samples(up, hand_made([0], [-1])), [[0, 1]])
    with pytest.raises(TypeError, match="prev"):
        model.predict_proba(test.X)


def test_predict_checks_shape_and_fit(fitted: dict[str, PriceModel]) -> None:
    with pytest.raises(ValueError, match="X must be"):
        fitted["lstm"].predict_proba(np.zeros((2, 4, 6), np.float32))
    with pytest.raises(ValueError, match="X must be"):
        fitted["logreg"].predict_proba(np.zeros((2, 5, 7), np.float32))
    with pytest.raises(RuntimeError, match="not fitted"):
        create("tcn").predict_proba(np.zeros((2, 5, 6), np.float32))


# -------------------------------------------------------------------------------------------- registry


def test_registry_lists_every_kind() -> None:
    assert set(KINDS) == {*ALL_KINDS, "lstm-numpy"}, "every trainable kind, and the numpy twin that only serves"
    assert all(KINDS[k].kind == k for k in KINDS)
    assert create("transformer", d_model=16, heads=2).params["d_model"] == 16


def test_unknown_kind_or_parameter_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="allowed: majority, previous_move, logreg, lgbm, lstm"):
        create("xgboost")
    with pytest.raises(ConfigError, match="hidden"):
        create("lstm", hiden=64)
    with pytest.raises(ConfigError, match="num_leaves"):
        create("lgbm", leaves=3)
