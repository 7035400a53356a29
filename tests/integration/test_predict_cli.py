"""``marketpulse train price`` / ``evaluate price`` end to end on the shared StockNet folder, on another folder in
that layout, and on bad folders (one-line errors, no traceback)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
STOCKNET = SHARED / "stocknet"
CLI = Path(sys.executable).parent / "marketpulse"
FIGURES = ("accuracy", "mcc", "f1", "brier", "auc", "n", "seeds", "std", "baselines")

pytestmark = pytest.mark.skipif(not STOCKNET.is_dir(), reason=f"StockNet not found at {STOCKNET}")


def _run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CLI), "--data-dir", str(data_dir), *args], capture_output=True, text=True, timeout=900, check=False
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    data_dir = tmp_path_factory.mktemp("mp")
    args = ["--dataset", "stocknet", "--path", str(STOCKNET), "--model", "lstm", "--seeds", "2"]
    result = _run(data_dir, "train", "price", *args, "--param", "epochs=3", "--name", "sn-test", "--json")
    assert result.returncode == 0, result.stderr
    return data_dir, json.loads(result.stdout)


def test_train_registers_a_model_card_with_dev_and_test_figures_beside_baselines(trained: tuple[Path, dict]) -> None:
    data_dir, card = trained
    assert card["name"] == "sn-test" and card["kind"] == "lstm" and card["seeds"] == 2
    assert card["data"]["train"]["to"] < card["data"]["dev"]["from"] <= card["data"]["dev"]["to"]
    assert card["data"]["dev"]["to"] < card["data"]["test"]["from"]
    assert card["data"]["test"]["from"] >= "2015-10-01" and card["data"]["test"]["to"] < "2016-01-01"
    for split in ("dev", "test"):
        report = card["metrics"][split]
        assert set(FIGURES) <= set(report)
        assert {"majority", "previous_move", "logreg", "lgbm"} <= set(report["baselines"])
        assert len(report["per_seed"]) == 2
    assert (data_dir / "models" / "sn-test" / "card.json").is_file()
    assert (data_dir / "models" / "sn-test" / "seed_1" / "meta.json").is_file()


def test_evaluate_prints_the_figures_and_works_on_another_folder_in_the_layout(
    trained: tuple[Path, dict], tmp_path: Path
) -> None:
    data_dir, card = trained
    result = _run(data_dir, "evaluate", "price", "--dataset", "stocknet", "--path", str(STOCKNET), "--split", "test",
                  "--model", "sn-test", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(FIGURES) <= set(report) and report["seeds"] == 2
    assert report["mcc"] == pytest.approx(card["metrics"]["test"]["mcc"], abs=1e-4), "the registered model, reloaded"
    assert set(report["std"]) >= {"accuracy", "mcc"}
    other = tmp_path / "other"
    tickers = ("AAPL", "XOM", "GE", "WFC", "KO", "INTC")
    for sub in ("price/raw", "tweet/preprocessed"):
        (other / sub).mkdir(parents=True)
    for t in tickers:
        shutil.copy(STOCKNET / "price" / "raw" / f"{t}.csv.gz", other / "price" / "raw")
        shutil.copy(STOCKNET / "tweet" / "preprocessed" / f"{t}.jsonl.gz", other / "tweet" / "preprocessed")
    result = _run(data_dir, "evaluate", "price", "--dataset", "stocknet", "--path", str(other), "--split", "test",
                  "--model", "sn-test", "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    sub = json.loads(result.stdout)
    assert 0 < sub["n"] < report["n"] and set(FIGURES) <= set(sub)


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ("missing", "does not exist"),
        ("no_prices", "price"),
        ("empty_tweets", "tweet"),
    ],
)
def test_a_bad_data_folder_is_one_line_not_a_traceback(
    trained: tuple[Path, dict], tmp_path: Path, layout: str, message: str
) -> None:
    data_dir, _ = trained
    folder = tmp_path / "bad"
    if layout != "missing":
        (folder / "price" / "raw").mkdir(parents=True)
        (folder / "tweet" / "preprocessed").mkdir(parents=True)
    if layout == "empty_tweets":
        shutil.copy(STOCKNET / "price" / "raw" / "AAPL.csv.gz", folder / "price" / "raw")
        (folder / "tweet" / "preprocessed" / "AAPL.jsonl").write_text("")
    result = _run(data_dir, "evaluate", "price", "--dataset", "stocknet", "--path", str(folder), "--model", "sn-test")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert message in result.stderr.lower()


def test_unknown_model_dataset_and_kind_are_one_line_errors(trained: tuple[Path, dict]) -> None:
    data_dir, _ = trained
    for args, needle in (
        (["evaluate", "price", "--dataset", "stocknet", "--path", str(STOCKNET), "--model", "nope"], "nope"),
        (["evaluate", "price", "--dataset", "yahoo", "--path", str(STOCKNET), "--model", "sn-test"], "stocknet"),
        (["train", "price", "--dataset", "stocknet", "--path", str(STOCKNET), "--model", "xgb"], "lstm"),
    ):
        result = _run(data_dir, *args)
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and needle in result.stderr
