"""``marketpulse replay`` and ``marketpulse run`` through the real CLI, on the shared data and the fixtures.

Every replay gets its own ``--data-dir`` under ``tmp_path`` and must account for every record it read:
``read == accepted + deadlettered``.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from marketpulse.bus.base import DEADLETTER
from marketpulse.events import DeadLetter, decode
from marketpulse.store.sqlite import SqliteHistoryStore

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
BROKEN_BARS_REASONS = {
    3: ("bad_number", "low"),
    4: ("non_positive_price", "open"),
    5: ("high_below_low", "high"),
    6: ("bad_timestamp", "ts"),
    7: ("duplicate", "ts"),
    10: ("out_of_order", "ts"),
    11: ("bad_row", "*"),
    12: ("missing_value", "symbol"),
    13: ("negative_volume", "volume"),
    14: ("missing_value", "close"),
}


def replay(cli: Any, data_dir: Path, source: Path, kind: str, *extra: str) -> dict[str, Any]:
    """Replay with ``--json``; asserts a clean exit and the accounting identity."""
    result = cli("--data-dir", str(data_dir), "replay", "--source", str(source), "--kind", kind, *extra, "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    report = result.json()
    assert report["read"] == report["accepted"] + report["deadlettered"]
    assert sum(report["reasons"].values()) == report["deadlettered"]
    assert report["kind"] == kind
    return report


def sqlite_contents(data_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of the history store file."""
    conn = sqlite3.connect(data_dir / "history.sqlite")
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall()) for t in tables}
    finally:
        conn.close()


