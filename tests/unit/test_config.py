"""Layered, frozen configuration: defaults, ``--config`` file, environment, explicit overrides; clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from marketpulse.config import Settings, default_config_path, load_settings
from marketpulse.errors import ConfigError

DEFAULTS_FILE = Path(__file__).resolve().parents[2] / "config" / "marketpulse.yaml"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No MARKETPULSE* variable of the developer's shell may leak into a test."""
    for name in list(os.environ):
        if name.upper().startswith("MARKETPULSE"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, text: str, name: str = "user.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(*args: object, **kwargs: object) -> str:
    """The message of the ConfigError that ``load_settings(*args, **kwargs)`` raises."""
    with pytest.raises(ConfigError) as err:
        load_settings(*args, **kwargs)  # type: ignore[arg-type]
    return str(err.value)


# -- defaults -----------------------------------------------------------------------------------------------


def test_defaults_load() -> None:
    s = load_settings()
    assert s.data_dir == Path("data")
    assert s.log_level == "INFO"
    assert (s.bus.type, s.bus.partitions, s.bus.capacity, s.bus.publish_timeout_s) == ("memory", 4, 100_000, 5.0)
    assert (s.online_store.type, s.online_store.ttl_s) == ("memory", 86_400.0)
    assert (s.history_store.type, s.history_store.path) == ("sqlite", None)
    assert (s.engine.type, s.engine.batch_rows) == ("local", 65_536)
    assert s.validation.naive_timezone == "UTC"
    assert s.validation.stale_after_s is None
    assert s.validation.market_hours is False
    assert s.replay.speed == "max"
    assert s.run.speed == 1800.0
    assert s.run.symbols == []


def test_the_defaults_file_is_the_one_in_the_checkout() -> None:
    assert DEFAULTS_FILE.is_file()
    assert default_config_path() == DEFAULTS_FILE


def test_defaults_file_equals_the_model_defaults() -> None:
    """config/marketpulse.yaml documents the defaults: it must not drift from the code."""
    from_file = yaml.safe_load(DEFAULTS_FILE.read_text(encoding="utf-8"))
    assert from_file == Settings().model_dump(mode="json")


def test_loading_the_defaults_file_changes_nothing() -> None:
    assert load_settings() == Settings()


def test_an_empty_user_file_keeps_the_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")) == Settings()


# -- layers -------------------------------------------------------------------------------------------------


def test_config_file_overrides_the_defaults_key_by_key(tmp_path: Path) -> None:
    path = write(tmp_path, "log_level: DEBUG\nbus:\n  partitions: 8\nvalidation:\n  naive_timezone: America/New_York\n")
    s = load_settings(path)
    assert s.log_level == "DEBUG"
    assert s.bus.partitions == 8
    assert s.bus.capacity == 100_000  # a sibling key of the same section keeps its default
    assert s.validation.naive_timezone == "America/New_York"
    assert s.validation.outlier_k == 12.0


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "bus:\n  partitions: 8\n  capacity: 10\n")
    monkeypatch.setenv("MARKETPULSE__BUS__PARTITIONS", "16")
    s = load_settings(path)
    assert s.bus.partitions == 16
    assert s.bus.capacity == 10  # the file still wins over the default for the keys env does not set


def test_environment_alone_sets_a_key_of_a_backend_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPULSE__BUS__PARTITIONS", "2")
    monkeypatch.setenv("MARKETPULSE__LOG_LEVEL", "WARNING")
    s = load_settings()
    assert (s.bus.type, s.bus.partitions) == ("memory", 2)
    assert s.log_level == "WARNING"


def test_data_dir_layers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, f"data_dir: {tmp_path / 'from-file'}\n")
    assert load_settings(path).data_dir == tmp_path / "from-file"
    monkeypatch.setenv("MARKETPULSE_DATA_DIR", str(tmp_path / "from-env"))
    assert load_settings(path).data_dir == tmp_path / "from-env"
    assert load_settings(path, data_dir=tmp_path / "explicit").data_dir == tmp_path / "explicit"