def assert_one_line_error(stderr: str, *needles: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in lines[0], (needle, stderr)


# -- the SPY file ------------------------------------------------------------------------------------------------


def test_spy_bars_are_all_accounted_for(cli: Any, shared_data: Path, tmp_path: Path) -> None:
    source = shared_data / "spy_1min_2011" / "SPY_1min_2011-01.csv"
    report = replay(cli, tmp_path, source, "bars", "--symbol", "SPY", "--speed", "max")
    assert report["read"] == 14_180
    assert report["accepted"] + report["deadlettered"] == 14_180
    assert report["stored"] == report["accepted"]
    assert report["accepted_by_kind"] == {"bars": report["accepted"]}
    store = SqliteHistoryStore(data_dir=tmp_path)
    try:
        assert store.count("bars", "SPY") == report["accepted"]
        assert store.count("deadletter") == report["deadlettered"]
    finally:
        store.close()


def test_replaying_the_same_file_twice_leaves_the_history_unchanged(
    cli: Any, shared_data: Path, tmp_path: Path
) -> None:
    source = shared_data / "spy_1min_2011" / "SPY_1min_2011-01.csv"
    first = replay(cli, tmp_path, source, "bars", "--symbol", "SPY")
    before = sqlite_contents(tmp_path)
    assert len(before["bars"]) == first["accepted"] > 0
    second = replay(cli, tmp_path, source, "bars", "--symbol", "SPY")
    assert {k: second[k] for k in ("read", "accepted", "deadlettered")} == {
        k: first[k] for k in ("read", "accepted", "deadlettered")
    }
    assert sqlite_contents(tmp_path) == before


def test_replaying_clean_fixtures_twice_leaves_the_history_unchanged(cli: Any, tmp_path: Path) -> None:
    for source, kind in ((FIXTURES / "ticks_good.csv", "ticks"), (FIXTURES / "news.jsonl", "news")):
        replay(cli, tmp_path, source, kind)
    before = sqlite_contents(tmp_path)
    assert before["ticks"] and before["events"]
    for source, kind in ((FIXTURES / "ticks_good.csv", "ticks"), (FIXTURES / "news.jsonl", "news")):
        replay(cli, tmp_path, source, kind)
    assert sqlite_contents(tmp_path) == before


# -- broken rows, unreadable files ---------------------------------------------------------------------------------


def test_broken_rows_are_dead_lettered_with_line_and_reason(cli: Any, tmp_path: Path) -> None:
    source = FIXTURES / "bars_broken.csv"
    report = replay(cli, tmp_path, source, "bars")
    assert (report["read"], report["accepted"], report["deadlettered"]) == (13, 3, 10)
    assert report["reasons"] == {
        "bad_number": 1,
        "bad_row": 1,
        "bad_timestamp": 1,
        "duplicate": 1,
        "high_below_low": 1,
        "missing_value": 2,
        "negative_volume": 1,
        "non_positive_price": 1,
        "out_of_order": 1,
    }
    store = SqliteHistoryStore(data_dir=tmp_path)
    try:
        letters = store.read_events("deadletter", "")
        assert store.read_frame("bars", "AAPL")["close"].tolist() == [100.5, 101.1, 101.7]
    finally:
        store.close()
    assert all(isinstance(d, DeadLetter) for d in letters)
    got = {int(d.position.rsplit(":", 1)[1]): (d.reason, d.field) for d in letters}  # type: ignore[union-attr]
    assert got == BROKEN_BARS_REASONS
    assert {d.source for d in letters} == {str(source)}  # type: ignore[union-attr]
    assert all(d.position.startswith(f"{source}:") for d in letters)  # type: ignore[union-attr]


def test_broken_rows_human_summary(cli: Any, tmp_path: Path) -> None:
    result = cli("--data-dir", str(tmp_path), "replay", "--source", str(FIXTURES / "bars_broken.csv"), "--kind", "bars")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    for word in ("read", "accepted", "deadlettered", "13", "10", "high_below_low", "out_of_order"):
        assert word in result.stdout


def test_dead_letters_are_on_the_topic_and_in_the_history_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the CLI in-process (the memory bus lives in the process): drain the topic before it closes."""
    from marketpulse.cli import app
    from marketpulse.pipeline import Pipeline

    on_topic: list[Any] = []
    close = Pipeline.close

    def drain_then_close(self: Pipeline) -> None:
        with self.bus.consumer("test-deadletters", [DEADLETTER]) as consumer:
            while batch := consumer.poll(max_records=10_000, timeout=0.05):
                on_topic.extend(decode(m.value) for m in batch)
        close(self)

    monkeypatch.setattr(Pipeline, "close", drain_then_close)
    monkeypatch.setattr("marketpulse.cli._stop_on_signals", lambda stop: None)  # keep pytest's Ctrl-C handler
    for name in [k for k in os.environ if k.startswith("MARKETPULSE")]:
        monkeypatch.delenv(name)
    posts = FIXTURES / "posts.jsonl"
    result = CliRunner().invoke(
        app, ["--data-dir", str(tmp_path), "replay", "--source", str(posts), "--kind", "posts", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert '"deadlettered": 5' in result.output
    expected = {
        (f"{posts}:3", "*", "bad_json"),
        (f"{posts}:4", "text", "missing_value"),
        (f"{posts}:5", "created_at", "bad_timestamp"),
        (f"{posts}:6", "id", "duplicate"),
        (f"{posts}:8", "engagement", "bad_number"),
    }
    assert {(d.position, d.field, d.reason) for d in on_topic} == expected
    assert {(d.source, d.kind) for d in on_topic} == {(str(posts), "posts")}
    store = SqliteHistoryStore(data_dir=tmp_path)
    try:
        stored = store.read_events("deadletter", "")
    finally:
        store.close()
    assert {(d.position, d.field, d.reason) for d in stored} == expected  # type: ignore[union-attr]


def _garbage(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.csv"
    path.write_bytes(bytes(range(256)) * 8)
    return path


def _png(tmp_path: Path) -> Path:
    path = tmp_path / "chart.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200))
    return path


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    return path


def _wrong_header(tmp_path: Path) -> Path:
    path = tmp_path / "wrong.csv"
    path.write_text("when,what,how much\n2024-01-02,x,1\n")
    return path


def _directory(tmp_path: Path) -> Path:
    path = tmp_path / "folder.csv"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: p / "missing.csv", "no such file"),
        (_directory, "is a directory"),
        (_garbage, "not a text file"),
        (_png, "not a UTF-8 text file"),
        (_empty, "empty file"),
        (_wrong_header, "missing column(s)"),
    ],
    ids=["missing", "directory", "binary", "png", "empty", "wrong-header"],
)
def test_unreadable_file_exits_non_zero_with_one_line(cli: Any, tmp_path: Path, make: Any, needle: str) -> None:
    source = make(tmp_path)
    data = tmp_path / "data"
    result = cli("--data-dir", str(data), "replay", "--source", str(source), "--kind", "bars", "--json")
    assert result.returncode == 1
    assert result.stdout == ""
    assert_one_line_error(result.stderr, needle, source.name)


def test_unreadable_posts_file_exits_non_zero(cli: Any, tmp_path: Path) -> None:
    source = _wrong_header(tmp_path)
    result = cli("--data-dir", str(tmp_path / "d"), "replay", "--source", str(source), "--kind", "posts")
    assert result.returncode == 1
    assert_one_line_error(result.stderr, "unknown posts format")


def test_a_row_that_is_not_utf8_does_not_fail_the_file(cli: Any, tmp_path: Path) -> None:
    source = tmp_path / "ticks.csv"
    source.write_bytes(
        b"timestamp,symbol,price,size\n2024-01-02T14:30:00Z,X,1.5,1\n\xff\xfe,\xc3\x28,1,2\n2024-01-02T14:30:01Z,X,1.6,1\n"
    )
    report = replay(cli, tmp_path / "d", source, "ticks")
    assert (report["read"], report["accepted"], report["reasons"]) == (3, 2, {"bad_row": 1})


# -- other shared data sets ------------------------------------------------------------------------------------------


def test_stocknet_tweets(cli: Any, shared_data: Path, tmp_path: Path) -> None:
    report = replay(cli, tmp_path, shared_data / "stocknet", "posts")
    assert report["read"] == 93_274  # per the folder's README
    assert report["accepted"] > 90_000
    assert report["stored"] == report["accepted"]
    assert set(report["reasons"]) <= {"duplicate", "bad_row", "bad_timestamp", "missing_value"}


def test_benzinga_news(cli: Any, shared_data: Path, tmp_path: Path) -> None:
    report = replay(cli, tmp_path, shared_data / "benzinga_headlines_subset" / "analyst_ratings_subset.csv", "news")
    assert report["read"] == 8_852
    assert report["accepted_by_kind"] == {"news": report["accepted"]}
    assert report["accepted"] > 8_000


@pytest.mark.parametrize(("name", "rows"), [("train_stockemo.csv", 8_000), ("val_stockemo.csv", 1_000)])
def test_stockemotions_posts(cli: Any, shared_data: Path, tmp_path: Path, name: str, rows: int) -> None:
    report = replay(cli, tmp_path, shared_data / "stockemotions" / "tweet" / name, "posts")
    assert report["read"] == rows
    assert report["accepted"] > 0.9 * rows


@pytest.mark.parametrize(
    ("name", "messages"),
    [
        ("AMZN_2012-06-21_34200000_57600000_message_1.csv.gz", 57_515),
        ("GOOG_2012-06-21_34200000_57600000_message_10.csv.gz", 147_916),
    ],
)
def test_lobster_ticks(cli: Any, shared_data: Path, tmp_path: Path, name: str, messages: int) -> None:
    report = replay(cli, tmp_path, shared_data / "lobster_sample_2012-06-21" / "raw" / name, "ticks")
    # executions are read as ticks; every other message is counted as ignored, none is lost
    assert report["read"] + report["ignored_non_trade_messages"] == messages
    assert report["read"] > 10_000
    # real executions: nothing is a duplicate, and bad prints are rare
    assert report["reasons"].get("duplicate", 0) == 0
    assert report["deadlettered"] < 0.01 * report["read"]


# -- run, usage and configuration errors -----------------------------------------------------------------------------


def test_run_once_on_the_bundled_sample(cli: Any, tmp_path: Path) -> None:
    result = cli("--data-dir", str(tmp_path), "run", "--once", "--speed", "max", "--json", timeout=360)
    assert result.returncode == 0, result.stderr
    report = result.json()
    assert report["command"] == "run"
    # no model registered under this data dir: the bundled demo model predicts, and every prediction is fused
    assert report["engine"]["predictions"] > 10_000
    assert report["engine"]["signals"] == report["engine"]["predictions"]
    assert report["read"] == report["accepted"] + report["deadlettered"]
    by_kind = report["accepted_by_kind"]
    assert by_kind["bars"] > 0 and by_kind["ticks"] > 0 and by_kind["posts"] > 0
    from marketpulse.sentiment import ensemble_available

    # the default sentiment model (auto): the calibrated ensemble where the ml extra is installed, else the lexicon
    assert report["engine"]["sentiment_model"] == ("ensemble" if ensemble_available() else "lexicon")
    assert report["engine"]["sentiment_scores"] > 0
    store = SqliteHistoryStore(data_dir=tmp_path)
    try:
        assert store.count("ticks") == 0  # synthetic ticks are never stored as history
        assert store.count("bars") == by_kind["bars"]
        [prediction, *_] = store.read_events("predictions", "AAPL", None, None)
        assert getattr(prediction, "version", None) == "demo-spy-lstm@1"
    finally:
        store.close()


def test_unknown_kind_exits_2_naming_the_allowed_kinds(cli: Any, tmp_path: Path) -> None:
    source = FIXTURES / "ticks_good.csv"
    result = cli("--data-dir", str(tmp_path), "replay", "--source", str(source), "--kind", "nope")
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "--kind", "'nope'", "bars, ticks, posts, news")


def test_bad_speed_exits_2(cli: Any, tmp_path: Path) -> None:
    source = FIXTURES / "ticks_good.csv"
    result = cli("--data-dir", str(tmp_path), "replay", "--source", str(source), "--kind", "ticks", "--speed", "-3")
    assert result.returncode == 2
    assert_one_line_error(result.stderr, "--speed")


@pytest.mark.parametrize(
    "command", [["replay", "--source", str(FIXTURES / "ticks_good.csv"), "--kind", "ticks"], ["run", "--once"]]
)
def test_broken_config_exits_2_naming_the_key_and_allowed_value(cli: Any, tmp_path: Path, command: list[str]) -> None:
    result = cli("--data-dir", str(tmp_path), *command, "--json", env={"MARKETPULSE__BUS__TYPE": "kafak"})
    assert result.returncode == 2
    assert result.stdout == ""
    assert_one_line_error(result.stderr, "bus.type", "'kafak'", "'memory'")