def test_empty_data_dir_variable_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPULSE_DATA_DIR", "")
    assert load_settings().data_dir == Path("data")


def test_speed_accepts_max_and_positive_numbers(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, "replay:\n  speed: 60\nrun:\n  speed: MAX\n"))
    assert s.replay.speed == 60.0
    assert s.run.speed == "max"


# -- frozen -------------------------------------------------------------------------------------------------


def test_settings_are_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValidationError):
        s.log_level = "DEBUG"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.bus.partitions = 1  # type: ignore[misc]
    with pytest.raises(ValidationError):
        s.validation.outlier_k = 1.0  # type: ignore[misc]
    assert s.log_level == "INFO"
    assert s.bus.partitions == 4


# -- errors: the key, what is wrong, the allowed values; one line per problem -------------------------------


def lines_for(message: str) -> list[str]:
    lines = message.splitlines()
    assert all(line.startswith("config error: ") for line in lines), message
    return lines


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        pytest.param(
            "bus:\n  partitionz: 8\n",
            "bus.partitionz",
            ["unknown key", "capacity, partitions, publish_timeout_s, type"],
            id="unknown-key-in-section",
        ),
        pytest.param("online_store:\n  size: 1\n", "online_store.size", ["ttl_s, type"], id="unknown-key-backend"),
        pytest.param("engine:\n  threads: 1\n", "engine.threads", ["batch_rows, type"], id="unknown-key-engine"),
        pytest.param(
            "kafka:\n  brokers: x\n",
            "kafka",
            ["unknown key", "bus", "data_dir", "history_store", "log_level", "validation"],
            id="unknown-section-in-file",
        ),
        pytest.param("bus:\n  type: kafak\n", "bus.type", ["'kafak'", "'memory'"], id="bad-backend-type"),
        pytest.param("history_store:\n  type: memory\n", "history_store.type", ["'sqlite'"], id="bad-history-type"),
        pytest.param(
            "log_level: VERBOSE\n", "log_level", ["'VERBOSE'", "DEBUG", "INFO", "WARNING", "ERROR"], id="bad-literal"
        ),
        pytest.param("bus:\n  partitions: -1\n", "bus.partitions", ["greater than 0", "-1"], id="negative-number"),
        pytest.param("bus:\n  partitions: lots\n", "bus.partitions", ["integer", "'lots'"], id="not-a-number"),
        pytest.param(
            "validation:\n  naive_timezone: Mars/Olympus\n",
            "validation.naive_timezone",
            ["'Mars/Olympus'", "IANA", "UTC"],
            id="bad-timezone",
        ),
        pytest.param("replay:\n  speed: fast\n", "replay.speed", ["'fast'", "positive number", "'max'"], id="speed"),
        pytest.param("run:\n  speed: -5\n", "run.speed", ["-5", "positive number", "'max'"], id="negative-speed"),
        pytest.param("run:\n  speed: 0\n", "run.speed", ["positive number"], id="zero-speed"),
        pytest.param("fusion:\n  method: blend\n", "fusion.method", ["'blend'", "'hedge'", "'stacking'"], id="fusion"),
        pytest.param(
            "fusion:\n  inputs: [price, volume]\n",
            "fusion.inputs",
            ["'volume'", "'sentiment:<source>'", "'momentum'"],
            id="fusion-input",
        ),
        pytest.param(
            "alerts:\n  notifiers:\n  - type: webhook\n",
            "alerts.notifiers.0.url",
            ["Field required"],
            id="union-in-a-list",
        ),
        pytest.param(
            "alerts:\n  notifiers:\n  - level: info\n",
            "alerts.notifiers.0.type",
            ["missing", "'log', 'webhook', 'email'"],
            id="union-tag-missing",
        ),
        pytest.param(
            "alerts:\n  notifiers:\n  - type: email\n    recipients: [a@b.c]\n    hots: x\n",
            "alerts.notifiers.0.hots",
            ["unknown key", "host", "recipients"],
            id="unknown-key-in-a-union-member",
        ),
    ],
)
def test_a_bad_value_in_the_file_names_key_and_allowed_values(
    tmp_path: Path, text: str, key: str, expected: list[str]
) -> None:
    message = config_error(write(tmp_path, text))
    [line] = lines_for(message)  # exactly one line for one problem
    assert line.startswith(f"config error: {key}: ")
    for fragment in expected:
        assert fragment in line


def test_several_problems_give_one_line_each(tmp_path: Path) -> None:
    path = write(tmp_path, "log_level: LOUD\nbus:\n  partitions: 0\n  colour: red\nengine:\n  batch_rows: -3\n")
    lines = lines_for(config_error(path))
    assert len(lines) == 4
    keys = sorted(line.removeprefix("config error: ").split(": ")[0] for line in lines)
    assert keys == ["bus.colour", "bus.partitions", "engine.batch_rows", "log_level"]


def test_unknown_section_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPULSE__FOO", "1")
    [line] = lines_for(config_error())
    assert "MARKETPULSE__FOO" in line
    assert "unknown section" in line
    for section in ("data_dir", "log_level", "bus", "online_store", "history_store", "validation", "replay", "run"):
        assert section in line


def test_unknown_section_in_environment_is_caught_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    """Environment names are read case-insensitively (``marketpulse__bus__partitions`` works), so typos too."""
    monkeypatch.setenv("marketpulse__bus__partitions", "3")
    assert load_settings().bus.partitions == 3
    monkeypatch.setenv("marketpulse__buss__partitions", "3")
    [line] = lines_for(config_error())
    assert "marketpulse__buss__partitions" in line.lower()
    assert "unknown section" in line


def test_unknown_key_of_a_section_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPULSE__BUS__PARTITIONZ", "3")
    [line] = lines_for(config_error())
    assert line.startswith("config error: bus.partitionz: ")
    assert "capacity, partitions, publish_timeout_s, type" in line


def test_bad_value_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MARKETPULSE__BUS__PARTITIONS", "-2")
    [line] = lines_for(config_error())
    assert line.startswith("config error: bus.partitions: ")
    assert "greater than 0" in line


def test_a_file_that_is_not_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "bus: [1, 2\nlog_level: INFO\n")
    message = config_error(path)
    assert "\n" not in message
    assert str(path) in message
    assert "not valid YAML" in message


def test_a_file_that_is_a_list(tmp_path: Path) -> None:
    path = write(tmp_path, "- bus\n- log_level\n")
    message = config_error(path)
    assert "\n" not in message
    assert str(path) in message
    assert "mapping" in message
    assert "list" in message


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    message = config_error(path)
    assert "\n" not in message
    assert str(path) in message
    assert "cannot read" in message


def test_sentiment_settings_reach_the_model(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``sentiment.encoder_path`` and ``precision`` are model options (they were once read by nothing); ``auto``
    drops them when it falls back to the lexicon."""
    import marketpulse.sentiment as sentiment
    from marketpulse.config import SentimentConfig

    assert SentimentConfig(model="lexicon", precision="bf16").options() == {}
    assert SentimentConfig(encoder_path=tmp_path).options() == {"precision": "auto", "encoder": tmp_path}
    monkeypatch.setattr(sentiment, "ensemble_available", lambda: False)
    fallback = sentiment.build_sentiment_model("auto", **SentimentConfig(encoder_path=tmp_path).options())
    assert fallback.name == "lexicon"
    if sentiment.ml_available():
        with pytest.raises(Exception, match=str(tmp_path.name)):  # an empty folder is no encoder: named, not ignored
            sentiment.build_sentiment_model(
                "transformer", **SentimentConfig(model="transformer", encoder_path=tmp_path).options()
            )
